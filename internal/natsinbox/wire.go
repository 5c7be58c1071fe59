package natsinbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// This file holds the Inbox's raw JetStream requests: the subjects of one
// inbox, publishing with optimistic-concurrency headers and direct gets
// (single, batch and multi-last), which nats.go's jetstream package does
// not offer in the form the Inbox needs.

// inboxSubjects are the subjects of one user's inbox.
type inboxSubjects struct {
	w   string // hrl.inbox.<app>.<user>.q.*: the head and the messages
	h   string // hrl.inbox.<app>.<user>.q.h: the head
	m   string // hrl.inbox.<app>.<user>.q.m: the messages
	ack string // hrl.inbox.<app>.<user>.ack: the acked position
	rm  string // hrl.inbox.<app>.<user>.rm: tombstones of removed messages
	fin string // hrl.inbox.<app>.<user>.fin: marks a finished delete (see Inbox.remove)
	all string // hrl.inbox.<app>.<user>.>: all of the above
}

// inboxPrefix starts every subject of the inbox stream.
const inboxPrefix = natsengine.Prefix + "inbox."

func subjectsOf(app, user string) inboxSubjects { return subjectsFor(userKey(app, user)) }

// userKey names one inbox: "<app>.<user>" as subject tokens.
func userKey(app, user string) string { return natsengine.Token(app) + "." + natsengine.Token(user) }

// subjectsFor returns the subjects of the inbox with the userKey key.
func subjectsFor(key string) inboxSubjects {
	base := inboxPrefix + key + "."
	return inboxSubjects{
		w: base + "q.*", h: base + "q.h", m: base + "q.m",
		ack: base + "ack", rm: base + "rm", fin: base + "fin", all: base + ">",
	}
}

// JetStream header names the Inbox sets on its publishes.
const (
	hdrExpectLastSubjSeq     = "Nats-Expected-Last-Subject-Sequence"
	hdrExpectLastSubjSeqSubj = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrRollup                = "Nats-Rollup"
	hdrTTL                   = "Nats-TTL"
)

// pubMsg is a publish of data to subj; ttl > 0 is the message's lifetime in
// whole seconds. setCAS and a Nats-Rollup header may be added before it is
// sent.
func pubMsg(subj string, data []byte, ttl int64) *nats.Msg {
	h := make(nats.Header, 4)
	if ttl > 0 {
		h[hdrTTL] = []string{strconv.FormatInt(ttl, 10)}
	}
	return &nats.Msg{Subject: subj, Header: h, Data: data}
}

// setCAS makes m conditional: it is stored only if the last message stored
// on subj (m's own subject when subj is empty) is at stream position expect
// (0: there is none).
func setCAS(m *nats.Msg, subj string, expect uint64) {
	m.Header[hdrExpectLastSubjSeq] = []string{strconv.FormatUint(expect, 10)}
	if subj != "" {
		m.Header[hdrExpectLastSubjSeqSubj] = []string{subj}
	}
}

// ttlSeconds is a JetStream per-message TTL covering d: whole seconds,
// rounded up, at least one.
func ttlSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// isConflict reports whether err is a failed optimistic-concurrency check.
func isConflict(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// stored is one message returned by a direct get.
type stored struct {
	subj    string
	pos     uint64 // stream sequence
	pending uint64 // messages matching the filter after this one (batch gets)
	data    []byte
}

// Direct-get reply statuses.
const (
	statusEOB      = "204"
	statusNotFound = "404"
	statusNoResp   = "503"
)

func parseStored(m *nats.Msg) (stored, error) {
	pos, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return stored{}, fmt.Errorf("natsinbox: direct get reply without a sequence: %w", err)
	}
	s := stored{subj: m.Header.Get(jetstream.SubjectHeader), pos: pos, data: m.Data}
	if np := m.Header.Get("Nats-Num-Pending"); np != "" {
		s.pending, _ = strconv.ParseUint(np, 10, 64)
	}
	return s, nil
}

// Direct-get request bodies. Subjects built by subjectsOf hold only
// [A-Za-z0-9_~.*-], so they need no JSON escaping.

