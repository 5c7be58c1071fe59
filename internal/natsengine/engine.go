package natsengine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures an Engine.
type Config struct {
	// URL of an external NATS cluster (comma-separated); empty embeds a
	// server storing JetStream data under DataDir.
	URL     string
	DataDir string
	// NodeID names this node (also the embedded server's name).
	NodeID string
	// Dispatchers is how many goroutines hand received pushes to the
	// handler (default 2).
	Dispatchers int
	// QueueLen is each dispatcher's channel capacity (default 65536).
	QueueLen int
	Logger   *slog.Logger
	// Cluster, when set, makes the embedded server route to its peers: the
	// Herald nodes then form one NATS cluster, with JetStream data kept in
	// three replicas.
	Cluster *Cluster
	// Replicas is how many copies JetStream keeps of Herald's streams and
	// buckets; 0 means 3 with Cluster, else 1.
	Replicas int
	// Broad subscribes once to every topic at Start and makes Watch and
	// Unwatch free: right for a node that is the whole cluster (the
	// embedded default), where per-topic interest would cost memory per
	// user and room and route nothing.
	Broad bool
	// OnDrop is called when a subscription starts dropping pushes because
	// a dispatcher queue is full: once per episode, not per push (may be nil).
	OnDrop func()
	// OnReconnect is called when the connection to an external NATS is
	// back after a break, its subscriptions renewed (may be nil). Pushes
	// published during the break did not reach this node.
	OnReconnect func()
	// OnStoreFailure and OnStoreHealed are called when the embedded store
	// fails and when it serves again (may be nil).
	OnStoreFailure, OnStoreHealed func()
	// SyncInterval is how often the embedded JetStream syncs its files to
	// disk (0: the server's default, 2 minutes).
	SyncInterval time.Duration
}

// Cluster is how an embedded server joins the other nodes' servers.
type Cluster struct {
	Name   string   // the cluster's name, the same on every node
	Listen string   // host:port this server accepts routes on
	Peers  []string // nats://host:port of the other nodes' route listeners
}

// Engine is the NATS-backed engine.Broker.
type Engine struct {
	cfg     Config
	handler engine.Handler
	seed    maphash.Seed

	srv   *server.Server
	nc    *nats.Conn
	chans []chan *nats.Msg
	done  chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*watch
	// readyCheck is the check of a part built on this engine (the inbox,
	// whose stream must serve) that Ready adds (nil: none).
	readyCheck func(context.Context) error

	sopts *server.Options // the embedded server's, to restart its store
	store storeHealth
}

type watch struct {
	refs int
	sub  *nats.Subscription
}

var _ engine.Broker = (*Engine)(nil)

// New validates cfg; it starts nothing.
func New(cfg Config, h engine.Handler) (*Engine, error) {
	if h == nil {
		return nil, errors.New("natsengine: nil handler")
	}
	if cfg.URL == "" && cfg.DataDir == "" {
		return nil, errors.New("natsengine: embedded mode needs a data directory")
	}
	if cfg.NodeID == "" {
		return nil, errors.New("natsengine: empty node id")
	}
	if cfg.Dispatchers <= 0 {
		cfg.Dispatchers = 2
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 65536
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, handler: h, seed: maphash.MakeSeed(), subs: make(map[string]*watch)}
	e.store.kick = make(chan struct{}, 1)
	return e, nil
}

// Start starts the embedded server (if any), connects and starts the
// dispatchers. Close undoes it.
func (e *Engine) Start(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name("herald " + e.cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				if e.cfg.OnDrop != nil {
					e.cfg.OnDrop()
				}
				return
			}
			e.cfg.Logger.Warn("nats error", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				e.cfg.Logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			e.cfg.Logger.Info("nats reconnected", "url", nc.ConnectedUrl())
			if e.cfg.OnReconnect != nil {
				e.cfg.OnReconnect()
			}
		}),
	}
	url := e.cfg.URL
	if url == "" {
		sopts := &server.Options{
			ServerName:   e.cfg.NodeID,
			DontListen:   true,
			JetStream:    true,
			StoreDir:     filepath.Join(e.cfg.DataDir, "jetstream"),
			NoSigs:       true,
			NoLog:        true,
			MaxPayload:   8 << 20,
			SyncInterval: e.cfg.SyncInterval,
		}
		if c := e.cfg.Cluster; c != nil {
			host, port, err := net.SplitHostPort(c.Listen)
			if err != nil {
				return fmt.Errorf("natsengine: cluster listen address: %w", err)
			}
			sopts.Cluster.Name, sopts.Cluster.Host = c.Name, host
			if sopts.Cluster.Port, err = strconv.Atoi(port); err != nil {
				return fmt.Errorf("natsengine: cluster listen port: %w", err)
			}
			sopts.Routes = server.RoutesFromStr(strings.Join(c.Peers, ","))
			// Routes start only once the client listener does; clients
			// connect in-process, so it takes a random loopback port.
			sopts.DontListen, sopts.Host, sopts.Port = false, "127.0.0.1", server.RANDOM_PORT
		}
		srv, err := server.NewServer(sopts)
		if err != nil {
			return fmt.Errorf("natsengine: embedded server: %w", err)
		}
		srv.SetLoggerV2(serverLog{e}, false, false, false)
		srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			srv.Shutdown()
			return fmt.Errorf("natsengine: embedded server not ready: %w", engine.ErrUnavailable)
		}
		e.srv, e.sopts = srv, sopts
		if c := e.cfg.Cluster; c != nil {
			e.cfg.Logger.Info("embedded NATS server clustering", "cluster", c.Name, "routes", c.Listen,
				"peers", strings.Join(c.Peers, ","), "clients", srv.ClientURL())
		}
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		e.shutdownServer()
		return fmt.Errorf("natsengine: connecting: %w", errors.Join(engine.ErrUnavailable, err))
	}
	e.nc = nc
	e.done = make(chan struct{})
	e.chans = make([]chan *nats.Msg, e.cfg.Dispatchers)
	for i := range e.chans {
		ch := make(chan *nats.Msg, e.cfg.QueueLen)
		e.chans[i] = ch
		e.wg.Add(1)
		go e.dispatch(ch)
	}
	if e.healsStore() {
		e.wg.Add(1)
		go e.superviseStore()
	}
	if e.cfg.Broad {
		// One wildcard per kind, each on its own dispatcher, so a topic's
		// pushes keep their order and kinds fan out in parallel.
		for i, subj := range []string{Prefix + "u.>", Prefix + "r.>", Prefix + "a.>", Prefix + "all", Prefix + "n.>"} {
			if _, err := nc.ChanSubscribe(subj, e.chans[i%len(e.chans)]); err != nil {
				e.Close()
				return fmt.Errorf("natsengine: subscribe %s: %w", subj, err)
			}
		}
	}
	return nil
}

