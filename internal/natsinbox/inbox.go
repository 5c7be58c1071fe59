package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Inbox is the JetStream-backed engine.Inbox. Its storage layout,
// sequences, reads, replicas and single-writer mode are described in the
// package documentation.
type Inbox struct {
	e    *natsengine.Engine
	cfg  Config
	conn atomic.Pointer[inboxConn]
	// index is the set of inboxes that may have state, with
	// Config.Exclusive (else nil). See userIndex.
	index *userIndex
	// heads writes an exclusive writer's heads (see appendSolo).
	heads *headFlusher
	// ready is the last readiness answer (see Ready).
	ready readyProbe
}

type inboxConn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	mux *replyMux
	pub *pubMux
	// tips are hints of this connection's last writes (nil: none kept).
	tips *tipCache
	// replicated: the stream has replicas, which may answer direct gets
	// while behind the leader.
	replicated bool
}

// stop ends the connection's subscriptions.
func (c *inboxConn) stop() error {
	err := c.mux.sub.Unsubscribe()
	return errors.Join(err, c.pub.stop())
}

// Config configures an Inbox.
type Config struct {
	// Cap is the most messages one user's inbox keeps (default
	// DefaultCap). An Append beyond it drops that user's oldest.
	Cap int
	// Replicas is the stream's replica count (default 1).
	Replicas int
	// Timeout bounds a call whose context has no deadline (default 10s).
	Timeout time.Duration
	// TipCache is how many inboxes this process remembers its own last
	// write to, so that its next append there can skip reading the inbox
	// first (a hint, checked by the write's compare-and-swap; about 100
	// bytes each). 0 means DefaultTipCache, negative none.
	TipCache int
	// Exclusive declares that this process is the only writer of the
	// stream (an embedded, unclustered node): no other process appends,
	// acks or removes while this Inbox runs. The Inbox then keeps the set
	// of inboxes that have any state in memory with their latest seqs
	// (about 100 bytes an inbox; loaded at Start from the stream's
	// subjects, which took 0.2 s for 100,000 inboxes here), answers State
	// and Read for any other inbox without a round trip, and stores each
	// appended message with one write (see appendSolo). Another writer
	// would break it: appends would reuse seqs.
	Exclusive bool
	// HeadDelay is how often, with Exclusive, the heads whose deadline
	// has passed are written (default 10s; see appendSolo).
	HeadDelay time.Duration
}

// DefaultTipCache is the default Config.TipCache.
const DefaultTipCache = 1 << 16

// Stream is the name of the JetStream stream holding the inboxes.
const Stream = "HERALD_INBOX"

// DefaultCap is the default per-user cap.
const DefaultCap = 1000

var _ engine.Inbox = (*Inbox)(nil)

