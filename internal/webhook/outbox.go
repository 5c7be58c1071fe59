package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures an Outbox.
type Config struct {
	NodeID    string
	Replicas  int // copies of the streams (default 1)
	Endpoints []Endpoint
	// RetryFor is how long an event is retried before it is dead-lettered
	// (default 24 h).
	RetryFor time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// BaseBackoff and MaxBackoff shape the full-jitter backoff: the k-th
	// retry waits a random time in [0, min(MaxBackoff, BaseBackoff·2^(k−1))]
	// (defaults 1 s and 1 h).
	BaseBackoff, MaxBackoff time.Duration
	// AckWait is how long a message taken by a node that died waits
	// before another node takes it (default 30 s).
	AckWait time.Duration
	// DeadFor is how long dead letters are kept (default 7 days).
	DeadFor time.Duration
	// MaxTTL is the longest a stored message lives (default 7 days): the
	// expiry schedule keeps its entries that long, and RetryFor more.
	MaxTTL time.Duration
	// AllowPrivate allows http:// and private or loopback addresses.
	AllowPrivate bool
	Stream       string // default "HERALD_WEBHOOKS"; dead letters in Stream+"_DEAD"
	Observer     Observer
	Logger       *slog.Logger
}

// Observer counts what the outbox does, per endpoint id (may be nil).
type Observer interface {
	Queued(endpoint string)
	// FirstAttempt: the first attempt of an event, wait after it was queued.
	FirstAttempt(endpoint string, wait time.Duration)
	Delivered(endpoint string)
	Retried(endpoint string)
	Dead(endpoint string)
	Disabled(endpoint string)
}

// Headers of the outbox messages.
const (
	hdrEventID  = "Herald-Event-Id"
	hdrEndpoint = "Herald-Endpoint"
	hdrError    = "Herald-Error"
	hdrAttempts = "Herald-Attempts"
	hdrType     = "Herald-Type"
)

// sender delivers one endpoint's events.
type sender struct {
	ep   Endpoint
	id   string
	cons jetstream.Consumer
	// carry: a Pusher-format endpoint's events taken while a batch was
	// retried, the start of the next batch (its goroutine's own).
	carry []jetstream.Msg

	queued, delivered, retried, dead atomic.Uint64
	disabled                         atomic.Bool
}

// Outbox is the durable webhook outbox of one node.
type Outbox struct {
	cfg     Config
	senders []*sender
	byApp   map[string][]*sender
	byID    map[string]*sender
	client  *http.Client

	js         jetstream.JetStream
	stream     jetstream.Stream
	deadStream jetstream.Stream
	stop       chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once

	expiryCheck ExpiryCheck // see SetExpiryCheck
}

// ErrNotStarted is returned by an Outbox used before Start.
var ErrNotStarted = errors.New("webhook: outbox not started")