// nextReq asks for up to batch messages of subj (batch 0: one, not as a
// batch) at stream sequence pos or later; noHdr leaves out the messages'
// headers (the end-of-batch message still has its own).
func nextReq(subj string, pos uint64, batch int, noHdr bool) []byte {
	b := make([]byte, 0, 64+len(subj))
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, pos, 10)
	b = append(b, `,"next_by_subj":"`...)
	b = append(b, subj...)
	b = append(b, '"')
	if batch > 0 {
		b = append(b, `,"batch":`...)
		b = strconv.AppendInt(b, int64(batch), 10)
		b = append(b, `,"max_bytes":`...)
		b = strconv.AppendInt(b, maxReplyBytes, 10)
	}
	if noHdr {
		b = append(b, `,"no_hdr":true`...)
	}
	return append(b, '}')
}

// multiLastReq asks for the last message of every subject matching subjs.
func multiLastReq(subjs []string) []byte {
	n := 32
	for _, s := range subjs {
		n += len(s) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, `{"max_bytes":`...)
	b = strconv.AppendInt(b, maxReplyBytes, 10)
	b = append(b, `,"multi_last":[`...)
	for i, s := range subjs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	return append(b, `]}`...)
}

// maxReplyBytes is where the server ends a batch or multi-last reply early
// (after the message that reaches it); the callers then ask for the rest.
// Without it the server would send up to its max_pending (64 MiB by
// default) at once, and a client that does not keep up with that much is
// disconnected as a slow consumer.
const maxReplyBytes = 2 << 20

// maxMultiLast is how many results one multi-last get may return (the
// server refuses more than 1024).
const maxMultiLast = 1024

// directSubject is the direct-get API subject of stream.
func directSubject(stream string) string { return "$JS.API.DIRECT.GET." + stream }

// unavailable wraps a failure with op. Transport failures (and deadlines)
// and the JetStream errors that pass by themselves (natsengine.JSTransient: no meta
// leader, no quorum yet) also match engine.ErrUnavailable, a message too large for the server
// engine.ErrInvalidArgument; other JetStream API errors, malformed records
// and cancellation are only wrapped.
func unavailable(op string, err error) error {
	var ae *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload),
		errors.As(err, &ae) && ae.ErrorCode == errCodeMsgTooBig:
		return fmt.Errorf("natsinbox: inbox %s: %w", op, errors.Join(engine.ErrInvalidArgument, err))
	case natsengine.JSTransient(err):
		return fmt.Errorf("natsinbox: inbox %s: %w", op, errors.Join(engine.ErrUnavailable, err))
	case errors.Is(err, context.Canceled), errors.As(err, &ae), errors.Is(err, errBadRecord):
		return fmt.Errorf("natsinbox: inbox %s: %w", op, err)
	default:
		return fmt.Errorf("natsinbox: inbox %s: %w", op, errors.Join(engine.ErrUnavailable, err))
	}
}

// errCodeMsgTooBig is the JetStream error code of a message above the
// stream's or server's size limit.
const errCodeMsgTooBig = 10054

// noRespondersRetries is how often a direct get is retried while no
// server answers it: briefly after the stream was created or moved, or
// while its replicas elect a leader.
const noRespondersRetries = 8

// retryNoResponders calls f until it returns anything but
// nats.ErrNoResponders, at most noRespondersRetries more times, pausing
// between the calls.
func retryNoResponders[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := f()
		if !errors.Is(err, nats.ErrNoResponders) || attempt == noRespondersRetries {
			return v, err
		}
		if err := natsengine.Backoff(ctx, attempt); err != nil {
			return v, err
		}
	}
}

// getOne is a single direct get; found is false when no message matches.
func (c *inboxConn) getOne(ctx context.Context, req []byte) (s stored, found bool, err error) {
	m, err := retryNoResponders(ctx, func() (*nats.Msg, error) {
		return c.nc.RequestWithContext(ctx, directSubject(Stream), req)
	})
	if err != nil {
		return s, false, err
	}
	switch st := m.Header.Get("Status"); st {
	case "":
	case statusNotFound:
		return s, false, nil
	default:
		return s, false, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
	}
	s, err = parseStored(m)
	return s, err == nil, err
}