// New validates cfg and returns an Inbox on e; it starts nothing.
func New(e *natsengine.Engine, cfg Config) (*Inbox, error) {
	if e == nil {
		return nil, errors.New("natsinbox: inbox on a nil engine")
	}
	if cfg.Cap <= 0 {
		cfg.Cap = DefaultCap
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.TipCache == 0 {
		cfg.TipCache = DefaultTipCache
	}
	if cfg.HeadDelay <= 0 {
		cfg.HeadDelay = 10 * time.Second
	}
	ib := &Inbox{e: e, cfg: cfg}
	e.RequireReady(ib.Ready) // the engine is ready only when its inbox can serve
	if cfg.Exclusive {
		ib.index = newUserIndex()
		ib.heads = &headFlusher{ib: ib}
	}
	return ib, nil
}

// Start creates or updates the stream on the started engine (which must be
// started first) and subscribes the Inbox's reply subject. It fails with a
// clear error when the NATS server has no JetStream. The Inbox starts no
// goroutine of its own: the reply subscription's belongs to the engine's
// NATS connection, and Close or the Engine's Close ends it.
func (ib *Inbox) Start(ctx context.Context) error {
	nc := ib.e.Conn()
	if nc == nil {
		return fmt.Errorf("natsinbox: inbox start: engine not started: %w", engine.ErrUnavailable)
	}
	parent := ctx
	ctx, cancel := ib.deadline(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsinbox: inbox start: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("natsinbox: inbox start: JetStream is not enabled on the NATS server (run it with -js): %w", err)
		}
		return unavailable("start", err)
	}
	replicas, err := ib.ensureStream(ctx, js)
	if err != nil {
		return unavailable("start: stream "+Stream, err)
	}
	mux, err := startReplyMux(nc)
	if err != nil {
		return unavailable("start", err)
	}
	pub, err := startPubMux(nc)
	if err != nil {
		_ = mux.sub.Unsubscribe()
		return unavailable("start", err)
	}
	c := &inboxConn{nc: nc, js: js, mux: mux, pub: pub, tips: newTipCache(ib.cfg.TipCache), replicated: replicas > 1}
	// Wait until the stream answers direct gets (a new stream's replicas
	// subscribe a moment after it is created).
	for {
		_, err := c.getMany(ctx, multiLastReq([]string{inboxPrefix + "probe"}), func(stored) error { return nil })
		if err == nil {
			break
		}
		if !errors.Is(err, nats.ErrNoResponders) || ctx.Err() != nil {
			_ = c.stop()
			return unavailable("start: stream "+Stream, err)
		}
	}
	if ib.index != nil {
		if err := ib.index.load(ctx, nc); err != nil {
			_ = c.stop()
			return unavailable("start: loading the inbox index", err)
		}
		if err := ib.openSolo(parent, c); err != nil {
			_ = c.stop()
			return unavailable("start", err)
		}
	}
	if old := ib.conn.Swap(c); old != nil {
		_ = old.stop()
	}
	return nil
}

// ensureStream creates the stream, or updates it when its settings differ
// from the configuration, and returns its replica count. Failures are
// retried while ctx lasts, each attempt with a short deadline: a new
// JetStream cluster reports its peers offline for a moment, and one was
// seen here to leave some of several concurrent create requests for one
// stream unanswered.
func (ib *Inbox) ensureStream(ctx context.Context, js jetstream.JetStream) (int, error) {
	want := ib.streamConfig()
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(actx, Stream)
		if err == nil && sameStream(s.CachedInfo().Config, want) {
			cancel()
			return s.CachedInfo().Config.Replicas, nil
		}
		if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateOrUpdateStream(actx, want)
		}
		cancel()
		if err == nil {
			return s.CachedInfo().Config.Replicas, nil
		}
		if perr := natsengine.Backoff(ctx, attempt); perr != nil {
			return 0, err
		}
	}
}

// sameStream reports whether the stream has the settings the Inbox needs.
func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Discard == want.Discard &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.MaxMsgs == want.MaxMsgs &&
		have.MaxBytes == want.MaxBytes && have.MaxAge == want.MaxAge && have.AllowMsgTTL &&
		have.AllowRollup && have.AllowDirect && !have.DenyDelete && !have.DenyPurge
}

// Close stops the Inbox's reply subscription; the Inbox is unavailable
// until started again. Closing the Engine closes the Inbox too.
func (ib *Inbox) Close() error {
	if c := ib.conn.Swap(nil); c != nil {
		var flushErr error
		if ib.heads != nil {
			flushErr = ib.closeSolo(c)
		}
		if err := errors.Join(flushErr, c.stop()); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("natsinbox: inbox close: %w", err)
		}
	}
	return nil
}

func (ib *Inbox) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              Stream,
		Description:       "Herald per-user inboxes",
		Subjects:          []string{inboxPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Replicas:          ib.cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: int64(ib.cfg.Cap),
		AllowMsgTTL:       true,
		AllowRollup:       true,
		AllowDirect:       true,
	}
}