// maxBurst bounds how many waiting pushes one handler call carries.
const maxBurst = 256

// dispatch hands one channel's pushes to the handler, in arrival order,
// together with whatever else is already waiting (never waiting for more).
func (e *Engine) dispatch(ch chan *nats.Msg) {
	defer e.wg.Done()
	burst := make([][]byte, 0, maxBurst)
	for {
		select {
		case m := <-ch:
			burst = append(burst[:0], m.Data)
		more:
			for len(burst) < maxBurst {
				select {
				case m := <-ch:
					burst = append(burst, m.Data)
				default:
					break more
				}
			}
			e.handler(burst)
			clear(burst)
		case <-e.done:
			return
		}
	}
}

// Close unsubscribes, disconnects, stops the dispatchers and the embedded
// server.
func (e *Engine) Close() error {
	e.mu.Lock()
	nc := e.nc
	e.nc = nil
	e.mu.Unlock()
	if nc == nil {
		return nil
	}
	e.mu.Lock()
	for subj, w := range e.subs {
		_ = w.sub.Unsubscribe()
		delete(e.subs, subj)
	}
	e.mu.Unlock()
	nc.Close()
	close(e.done)
	e.wg.Wait()
	e.shutdownServer()
	return nil
}

func (e *Engine) shutdownServer() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
}

// Publish implements engine.Broker.
func (e *Engine) Publish(ctx context.Context, t engine.Topic, payload []byte) error {
	nc := e.Conn()
	if nc == nil || !nc.IsConnected() {
		return fmt.Errorf("natsengine: publish: %w", engine.ErrUnavailable)
	}
	if err := nc.Publish(Subject(t), payload); err != nil {
		return fmt.Errorf("natsengine: publish: %w", err)
	}
	return nil
}

// Watch implements engine.Broker.
func (e *Engine) Watch(t engine.Topic) error {
	if e.cfg.Broad {
		return nil // Start subscribed to everything
	}
	subj := Subject(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nc == nil {
		return fmt.Errorf("natsengine: watch: %w", engine.ErrUnavailable)
	}
	if w := e.subs[subj]; w != nil {
		w.refs++
		return nil
	}
	ch := e.chans[maphash.String(e.seed, subj)%uint64(len(e.chans))]
	sub, err := e.nc.ChanSubscribe(subj, ch)
	if err != nil {
		return fmt.Errorf("natsengine: subscribe %s: %w", subj, err)
	}
	e.subs[subj] = &watch{refs: 1, sub: sub}
	return nil
}

// Unwatch implements engine.Broker.
func (e *Engine) Unwatch(t engine.Topic) error {
	if e.cfg.Broad {
		return nil
	}
	subj := Subject(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.subs[subj]
	if w == nil {
		return nil
	}
	if w.refs--; w.refs > 0 {
		return nil
	}
	delete(e.subs, subj)
	if err := w.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsengine: unsubscribe %s: %w", subj, err)
	}
	return nil
}

// Ready implements engine.Broker: the node can serve its clients now. It
// round-trips to the NATS server, then (once a part built on the engine
// called RequireReady: the inbox, package natsinbox) asks that part's
// check (the inbox stream has a leader and a majority of its replicas), so
// that a node whose JetStream cannot read or store is not ready even while
// its NATS connection is up.
func (e *Engine) Ready(ctx context.Context) error {
	if err := e.storeReady(); err != nil {
		return err
	}
	nc := e.Conn()
	if nc == nil || !nc.IsConnected() {
		return engine.ErrUnavailable
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsengine: %w", errors.Join(engine.ErrUnavailable, err))
	}
	e.mu.Lock()
	check := e.readyCheck
	e.mu.Unlock()
	if check != nil {
		return check(ctx)
	}
	return nil
}

// RequireReady makes Ready also ask check, after its round trip to the
// server: a part built on the engine (the inbox) calls it when made, so
// that the engine is ready only when that part can serve. A later call
// replaces the check.
func (e *Engine) RequireReady(check func(context.Context) error) {
	e.mu.Lock()
	e.readyCheck = check
	e.mu.Unlock()
}

// Conn returns the NATS connection, nil before Start and after Close. The
// parts built on the engine (the inbox) share it.
func (e *Engine) Conn() *nats.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nc
}

// Done returns a channel closed when the engine closes (nil before Start):
// goroutines of the parts built on the engine stop on it.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Backoff waits before retry attempt (0, 1, ...) of a JetStream request:
// 1 ms doubling up to 50 ms, or until ctx ends (then its error).
func Backoff(ctx context.Context, attempt int) error {
	d := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
