package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Tracker.
type Config struct {
	NodeID   string
	Replicas int // copies of the buckets (default 1)
	// LeaseTTL is how long a node's entries outlive its last lease renewal
	// (default 10 s); the lease is renewed every LeaseTTL/4.
	LeaseTTL time.Duration
	// SweepEvery is how often a node looks for dead nodes (default
	// LeaseTTL/4).
	SweepEvery time.Duration
	// OfflineDelay holds back a departure (the last connection of a user
	// or room gone): it is reported only if nobody came back within it.
	// 0 reports at once.
	OfflineDelay time.Duration
	Timeout      time.Duration // one engine call (default 5 s)
	Workers      int           // shards of the local state (default 4)
	Bucket       string        // default "HERALD_PRESENCE"; leases in Bucket+"_LEASES"
	Logger       *slog.Logger
}

// Change is a cluster-wide transition of a scope: Up when its first
// connection anywhere arrived, else when its last one left (after the
// offline delay). At is when the change happened on the node that caused
// it.
type Change struct {
	Scope Scope
	Up    bool
	At    time.Time
}

// Conn is the record a node keeps of each of its connections, so that
// another node can report it closed if this one dies.
type Conn struct {
	ID     string    `json:"id"`
	App    string    `json:"app"`
	User   string    `json:"user"`
	Device string    `json:"device,omitempty"`
	Addr   string    `json:"addr,omitempty"`
	Node   string    `json:"node"`
	Since  time.Time `json:"since"`
}

// Sink receives what the tracker decides. Each Change and each
// connection's opening and closing is reported by exactly one node of the
// cluster.
type Sink interface {
	// Changed reports a scope's transition.
	Changed(ctx context.Context, c Change)
	// ConnOpened reports a connection once its record is stored.
	ConnOpened(ctx context.Context, c Conn)
	// ConnClosed reports a connection gone, with its close code: 1006
	// (CodeLost) for the connections of a node that died, found at at.
	ConnClosed(ctx context.Context, c Conn, code int, at time.Time)
}

// CodeLost is the close code reported for a dead node's connections.
const CodeLost = 1006

// state is the shared entry of a scope.
type state struct {
	Nodes   map[string]bool `json:"nodes,omitempty"`
	Since   time.Time       `json:"since"`
	Leaving *leaving        `json:"leaving,omitempty"`
}

// leaving is a departure waiting out the offline delay; Owner finalizes it.
type leaving struct {
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
}

// local is this node's view of one scope. Guarded by its shard's mu.
type local struct {
	count int
	at    time.Time // when count last crossed zero
	owned bool      // this node finalizes the scope's departure
	timer *time.Timer
}

// connOp is a connection record to write or remove. Guarded by its shard's mu.
type connOp struct {
	info    Conn
	open    bool
	written bool
	code    int       // once closed
	at      time.Time // once closed
}

type item struct {
	scope Scope
	conn  string
}

type shard struct {
	mu     sync.Mutex
	scopes map[Scope]*local
	conns  map[string]*connOp
	queue  []item
	queued map[item]bool
	busy   bool // the worker is applying an item
	wake   chan struct{}
}