// begin applies the default deadline and returns the connection.
func (ib *Inbox) begin(ctx context.Context, op string) (context.Context, context.CancelFunc, *inboxConn, error) {
	c := ib.conn.Load()
	if c == nil || c.nc.IsClosed() {
		return nil, nil, nil, fmt.Errorf("natsinbox: inbox %s: %w", op, engine.ErrUnavailable)
	}
	ctx, cancel := ib.deadline(ctx)
	return ctx, cancel, c, nil
}

func (ib *Inbox) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, ib.cfg.Timeout)
}

// userState is what one multi-last get tells about an inbox.
type userState struct {
	head    record // kind 0: no head yet
	headRaw []byte // the head's stored payload
	headPos uint64
	lastSeq uint64 // seq of the last message in .q.m (0: none)
	lastPos uint64
	acked   uint64
	ackPos  uint64
}

func (st *userState) latest() uint64 { return max(st.head.seq, st.lastSeq) }

// tip is the stream position of the last write to the head or messages.
func (st *userState) tip() uint64 { return max(st.headPos, st.lastPos) }

// pendingMsgs returns the unexpired messages the head carries that are
// not in .q.m (seq above the last one there), in seq order.
func (st *userState) pendingMsgs(now int64) []record {
	var out []record
	for _, r := range st.head.carried() {
		if r.seq > st.lastSeq && r.expires > now {
			out = append(out, r)
		}
	}
	return out
}

// take records one stored message of the inbox sj.
func (st *userState) take(s stored, sj *inboxSubjects) error {
	r, err := parseRecord(s.data)
	if err != nil {
		return fmt.Errorf("%s at %d: %w", s.subj, s.pos, err)
	}
	switch s.subj {
	case sj.h:
		st.head, st.headRaw, st.headPos = r, s.data, s.pos
	case sj.m:
		st.lastSeq, st.lastPos = r.seq, s.pos
	case sj.ack:
		st.acked, st.ackPos = r.seq, s.pos
	}
	return nil
}

// state reads one user's head, last message and ack. With a replicated
// stream it first asks the leader where the user's last write is and
// reads again until the replica answering has caught up with it, so that
// whatever was written before the call is seen.
func (ib *Inbox) state(ctx context.Context, c *inboxConn, sj *inboxSubjects) (userState, error) {
	var st userState
	var barrier uint64
	if c.replicated {
		var err error
		if barrier, err = c.leaderLast(ctx, sj.all); err != nil {
			return st, err
		}
	}
	for attempt := 0; ; attempt++ {
		st = userState{}
		upTo, err := c.lastOf(ctx, []string{sj.h, sj.m, sj.ack}, func(s stored) error {
			return st.take(s, sj)
		})
		if err != nil || upTo >= barrier {
			return st, err
		}
		if err := natsengine.Backoff(ctx, attempt); err != nil {
			return st, err
		}
	}
}

// State implements engine.Inbox.
func (ib *Inbox) State(ctx context.Context, app, user string) (latest, acked uint64, err error) {
	if ib.stateless(app, user) {
		return 0, 0, nil
	}
	ctx, cancel, c, err := ib.begin(ctx, "state")
	if err != nil {
		return 0, 0, err
	}
	defer cancel()
	sj := subjectsOf(app, user)
	st, err := ib.state(ctx, c, &sj)
	if err != nil {
		return 0, 0, unavailable("state", err)
	}
	return st.latest(), st.acked, nil
}

// stateless reports, with Config.Exclusive, that the inbox has no
// state at all (see userIndex), while the Inbox is started.
func (ib *Inbox) stateless(app, user string) bool {
	if ib.index == nil {
		return false
	}
	c := ib.conn.Load()
	return c != nil && !c.nc.IsClosed() && !ib.index.has(userKey(app, user))
}

