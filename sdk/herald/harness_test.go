package herald_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
	"github.com/heraldpush/herald/sdk/herald"
)

// wait bounds every wait in these tests; it is a deadline, not a timing
// assertion.
const wait = 15 * time.Second

const (
	apiKey   = "shop-key-0123456789"
	adminKey = "admin-key-0123456789"
	secret   = "shop-secret-0123456789"
)

// node is a real Herald server running in the test process, with app
// "shop" and an admin key.
type node struct {
	t    testing.TB
	cfg  config.Config
	addr string // host:port, kept across restarts
	stop func()
	// via is the transport the node's clients use (default: HTTP).
	via transport
}

// transport is a way for a Client to reach the API; the client tests run
// on each.
type transport struct {
	name string
	opts []herald.Option
	push string // the push operation's path
	// roundTripper returns a fresh round tripper the transport can use.
	roundTripper func() http.RoundTripper
}

var transports = []transport{
	{name: "http", push: "/v1/push", roundTripper: func() http.RoundTripper { return http.DefaultTransport.(*http.Transport).Clone() }},
	{name: "grpc", opts: []herald.Option{herald.WithGRPC()}, push: "/herald.v1.HeraldService/Push", roundTripper: func() http.RoundTripper {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &http.Transport{Protocols: &p}
	}},
}

// eachTransport runs test on a node of its own per transport.
func eachTransport(t *testing.T, test func(t *testing.T, n *node)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := startNode(t, nil)
			n.via = tr
			test(t, n)
		})
	}
}

// startNode runs a node on a free loopback port until the test ends.
func startNode(t testing.TB, edit func(*config.Config)) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.AdminKeys = []string{adminKey}
	cfg.Apps = []config.App{{Name: "shop", APIKeys: []string{apiKey}, TokenSecret: secret}}
	if edit != nil {
		edit(&cfg)
	}
	n := &node{t: t, cfg: cfg}
	n.start()
	t.Cleanup(func() { n.stop() })
	return n
}

// start runs the node (again: on the same address and data directory).
func (n *node) start() {
	n.t.Helper()
	cfg := n.cfg
	if n.addr != "" {
		cfg.Addr = n.addr
	}
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		n.t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, 5*time.Second) }()
	select {
	case <-srv.Ready:
	case err := <-done:
		cancel()
		n.t.Fatalf("server did not start: %v", err)
	case <-time.After(wait):
		cancel()
		n.t.Fatal("server did not start in time")
	}
	n.addr = srv.Addr
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				n.t.Errorf("stopping server: %v", err)
			}
		case <-time.After(wait):
			n.t.Error("server did not stop in time")
		}
	}
}

// restart stops the node and starts a new one on its address and data.
func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

func (n *node) base() string { return "http://" + n.addr }

// client returns an SDK server client with key, over the node's transport.
func (n *node) client(key string, opts ...herald.Option) *herald.Client {
	n.t.Helper()
	c, err := herald.NewClient(n.base(), key, append(slices.Clone(n.via.opts), opts...)...)
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// token mints a client token of app shop for user.
func token(t testing.TB, user string, edit func(*auth.Claims)) string {
	t.Helper()
	c := auth.Claims{App: "shop", User: user, Rooms: []string{"*"}, Expires: time.Now().Add(time.Hour)}
	if edit != nil {
		edit(&c)
	}
	tok, err := auth.Mint("shop", []byte(secret), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ctx returns a context that ends with the test or after wait.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

// dial connects as user and reads the Connected event.
func (n *node) dial(user string, opts ...herald.DialOption) (*herald.Conn, *herald.Connected) {
	n.t.Helper()
	opts = append([]herald.DialOption{herald.WithToken(token(n.t, user, nil)), herald.WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	c, err := herald.Dial(ctx(n.t), "ws://"+n.addr+"/v1/ws", opts...)
	if err != nil {
		n.t.Fatalf("dial as %s: %v", user, err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c, next[*herald.Connected](n.t, c)
}

// next returns the next event, failing unless it is a T.
func next[T herald.Event](t testing.TB, c *herald.Conn) T {
	t.Helper()
	ev := nextEvent(t, c)
	got, ok := ev.(T)
	if !ok {
		var want T
		t.Fatalf("got event %T %+v, want %T", ev, ev, want)
	}
	return got
}

// nextEvent returns the next event of c.
func nextEvent(t testing.TB, c *herald.Conn) herald.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed: %v", c.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event in time")
	}
	return nil
}

// skipTo returns the next event that is a T, skipping others.
func skipTo[T herald.Event](t testing.TB, c *herald.Conn) T {
	t.Helper()
	for {
		if ev, ok := nextEvent(t, c).(T); ok {
			return ev
		}
	}
}

// waitFor polls cond until it holds, failing after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in time", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// code returns err's *herald.Error, failing if there is none.
func apiError(t testing.TB, err error) *herald.Error {
	t.Helper()
	var e *herald.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *herald.Error", err, err)
	}
	return e
}