// Tracker is one node's part of cluster-wide presence.
type Tracker struct {
	cfg    Config
	sink   Sink
	seed   maphash.Seed
	shards []*shard

	kv, leases jetstream.KeyValue
	nc         *nats.Conn
	lease      lease
	members    members
	seen       map[string]seen // by node key token; the sweeper's
	roster     map[string]bool // roster keys; the sweeper's
	stop       chan struct{}
	closing    chan struct{}
	// base is cancelled when the workers stop, ending their engine calls.
	base      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// ErrClosed is returned by a Tracker used after Close.
var ErrClosed = errors.New("presence: tracker closed")

// New validates cfg; it starts nothing.
func New(cfg Config, sink Sink) (*Tracker, error) {
	switch {
	case cfg.NodeID == "":
		return nil, errors.New("presence: empty node id")
	case sink == nil:
		return nil, errors.New("presence: nil sink")
	case cfg.LeaseTTL < 0 || cfg.OfflineDelay < 0 || cfg.SweepEvery < 0 || cfg.Timeout < 0:
		return nil, errors.New("presence: negative duration")
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = cfg.LeaseTTL / 4
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "HERALD_PRESENCE"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{cfg: cfg, sink: sink, seed: maphash.MakeSeed(), stop: make(chan struct{}), closing: make(chan struct{}),
		seen: map[string]seen{}, roster: map[string]bool{}, members: members{ready: make(chan struct{}), wake: make(chan struct{})}}
	t.base, t.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		t.shards = append(t.shards, &shard{scopes: map[Scope]*local{}, conns: map[string]*connOp{},
			queued: map[item]bool{}, wake: make(chan struct{}, 1)})
	}
	return t, nil
}

// Bound is the longest a dead node's users stay present while the lease
// bucket stays writable: the lease, one sweep and the offline delay. An
// outage of the lease bucket (a leader election) lasting E longer than
// LeaseTTL/2 adds E − LeaseTTL/2 (see Liveness in lease.go).
func (t *Tracker) Bound() time.Duration {
	return t.cfg.LeaseTTL + t.cfg.SweepEvery + t.cfg.OfflineDelay
}

// Start opens the buckets, sweeps what a previous run of this node left,
// takes the node's lease and starts the workers and the sweeper. Close
// stops them.
func (t *Tracker) Start(ctx context.Context, nc *nats.Conn) error {
	if t.kv == nil || t.leases == nil {
		if err := t.Bind(ctx, nc); err != nil {
			return err
		}
	}
	for _, sh := range t.shards {
		t.wg.Add(1)
		go t.work(sh)
	}
	// What a previous run of this node left is taken over like a dead
	// node's: its connections are lost, its users depart.
	if err := t.sweepNode(ctx, t.cfg.NodeID, ""); err != nil {
		t.halt()
		return err
	}
	if err := t.renew(ctx); err != nil {
		t.halt()
		return err
	}
	if _, err := t.kv.Put(ctx, rosterKey(t.cfg.NodeID), nil); err != nil {
		t.halt()
		return fmt.Errorf("presence: roster: %w", err)
	}
	t.wg.Add(3)
	go t.renewer()
	go t.sweeper()
	go t.watchMembers()
	return nil
}

// Bind creates (or binds) the tracker's buckets on nc. It starts nothing
// and may be called again after a failure, e.g. while a cluster has no
// JetStream leader yet; Start calls it when it was not.
func (t *Tracker) Bind(ctx context.Context, nc *nats.Conn) error {
	t.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: t.cfg.Bucket,
		Storage: jetstream.FileStorage, Replicas: t.cfg.Replicas, History: 1})
	if err != nil {
		return fmt.Errorf("presence: bucket: %w", err)
	}
	// On disk, not in memory: a replicated memory stream whose replicas
	// died with their nodes cannot recover (the cluster issue's restart
	// while most peers were down left it "not current" for good).
	leases, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: t.cfg.Bucket + "_LEASES",
		Storage: jetstream.FileStorage, Replicas: t.cfg.Replicas, TTL: t.cfg.LeaseTTL})
	if err != nil {
		return fmt.Errorf("presence: lease bucket: %w", err)
	}
	t.kv, t.leases = kv, leases
	return nil
}

func (t *Tracker) halt() {
	t.closeOnce.Do(func() { close(t.closing); close(t.stop); t.cancel() })
	t.wg.Wait()
}