// New validates cfg (URLs, event types); it starts nothing.
func New(cfg Config) (*Outbox, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("webhook: empty node id")
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 24 * time.Hour
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.DeadFor <= 0 {
		cfg.DeadFor = 7 * 24 * time.Hour
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 7 * 24 * time.Hour
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Stream == "" {
		cfg.Stream = "HERALD_WEBHOOKS"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Outbox{cfg: cfg, byApp: map[string][]*sender{}, byID: map[string]*sender{}, stop: make(chan struct{})}
	for _, ep := range cfg.Endpoints {
		if err := CheckURL(ep.URL, cfg.AllowPrivate); err != nil {
			return nil, fmt.Errorf("app %q: %w", ep.App, err)
		}
		if ep.Pusher() && len(ep.Events) > 0 {
			return nil, fmt.Errorf("app %q: Pusher webhook %s: the event types are Pusher's, not a list", ep.App, ep.URL)
		}
		if len(ep.Key) == 0 && ep.Pusher() {
			return nil, fmt.Errorf("app %q: Pusher webhook %s: the app's Pusher secret is empty", ep.App, ep.URL)
		}
		if len(ep.Key) == 0 {
			return nil, fmt.Errorf("app %q: webhook %s: %w", ep.App, ep.URL, ErrBadSecret)
		}
		for _, t := range ep.Events {
			if !ValidType(t) {
				return nil, fmt.Errorf("app %q: webhook %s: unknown event type %q", ep.App, ep.URL, t)
			}
		}
		s := &sender{ep: ep, id: ep.ID()}
		if o.byID[s.id] != nil {
			return nil, fmt.Errorf("app %q: webhook %s is configured twice", ep.App, ep.URL)
		}
		o.senders = append(o.senders, s)
		o.byApp[ep.App] = append(o.byApp[ep.App], s)
		o.byID[s.id] = s
	}
	o.client = &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{DialContext: dialer(cfg.AllowPrivate), MaxIdleConnsPerHost: 4,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: cfg.Timeout, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return o, nil
}

func tok(s string) string {
	if s == "" {
		return "-"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func eventSubject(app, typ string) string { return "hrl.wh.e." + tok(app) + "." + typ }
func replaySubject(epID string) string    { return "hrl.wh.r." + epID }
func deadSubject(app, epID string) string { return "hrl.wh.d." + tok(app) + "." + epID }

// Start creates the streams and the endpoints' consumers and starts one
// sender per endpoint. Close stops them.
func (o *Outbox) Start(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	o.js = js
	o.stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: o.cfg.Stream,
		Subjects: []string{"hrl.wh.e.>", "hrl.wh.r.>"}, Retention: jetstream.InterestPolicy,
		MaxAge: o.cfg.RetryFor + time.Hour, Storage: jetstream.FileStorage, Replicas: o.cfg.Replicas,
		Duplicates: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("webhook: outbox stream: %w", err)
	}
	o.deadStream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: o.cfg.Stream + "_DEAD",
		Subjects: []string{"hrl.wh.d.>"}, MaxAge: o.cfg.DeadFor, Storage: jetstream.FileStorage,
		Replicas: o.cfg.Replicas})
	if err != nil {
		return fmt.Errorf("webhook: dead-letter stream: %w", err)
	}
	for _, s := range o.senders {
		filters := []string{replaySubject(s.id)}
		for _, t := range s.ep.types() {
			filters = append(filters, eventSubject(s.ep.App, t))
		}
		cc := jetstream.ConsumerConfig{Durable: s.id,
			Description: s.ep.App + " " + s.ep.URL, FilterSubjects: filters,
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1, AckWait: o.cfg.AckWait,
			DeliverPolicy: jetstream.DeliverNewPolicy, MaxDeliver: -1}
		if s.ep.Pusher() {
			// A batch's events are outstanding together, all taken by the
			// pinned node, which pulls at least every AckWait/3 except
			// during a batch window and an attempt (up to Timeout).
			cc.MaxAckPending = pusherBatch
			cc.PriorityPolicy = jetstream.PriorityPolicyPinned
			cc.PriorityGroups = []string{pusherGroup}
			cc.PinnedTTL = max(o.cfg.AckWait, o.cfg.Timeout+o.cfg.AckWait/2)
		}
		s.cons, err = o.stream.CreateOrUpdateConsumer(ctx, cc)
		if err != nil {
			return fmt.Errorf("webhook: consumer of %s: %w", s.ep.URL, err)
		}
		if info, err := s.cons.Info(ctx); err == nil && info.Paused {
			s.disabled.Store(true)
		}
	}
	if err := o.startExpiry(ctx); err != nil {
		return err
	}
	for _, s := range o.senders {
		o.wg.Add(1)
		go o.run(s)
	}
	return nil
}

// Close stops the senders; a message being retried is handed back to the
// stream for another node.
func (o *Outbox) Close() error {
	o.closeOnce.Do(func() { close(o.stop) })
	o.wg.Wait()
	o.client.CloseIdleConnections()
	return nil
}

// Wants reports whether some endpoint of app receives typ.
func (o *Outbox) Wants(app, typ string) bool {
	for _, s := range o.byApp[app] {
		for _, t := range s.ep.types() {
			if t == typ {
				return true
			}
		}
	}
	return false
}

// Emit stores an event of app (at: when it happened; data gets "app")
// in the outbox, unless no endpoint of the app receives its type. When it
// returns nil the event is stored and will be delivered.
func (o *Outbox) Emit(ctx context.Context, app, typ string, at time.Time, data map[string]any) error {
	msg, err := o.event(app, typ, at, data)
	if msg == nil || err != nil {
		return err
	}
	return o.store(ctx, app, typ, msg)
}

// storeFor bounds EmitSure's attempts.
const storeFor = 30 * time.Second

// EmitSure is Emit for an event that a moment of unavailability must not
// lose (the outbox stream electing a leader after a node died): the same
// event, under one webhook-id (so that JetStream drops a repeat), is
// offered again until it is stored, for up to 30 s (each attempt up to
// 5 s, past ctx's deadline). It gives up early when ctx is cancelled or the
// outbox closes.
func (o *Outbox) EmitSure(ctx context.Context, app, typ string, at time.Time, data map[string]any) error {
	msg, err := o.event(app, typ, at, data)
	if msg == nil || err != nil {
		return err
	}
	giveUp := time.Now().Add(storeFor)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = o.store(actx, app, typ, msg)
		cancel()
		if err == nil || errors.Is(ctx.Err(), context.Canceled) || time.Now().After(giveUp) {
			return err
		}
		select {
		case <-o.stop:
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// event encodes an event for the outbox (nil if no endpoint of app
// receives typ).
func (o *Outbox) event(app, typ string, at time.Time, data map[string]any) (*nats.Msg, error) {
	if !o.Wants(app, typ) {
		return nil, nil
	}
	if o.js == nil {
		return nil, ErrNotStarted
	}
	id, raw, err := encode(app, typ, at, data)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: eventSubject(app, typ), Data: raw, Header: nats.Header{}}
	msg.Header.Set(hdrEventID, id)
	msg.Header.Set(hdrType, typ)
	return msg, nil
}

// store writes an encoded event to the outbox stream and counts it.
func (o *Outbox) store(ctx context.Context, app, typ string, msg *nats.Msg) error {
	if _, err := o.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msg.Header.Get(hdrEventID))); err != nil {
		return fmt.Errorf("webhook: storing %s: %w", typ, err)
	}
	for _, s := range o.byApp[app] {
		if !slices.Contains(s.ep.types(), typ) {
			continue
		}
		s.queued.Add(1)
		if o.cfg.Observer != nil {
			o.cfg.Observer.Queued(s.id)
		}
	}
	return nil
}

// run is one endpoint's sender: it takes the endpoint's next event (the
// consumer lets one be outstanding cluster-wide; a Pusher-format
// endpoint's, one batch, pulled by one node at a time) and delivers it.
func (o *Outbox) run(s *sender) {
	defer o.wg.Done()
	o.loop(s.ep.URL, func(ctx context.Context) ([]jetstream.Msg, error) { return o.next(ctx, s) },
		func(ctx context.Context, msgs []jetstream.Msg) { o.deliver(ctx, s, msgs) })
	s.release()
}

// consume hands cons's messages, fetched up to batch at a time, to handle
// until Close; what names the consumer in logs.
func (o *Outbox) consume(cons jetstream.Consumer, batch int, what string, handle func(context.Context, jetstream.Msg)) {
	defer o.wg.Done()
	o.loop(what, func(ctx context.Context) ([]jetstream.Msg, error) {
		b, err := cons.Fetch(batch, jetstream.FetchContext(ctx))
		if err != nil {
			return nil, err
		}
		var msgs []jetstream.Msg
		for m := range b.Messages() {
			msgs = append(msgs, m)
		}
		return msgs, nil
	}, func(ctx context.Context, msgs []jetstream.Msg) {
		for _, m := range msgs {
			handle(ctx, m)
		}
	})
}

// loop fetches and handles messages until Close; what names the consumer
// in logs.
func (o *Outbox) loop(what string, fetch func(context.Context) ([]jetstream.Msg, error), handle func(context.Context, []jetstream.Msg)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-o.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		msgs, err := fetch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				o.cfg.Logger.Warn("webhook: fetching", "from", what, "err", err)
				pause(ctx, time.Second)
			}
			continue
		}
		if len(msgs) > 0 {
			handle(ctx, msgs)
		}
	}
}