// eob is what the end-of-batch message of a batch or multi-last get says.
type eob struct {
	pending uint64 // matching messages after the last one sent
	last    uint64 // stream sequence of the last one sent
	upTo    uint64 // multi-last: the stream's last sequence the reply reflects
}

// getMany is a batch or multi-last direct get: it calls each for every
// message, in order, and returns the end-of-batch message (zero when
// nothing matched). With no_hdr in req the messages come without headers
// (each sees only data).
func (c *inboxConn) getMany(ctx context.Context, req []byte, each func(stored) error) (eob, error) {
	return retryNoResponders(ctx, func() (eob, error) { return c.getManyOnce(ctx, req, each) })
}

func (c *inboxConn) getManyOnce(ctx context.Context, req []byte, each func(stored) error) (eob, error) {
	w, reply := c.mux.add()
	defer c.mux.remove(w)
	if err := c.nc.PublishRequest(directSubject(Stream), reply, req); err != nil {
		return eob{}, err
	}
	for {
		m, err := w.next(ctx)
		if err != nil {
			return eob{}, err
		}
		switch st := m.Header.Get("Status"); st {
		case "":
		case statusEOB:
			var e eob
			e.pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			e.last, _ = strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
			e.upTo, _ = strconv.ParseUint(m.Header.Get("Nats-UpTo-Sequence"), 10, 64)
			return e, nil
		case statusNotFound:
			return eob{}, nil
		case statusNoResp:
			return eob{}, nats.ErrNoResponders
		default:
			return eob{}, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
		s := stored{data: m.Data}
		if m.Header != nil {
			if s, err = parseStored(m); err != nil {
				return eob{}, err
			}
		}
		if err := each(s); err != nil {
			return eob{}, err
		}
	}
}

// leaderLast asks the stream's leader (not a replica, as direct gets may)
// for the stream sequence of the last message on subj (0: none).
func (c *inboxConn) leaderLast(ctx context.Context, subj string) (uint64, error) {
	req := make([]byte, 0, 48+len(subj))
	req = append(req, `{"no_hdr":true,"last_by_subj":"`...)
	req = append(req, subj...)
	req = append(req, `"}`...)
	m, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+Stream, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("message get reply: %w", err)
	}
	switch {
	case resp.Message != nil:
		return resp.Message.Seq, nil
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, resp.Error
	default:
		return 0, errors.New("message get: empty reply")
	}
}

// lastOf calls each with the last message of every subject in subjs that
// has one (literal subjects, at most maxMultiLast), with multi-last gets:
// one, unless the reply reaches maxReplyBytes, when the subjects still
// missing are asked for again. It returns the lowest stream sequence the
// replies reflected (see eob.upTo).
func (c *inboxConn) lastOf(ctx context.Context, subjs []string, each func(stored) error) (upTo uint64, err error) {
	got := make(map[string]bool, len(subjs))
	for round := 0; ; round++ {
		e, err := c.getMany(ctx, multiLastReq(subjs), func(s stored) error {
			got[s.subj] = true
			return each(s)
		})
		if err != nil {
			return 0, err
		}
		if round == 0 || e.upTo < upTo {
			upTo = e.upTo
		}
		if e.pending == 0 {
			return upTo, nil
		}
		rest := make([]string, 0, len(subjs))
		for _, s := range subjs {
			if !got[s] {
				rest = append(rest, s)
			}
		}
		if len(rest) == len(subjs) {
			return 0, errors.New("multi-last get: reply cut short before its first message")
		}
		subjs = rest
	}
}

// replyMux receives the replies of every multi-message direct get of an
// Inbox on one wildcard subscription (a per-request subscription would
// cost a SUB, an UNSUB and nats.go's 64K-entry channel each) and hands them
// to the waiting request by the reply subject's last token. Its callback
// never blocks.
type replyMux struct {
	prefix string // the reply subjects' prefix, ending in '.'
	nc     *nats.Conn
	sub    *nats.Subscription

	mu      sync.Mutex
	n       uint64
	waiters map[string]*replyWaiter
}