// Close applies the changes still queued, stops the workers and the
// sweeper and gives up the lease, so that other nodes finalize at once
// what this one still owned; all within the engine timeout.
func (t *Tracker) Close() error {
	deadline := time.Now().Add(t.cfg.Timeout)
	t.closeOnce.Do(func() {
		close(t.closing)
		drained := make(chan struct{})
		go func() {
			for _, sh := range t.shards {
				for {
					sh.mu.Lock()
					n := len(sh.queue)
					sh.mu.Unlock()
					if n == 0 {
						break
					}
					select {
					case <-time.After(10 * time.Millisecond):
					case <-t.stop:
						return
					}
				}
			}
			close(drained)
		}()
		if t.nc != nil && t.nc.IsConnected() { // else nothing would drain
			select {
			case <-drained:
			case <-time.After(time.Until(deadline)):
			}
		}
		close(t.stop)
		t.cancel()
	})
	t.wg.Wait()
	for _, sh := range t.shards {
		sh.mu.Lock()
		for _, st := range sh.scopes {
			if st.timer != nil {
				st.timer.Stop()
			}
		}
		sh.mu.Unlock()
	}
	if t.leases == nil || !t.nc.IsConnected() {
		return nil // the lease then lapses by itself
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := t.leases.Purge(ctx, tok(t.cfg.NodeID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("presence: giving up lease: %w", err)
	}
	return nil
}

func (t *Tracker) shardOf(it item) *shard {
	var h maphash.Hash
	h.SetSeed(t.seed)
	if it.conn != "" {
		h.WriteString(it.conn)
	} else {
		h.WriteByte(byte(it.scope.Kind))
		h.WriteString(it.scope.App)
		h.WriteByte(0)
		h.WriteString(it.scope.Room)
		h.WriteByte(0)
		h.WriteString(it.scope.User)
	}
	return t.shards[h.Sum64()%uint64(len(t.shards))]
}

// enqueue queues it for its worker; caller holds sh.mu.
func (sh *shard) enqueue(it item) {
	if sh.queued[it] {
		return
	}
	sh.queued[it] = true
	sh.queue = append(sh.queue, it)
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// Add counts one more local connection in s; at is when it arrived.
func (t *Tracker) Add(s Scope, at time.Time) {
	it := item{scope: s}
	sh := t.shardOf(it)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.scopes[s]
	if st == nil {
		st = &local{}
		sh.scopes[s] = st
	}
	st.count++
	if st.count == 1 {
		st.at = at
		sh.enqueue(it)
	}
}

// Remove counts one local connection less in s; at is when it left.
func (t *Tracker) Remove(s Scope, at time.Time) {
	it := item{scope: s}
	sh := t.shardOf(it)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.scopes[s]
	if st == nil || st.count == 0 {
		return
	}
	st.count--
	if st.count == 0 {
		st.at = at
		sh.enqueue(it)
	}
}

// Open records a local connection (so that it is reported lost if this
// node dies).
func (t *Tracker) Open(c Conn) {
	c.Node = t.cfg.NodeID
	it := item{conn: c.ID}
	sh := t.shardOf(it)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.conns[c.ID] = &connOp{info: c, open: true}
	sh.enqueue(it)
}

// Closed removes the record of a local connection, closed with code at at.
func (t *Tracker) Closed(id string, code int, at time.Time) {
	it := item{conn: id}
	sh := t.shardOf(it)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if op := sh.conns[id]; op != nil && op.open {
		op.open, op.code, op.at = false, code, at
		sh.enqueue(it)
	}
}

// work applies sh's queued items in order until Close.
func (t *Tracker) work(sh *shard) {
	defer t.wg.Done()
	for {
		sh.mu.Lock()
		for len(sh.queue) == 0 {
			sh.mu.Unlock()
			select {
			case <-sh.wake:
			case <-t.stop:
				return
			}
			sh.mu.Lock()
		}
		it := sh.queue[0]
		sh.queue = sh.queue[1:]
		delete(sh.queued, it)
		sh.busy = true
		sh.mu.Unlock()
		var err error
		if it.conn != "" {
			err = t.applyConn(sh, it.conn)
		} else {
			err = t.applyScope(sh, it.scope)
		}
		sh.mu.Lock()
		sh.busy = false
		sh.mu.Unlock()
		if err != nil {
			t.cfg.Logger.Warn("presence: engine call failed; retrying", "err", err)
			select {
			case <-time.After(250 * time.Millisecond):
			case <-t.stop:
				return
			}
			sh.mu.Lock()
			sh.enqueue(it)
			sh.mu.Unlock()
		}
	}
}

func (t *Tracker) applyConn(sh *shard, id string) error {
	sh.mu.Lock()
	op := sh.conns[id]
	if op == nil {
		sh.mu.Unlock()
		return nil
	}
	open, written, info, code, at := op.open, op.written, op.info, op.code, op.at
	sh.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.base, t.cfg.Timeout)
	defer cancel()
	switch {
	case open && !written:
		b, _ := json.Marshal(info)
		if _, err := t.kv.Put(ctx, connKey(t.cfg.NodeID, id), b); err != nil {
			return fmt.Errorf("recording connection %s: %w", id, err)
		}
		t.sink.ConnOpened(ctx, info)
		sh.mu.Lock()
		op.written = true
		if !op.open {
			sh.enqueue(item{conn: id})
		}
		sh.mu.Unlock()
	case !open:
		if written {
			if err := t.kv.Purge(ctx, connKey(t.cfg.NodeID, id)); err != nil {
				return fmt.Errorf("removing connection %s: %w", id, err)
			}
		} else {
			t.sink.ConnOpened(ctx, info) // closed before its record was written
		}
		t.sink.ConnClosed(ctx, info, code, at)
		sh.mu.Lock()
		delete(sh.conns, id)
		sh.mu.Unlock()
	}
	return nil
}

func (t *Tracker) applyScope(sh *shard, s Scope) error {
	sh.mu.Lock()
	st := sh.scopes[s]
	if st == nil {
		sh.mu.Unlock()
		return nil
	}
	want, at := st.count > 0, st.at
	sh.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.base, t.cfg.Timeout)
	defer cancel()
	if want {
		if err := t.join(ctx, s); err != nil {
			return err
		}
		sh.mu.Lock()
		st.owned = false
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
		sh.mu.Unlock()
		return nil
	}
	due, err := t.depart(ctx, s, at)
	if err != nil {
		return err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st.count > 0 {
		return nil // back meanwhile: queued again by Add
	}
	if due.IsZero() {
		delete(sh.scopes, s)
		return nil
	}
	st.owned = true
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(time.Until(due), func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		sh.enqueue(item{scope: s})
	})
	return nil
}

// get reads a scope's shared entry; rev 0 means there is none.
func (t *Tracker) get(ctx context.Context, s Scope) (state, uint64, error) {
	var st state
	e, err := t.kv.Get(ctx, s.key())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, 0, nil
	}
	if err != nil {
		return st, 0, fmt.Errorf("reading %s: %w", s.key(), err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, 0, fmt.Errorf("decoding %s: %w", s.key(), err)
	}
	return st, e.Revision(), nil
}

// read is get, or getLeader if leader.
func (t *Tracker) read(ctx context.Context, s Scope, leader bool) (state, uint64, error) {
	if leader {
		return t.getLeader(ctx, s)
	}
	return t.get(ctx, s)
}

// getLeader is get answered by the bucket's leader, for the sweep: a
// lagging replica's "no entry" there would drop a departure for good.
func (t *Tracker) getLeader(ctx context.Context, s Scope) (state, uint64, error) {
	var st state
	m, err := t.lastMsg(ctx, t.cfg.Bucket, s.key())
	if err != nil || m == nil || m.op() != "" {
		return st, 0, err
	}
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return st, 0, fmt.Errorf("decoding %s: %w", s.key(), err)
	}
	return st, m.Seq, nil
}