// fetch pulls up to n of the endpoint's events; a Pusher-format
// endpoint's pulls are in its consumer's pinned priority group.
func (s *sender) fetch(n int, opts ...jetstream.FetchOpt) ([]jetstream.Msg, error) {
	if s.ep.Pusher() {
		opts = append(opts, jetstream.FetchPriorityGroup(pusherGroup))
	}
	batch, err := s.cons.Fetch(n, opts...)
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// next waits for the endpoint's next event; for a Pusher-format endpoint
// it starts with the events taken while the last batch was retried, then
// collects up to pusherBatch events within pusherWindow. A Pusher-format
// endpoint's wait is cut to AckWait/3: the pinned node pulls again before
// its pin runs out.
func (o *Outbox) next(ctx context.Context, s *sender) ([]jetstream.Msg, error) {
	if !s.ep.Pusher() {
		return s.fetch(1, jetstream.FetchContext(ctx))
	}
	msgs := s.carry
	if n := min(len(msgs), pusherBatch); n > 0 {
		msgs, s.carry = msgs[:n:n], msgs[n:]
	} else {
		wait, cancel := context.WithTimeout(ctx, o.cfg.AckWait/3)
		var err error
		msgs, err = s.fetch(1, jetstream.FetchContext(wait))
		cancel()
		if err != nil || len(msgs) == 0 {
			return nil, err
		}
	}
	if len(msgs) < pusherBatch {
		more, _ := s.fetch(pusherBatch-len(msgs), jetstream.FetchMaxWait(pusherWindow))
		msgs = append(msgs, more...) // on an error the batch is sent as it is
	}
	return msgs, nil
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is the wait before the k-th retry (k ≥ 1): full jitter.
func (o *Outbox) backoff(k int) time.Duration {
	limit := o.cfg.MaxBackoff
	if k <= 40 {
		if d := o.cfg.BaseBackoff << (k - 1); d > 0 && d < limit {
			limit = d
		}
	}
	return rand.N(limit + 1)
}

// held is an event being delivered: its message, when the stream stored
// it and, for a Pusher-format endpoint, its Pusher form.
type held struct {
	m    jetstream.Msg
	born time.Time
	ev   pusherEvent
}

// deliver posts events (one, or a Pusher-format endpoint's batch in one
// request) until it succeeds, the endpoint is gone (410), they are too
// old (each event is dead-lettered when it is RetryFor old, the rest of a
// batch retried in a new body) or the node stops (handed back).
func (o *Outbox) deliver(ctx context.Context, s *sender, msgs []jetstream.Msg) {
	batch := make([]held, 0, len(msgs))
	for _, m := range msgs {
		h, err := o.take(s, m)
		if err != nil {
			o.cfg.Logger.Warn("webhook: dropping a stored event", "endpoint", s.ep.URL, "err", err)
			m.Term()
			continue
		}
		batch = append(batch, h)
	}
	body, err := o.body(s, batch)
	if err != nil {
		return
	}
	each := func(f func(jetstream.Msg)) {
		for _, h := range batch {
			f(h.m)
		}
	}
	for k := 1; ; k++ {
		status, err := o.post(ctx, s, batch[0].m.Headers().Get(hdrEventID), body)
		switch {
		case ctx.Err() != nil:
			each(func(m jetstream.Msg) { m.Nak() })
			return
		case err == nil && status/100 == 2:
			each(func(m jetstream.Msg) {
				m.Ack()
				s.delivered.Add(1)
				if o.cfg.Observer != nil {
					o.cfg.Observer.Delivered(s.id)
				}
			})
			return
		case err == nil && status == http.StatusGone:
			o.disable(s)
			each(func(m jetstream.Msg) { m.Nak() })
			s.release()
			return
		}
		why := fmt.Sprintf("HTTP %d", status)
		if err != nil {
			why = err.Error()
		}
		live := batch[:0]
		for _, h := range batch {
			if time.Since(h.born) >= o.cfg.RetryFor {
				o.bury(ctx, s, h.m, why, k)
			} else {
				live = append(live, h)
			}
		}
		if len(live) == 0 {
			return
		}
		if len(live) < len(batch) {
			batch = live
			if body, err = o.body(s, batch); err != nil {
				return
			}
		}
		s.retried.Add(1)
		if o.cfg.Observer != nil {
			o.cfg.Observer.Retried(s.id)
		}
		oldest := batch[0].born
		for _, h := range batch[1:] {
			if h.born.Before(oldest) {
				oldest = h.born
			}
		}
		if !o.hold(ctx, s, min(o.backoff(k), o.cfg.RetryFor-time.Since(oldest)), batch) {
			each(func(m jetstream.Msg) { m.Nak() })
			return
		}
	}
}

// take reads a message taken for delivery; an error means it cannot be
// sent (no metadata, or no Pusher form for a Pusher-format endpoint).
func (o *Outbox) take(s *sender, m jetstream.Msg) (held, error) {
	meta, err := m.Metadata()
	if err != nil {
		return held{}, err
	}
	h := held{m: m, born: meta.Timestamp}
	if s.ep.Pusher() {
		if h.ev, err = pusherEventOf(m.Data()); err != nil {
			return held{}, err
		}
	}
	if meta.NumDelivered == 1 && o.cfg.Observer != nil {
		o.cfg.Observer.FirstAttempt(s.id, time.Since(meta.Timestamp))
	}
	return h, nil
}

// body is what is posted for a non-empty batch: the one event, or a
// Pusher-format endpoint's batch. An error (or an empty batch) terminates
// the batch's messages.
func (o *Outbox) body(s *sender, batch []held) ([]byte, error) {
	if len(batch) == 0 {
		return nil, errors.New("webhook: nothing to send")
	}
	if !s.ep.Pusher() {
		return batch[0].m.Data(), nil
	}
	events := make([]pusherEvent, len(batch))
	for i, h := range batch {
		events[i] = h.ev
	}
	body, err := pusherBody(events, time.Now())
	if err != nil {
		o.cfg.Logger.Warn("webhook: dropping a Pusher batch", "endpoint", s.ep.URL, "err", err)
		for _, h := range batch {
			h.m.Term()
		}
	}
	return body, err
}

// hold waits d, telling the stream the batch is still being worked on. A
// Pusher-format endpoint's sender also keeps its pin by pulling: what the
// pulls bring comes after the batch and is sent next (s.carry).
func (o *Outbox) hold(ctx context.Context, s *sender, d time.Duration, batch []held) bool {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		if !pause(ctx, min(left, o.cfg.AckWait/3)) {
			return false
		}
		if s.ep.Pusher() {
			more, _ := s.fetch(1, jetstream.FetchMaxWait(pinPull))
			s.carry = append(s.carry, more...)
		}
		for _, h := range batch {
			h.m.InProgress()
		}
		for _, m := range s.carry {
			m.InProgress()
		}
	}
}

// release hands the events taken while a batch was retried back to the
// stream.
func (s *sender) release() {
	for _, m := range s.carry {
		m.Nak()
	}
	s.carry = nil
}

// post makes one attempt; it returns the status, or an error if there was
// no answer within the timeout.
func (o *Outbox) post(ctx context.Context, s *sender, id string, body []byte) (int, error) {
	if s.ep.Pusher() {
		return o.postPusher(ctx, s, body)
	}
	ts := time.Now().Unix()
	return o.attempt(ctx, s.ep.URL, body, map[string]string{"webhook-id": id,
		"webhook-timestamp": strconv.FormatInt(ts, 10), "webhook-signature": Sign(s.ep.Key, id, ts, body)})
}

// attempt posts a JSON body with the given headers; it returns the status,
// or an error if there was no answer within the timeout.
func (o *Outbox) attempt(ctx context.Context, url string, body []byte, headers map[string]string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	// Exactly "application/json": Pusher's SDKs refuse anything else.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Herald-Webhooks/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// disable pauses the endpoint's consumer cluster-wide (it answered 410).
func (o *Outbox) disable(s *sender) {
	s.disabled.Store(true)
	o.cfg.Logger.Warn("webhook: endpoint answered 410 Gone; disabled", "app", s.ep.App, "endpoint", s.ep.URL)
	if o.cfg.Observer != nil {
		o.cfg.Observer.Disabled(s.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout)
	defer cancel()
	if _, err := o.stream.PauseConsumer(ctx, s.id, time.Now().AddDate(100, 0, 0)); err != nil {
		o.cfg.Logger.Warn("webhook: pausing consumer", "endpoint", s.ep.URL, "err", err)
	}
}

// bury moves an event that ran out of retries into the dead-letter stream.
func (o *Outbox) bury(ctx context.Context, s *sender, msg jetstream.Msg, why string, attempts int) {
	d := &nats.Msg{Subject: deadSubject(s.ep.App, s.id), Data: msg.Data(), Header: nats.Header{}}
	d.Header.Set(hdrEventID, msg.Headers().Get(hdrEventID))
	d.Header.Set(hdrType, msg.Headers().Get(hdrType))
	d.Header.Set(hdrEndpoint, s.ep.URL)
	d.Header.Set(hdrError, why)
	d.Header.Set(hdrAttempts, strconv.Itoa(attempts))
	if _, err := o.js.PublishMsg(ctx, d); err != nil {
		o.cfg.Logger.Warn("webhook: dead-lettering", "endpoint", s.ep.URL, "err", err)
		msg.Nak() // tried again later, still dead: buried then
		return
	}
	msg.Term()
	s.dead.Add(1)
	if o.cfg.Observer != nil {
		o.cfg.Observer.Dead(s.id)
	}
}