// Ack implements engine.Inbox.
func (ib *Inbox) Ack(ctx context.Context, app, user string, seq uint64) (bool, error) {
	ctx, cancel, c, err := ib.begin(ctx, "ack")
	if err != nil {
		return false, err
	}
	defer cancel()
	sj := subjectsOf(app, user)
	for attempt := 0; ; attempt++ {
		if attempt > 1 {
			if err := natsengine.Backoff(ctx, attempt-2); err != nil {
				return false, unavailable("ack", err)
			}
		}
		st, err := ib.state(ctx, c, &sj)
		if err != nil {
			return false, unavailable("ack", err)
		}
		if seq > st.latest() {
			return false, nil
		}
		if seq <= st.acked {
			return true, nil
		}
		m := pubMsg(sj.ack, appendRecord(nil, &record{kind: recAck, seq: seq}), 0)
		setCAS(m, "", st.ackPos)
		m.Header[hdrRollup] = []string{"sub"}
		if _, err := c.js.PublishMsg(ctx, m); err == nil {
			return true, nil
		} else if !isConflict(err) {
			return false, unavailable("ack", err)
		}
	}
}

// Remove implements engine.Inbox.
func (ib *Inbox) Remove(ctx context.Context, app, user string, seq uint64) (bool, error) {
	ctx, cancel, c, err := ib.begin(ctx, "remove")
	if err != nil {
		return false, err
	}
	defer cancel()
	sj := subjectsOf(app, user)
	ok, err := ib.remove(ctx, c, &sj, seq)
	if err != nil {
		return false, unavailable("remove", err)
	}
	return ok, nil
}

func (ib *Inbox) remove(ctx context.Context, c *inboxConn, sj *inboxSubjects, seq uint64) (bool, error) {
	tombstoned := false
	tombstone := func(expires int64) error {
		if tombstoned {
			return nil
		}
		tombstoned = true
		m := pubMsg(sj.rm, appendRecord(nil, &record{kind: recGone, seq: seq, expires: expires}),
			ttlSeconds(time.Until(time.Unix(0, expires))))
		_, err := c.js.PublishMsg(ctx, m)
		return err
	}
	// fromHead: the message was taken out of the head, so it was stored,
	// whether or not a copy is found in .q.m.
	fromHead := false
	for attempt := 0; ; attempt++ {
		if attempt > 1 {
			if err := natsengine.Backoff(ctx, attempt-2); err != nil {
				return false, err
			}
		}
		st, err := ib.state(ctx, c, sj)
		if err != nil {
			return false, err
		}
		if seq == 0 || seq > st.latest() {
			return fromHead, nil
		}
		now := time.Now().UnixNano()
		carried := st.head.carried()
		if i := slices.IndexFunc(carried, func(r record) bool { return r.seq == seq }); i >= 0 {
			// The head carries the message: take it out of the head
			// first, so that no Append copies it into .q.m (again).
			if carried[i].expires <= now {
				return false, nil
			}
			if err := tombstone(carried[i].expires); err != nil {
				return false, err
			}
			h := headRecord(st.head.seq, slices.Delete(slices.Clone(carried), i, i+1))
			m := pubMsg(sj.h, appendRecord(nil, &h), 0)
			setCAS(m, sj.w, st.tip())
			m.Header[hdrRollup] = rollupSub
			if _, err := c.js.PublishMsg(ctx, m); isConflict(err) {
				continue
			} else if err != nil {
				return false, err
			}
			fromHead = true
			if st.lastSeq < seq {
				return true, nil // never copied
			}
		} else if st.lastSeq < seq {
			return fromHead, nil
		}
		if st.head.seq < st.lastSeq {
			// The head is behind (an exclusive writer writes it lazily):
			// bring it up first, so that deleting the last message
			// cannot lower the latest seq.
			h := record{kind: recHead, seq: st.lastSeq}
			m := pubMsg(sj.h, appendRecord(nil, &h), 0)
			setCAS(m, sj.w, st.tip())
			m.Header[hdrRollup] = rollupSub
			if _, err := c.js.PublishMsg(ctx, m); err != nil && !isConflict(err) {
				return false, err
			}
			continue
		}
		// Its copy in .q.m.
		if fromHead && st.lastSeq == seq {
			_, err := ib.deleteMsg(ctx, c, sj, st.lastPos)
			return true, err
		}
		pos, err := ib.seek(ctx, c, sj, seq-1, &st)
		if err != nil {
			return false, err
		}
		s, found, err := c.getOne(ctx, nextReq(sj.m, pos, 0, false))
		if err != nil {
			return false, err
		}
		var r record
		if found {
			if r, err = parseRecord(s.data); err != nil {
				return false, err
			}
		}
		if !found || r.seq != seq {
			// With replicas, a replica behind the leader may have
			// answered (see Read).
			if c.replicated && attempt < replicaRetries {
				continue
			}
			return fromHead, nil
		}
		if r.expires <= now {
			return fromHead, nil
		}
		if err := tombstone(r.expires); err != nil {
			return false, err
		}
		ok, err := ib.deleteMsg(ctx, c, sj, s.pos)
		return ok || fromHead, err
	}
}