// put writes a scope's shared entry if it is still at rev; ok false means
// someone changed it first.
func (t *Tracker) put(ctx context.Context, s Scope, st state, rev uint64) (ok bool, err error) {
	b, _ := json.Marshal(st)
	if rev == 0 {
		_, err = t.kv.Create(ctx, s.key(), b)
	} else {
		_, err = t.kv.Update(ctx, s.key(), b, rev)
	}
	if conflict(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", s.key(), err)
	}
	return true, nil
}

// remove deletes a scope's shared entry if it is still at rev.
func (t *Tracker) remove(ctx context.Context, s Scope, rev uint64) (ok bool, err error) {
	err = t.kv.Purge(ctx, s.key(), jetstream.LastRevision(rev))
	if conflict(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing %s: %w", s.key(), err)
	}
	return true, nil
}

// conflict reports whether err is a lost compare-and-swap: a key that
// exists already, or a revision that moved on (a replicated bucket reports
// the latter with its own code).
func conflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// join puts this node into s's entry; the write that makes s present
// reports the change.
func (t *Tracker) join(ctx context.Context, s Scope) error {
	if _, err := t.kv.Put(ctx, s.index(t.cfg.NodeID), nil); err != nil {
		return fmt.Errorf("indexing %s: %w", s.key(), err)
	}
	leader := false
	for {
		st, rev, err := t.read(ctx, s, leader)
		if err != nil {
			return err
		}
		if st.Nodes[t.cfg.NodeID] && st.Leaving == nil {
			if !leader { // nothing to write: make sure on the leader
				leader = true
				continue
			}
			return nil
		}
		present := rev != 0 && (len(st.Nodes) > 0 || st.Leaving != nil)
		if st.Nodes == nil {
			st.Nodes = map[string]bool{}
		}
		st.Nodes[t.cfg.NodeID] = true
		st.Leaving = nil
		if !present {
			// The change happens when this write commits: stamped now,
			// it is later than the departure it follows, so receivers
			// may order a scope's changes by time.
			st.Since = time.Now()
		}
		ok, err := t.put(ctx, s, st, rev)
		if err != nil {
			return err
		}
		if ok {
			if !present {
				t.sink.Changed(ctx, Change{Scope: s, Up: true, At: st.Since})
			}
			return nil
		}
	}
}