// replyWaiter queues the replies of one request.
type replyWaiter struct {
	token string
	wake  chan struct{} // capacity 1: replies are queued
	nc    *nats.Conn    // checked now and then while waiting

	mu   sync.Mutex
	msgs []*nats.Msg
	head int
}

// startReplyMux subscribes the mux; the subscription's goroutine belongs
// to nc and ends when the mux is stopped or nc is closed.
func startReplyMux(nc *nats.Conn) (*replyMux, error) {
	x := &replyMux{prefix: nc.NewInbox() + ".", nc: nc, waiters: make(map[string]*replyWaiter)}
	sub, err := subscribeReplies(nc, x.prefix+"*", x.handle)
	if err != nil {
		return nil, err
	}
	x.sub = sub
	return x, nil
}

// subscribeReplies subscribes cb, which must be quick and never block, to
// subj with no pending limits: a burst of acknowledgements or a long reply
// must not be cut short by the client's slow-consumer limits.
func subscribeReplies(nc *nats.Conn, subj string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subj, cb)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

func (x *replyMux) handle(m *nats.Msg) {
	x.mu.Lock()
	w := x.waiters[m.Subject[len(x.prefix):]]
	x.mu.Unlock()
	if w == nil {
		return // the request gave up
	}
	w.mu.Lock()
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// add registers a request and returns its waiter and reply subject.
func (x *replyMux) add() (*replyWaiter, string) {
	x.mu.Lock()
	x.n++
	w := &replyWaiter{token: strconv.FormatUint(x.n, 36), wake: make(chan struct{}, 1), nc: x.nc}
	x.waiters[w.token] = w
	x.mu.Unlock()
	return w, x.prefix + w.token
}

func (x *replyMux) remove(w *replyWaiter) {
	x.mu.Lock()
	delete(x.waiters, w.token)
	x.mu.Unlock()
}

// next returns the request's next reply; it gives up when ctx ends or the
// connection is closed (no reply can come then).
func (w *replyWaiter) next(ctx context.Context) (*nats.Msg, error) {
	for {
		w.mu.Lock()
		if w.head < len(w.msgs) {
			m := w.msgs[w.head]
			w.msgs[w.head] = nil
			w.head++
			w.mu.Unlock()
			return m, nil
		}
		w.msgs, w.head = w.msgs[:0], 0
		w.mu.Unlock()
		if err := await(ctx, w.nc, w.wake, nil); err != nil {
			return nil, err
		}
	}
}

// errInboxClosed ends a wait when the Inbox stops.
var errInboxClosed = errors.New("inbox closed")

// await waits for a signal on ready (or its close) and reports nil, or
// gives up when ctx ends, stop closes (nil: never) or nc is closed, which
// it checks now and then: a closed connection brings nothing more.
func await(ctx context.Context, nc *nats.Conn, ready, stop <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-stop:
		return errInboxClosed
	default:
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-stop:
			return errInboxClosed
		case <-tick.C:
			if nc.IsClosed() {
				return nats.ErrConnectionClosed
			}
		}
	}
}

// deleteMsg deletes the message at stream sequence pos; found is false when
// there was none.
func (c *inboxConn) deleteMsg(ctx context.Context, pos uint64) (found bool, err error) {
	req := strconv.AppendUint([]byte(`{"no_erase":true,"seq":`), pos, 10)
	req = append(req, '}')
	m, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+Stream, req)
	if err != nil {
		return false, err
	}
	var resp struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return false, fmt.Errorf("delete reply: %w", err)
	}
	switch {
	case resp.Success:
		return true, nil
	case resp.Error != nil && resp.Error.ErrorCode == errCodeMsgDeleteFailed:
		return false, nil
	case resp.Error != nil:
		return false, resp.Error
	default:
		return false, errors.New("delete failed")
	}
}

// errCodeMsgDeleteFailed is the JetStream error code of a delete of a
// message that is not there.
const errCodeMsgDeleteFailed = 10057