// deleteMsg deletes the message at pos. With replicas it then writes a
// marker: a delete does not advance the stream, so without a write after
// it the leader check of state could pass on a replica that applied the
// tombstone but not yet the delete.
func (ib *Inbox) deleteMsg(ctx context.Context, c *inboxConn, sj *inboxSubjects, pos uint64) (bool, error) {
	found, err := c.deleteMsg(ctx, pos)
	if err != nil || !c.replicated {
		return found, err
	}
	m := pubMsg(sj.fin, []byte{}, 0)
	m.Header[hdrRollup] = []string{"sub"}
	_, err = c.js.PublishMsg(ctx, m)
	return found, err
}

// seek returns a stream position from which the messages of .q.m with seq >
// after start. st.lastSeq must be above after. The stored seqs increase
// along the stream, so it searches the positions between the first
// message and st's last one, alternating interpolation (the messages of
// one user are often spread evenly, making the typical search take two or
// three probes) with bisection (which bounds the worst case).
func (ib *Inbox) seek(ctx context.Context, c *inboxConn, sj *inboxSubjects, after uint64, st *userState) (uint64, error) {
	first, found, err := c.getOne(ctx, nextReq(sj.m, 0, 0, false))
	if err != nil || !found {
		return st.lastPos, err
	}
	r, err := parseRecord(first.data)
	if err != nil {
		return 0, err
	}
	if r.seq > after {
		return first.pos, nil
	}
	// The message at lo has seq loSeq <= after; the first message at or
	// after hi is at hiPos and has seq hiSeq > after.
	lo, loSeq := first.pos, r.seq
	hi, hiPos, hiSeq := st.lastPos, st.lastPos, st.lastSeq
	for step := 0; hi > lo+1; step++ {
		mid := lo + (hi-lo)/2
		if step%2 == 0 && hiSeq > loSeq {
			// Where seq after+1 would be if the seqs between lo and
			// hiPos were evenly spread.
			est := lo + uint64(float64(hiPos-lo)*float64(after+1-loSeq)/float64(hiSeq-loSeq))
			mid = min(max(est, lo+1), hi-1)
		}
		s, found, err := c.getOne(ctx, nextReq(sj.m, mid, 0, false))
		if err != nil {
			return 0, err
		}
		if !found { // deleted meanwhile: nothing at or after mid
			hi, hiPos = mid, mid
			continue
		}
		r, err := parseRecord(s.data)
		if err != nil {
			return 0, err
		}
		switch {
		case r.seq == after+1:
			return s.pos, nil // every message before it has a lower seq
		case r.seq > after:
			hi, hiPos, hiSeq = mid, s.pos, r.seq
		default:
			lo, loSeq = s.pos, r.seq
		}
	}
	return hi, nil
}