// depart takes this node out of s's entry; the last one out starts the
// departure, which this node then owns and finalizes when due. It
// returns when the owned departure is due (zero: nothing left to do
// here).
func (t *Tracker) depart(ctx context.Context, s Scope, at time.Time) (time.Time, error) {
	leader := false
	for {
		st, rev, err := t.read(ctx, s, leader)
		if err != nil {
			return time.Time{}, err
		}
		if rev != 0 && st.Nodes[t.cfg.NodeID] {
			delete(st.Nodes, t.cfg.NodeID)
			if len(st.Nodes) == 0 && st.Leaving == nil {
				st.Leaving = &leaving{Owner: t.cfg.NodeID, At: at}
			}
			if _, err := t.put(ctx, s, st, rev); err != nil {
				return time.Time{}, err
			}
			continue // written or not, look again
		}
		if rev != 0 && len(st.Nodes) == 0 && st.Leaving != nil && st.Leaving.Owner == t.cfg.NodeID {
			due := st.Leaving.At.Add(t.cfg.OfflineDelay)
			if time.Now().Before(due) {
				return due, nil
			}
			ok, err := t.remove(ctx, s, rev)
			if err != nil {
				return time.Time{}, err
			}
			if !ok {
				continue
			}
			// Never before the arrival it ends (a tab may close while its
			// arrival is being written).
			t.sink.Changed(ctx, Change{Scope: s, Up: false, At: later(st.Leaving.At, st.Since)})
		} else if !leader {
			// Neither in s nor owning its departure, says a read that a
			// lagging replica may have answered: giving up the departure
			// on it would leave s present for good. Make sure.
			leader = true
			continue
		}
		if err := t.kv.Purge(ctx, s.index(t.cfg.NodeID)); err != nil {
			return time.Time{}, fmt.Errorf("unindexing %s: %w", s.key(), err)
		}
		return time.Time{}, nil
	}
}

// own makes this node finalize s's departure (taken over from a dead node).
func (t *Tracker) own(s Scope) {
	it := item{scope: s}
	sh := t.shardOf(it)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.scopes[s]
	if st == nil {
		st = &local{}
		sh.scopes[s] = st
	}
	if st.count == 0 {
		sh.enqueue(it)
	}
}
