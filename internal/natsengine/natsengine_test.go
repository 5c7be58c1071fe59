package natsengine_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

const wait = 10 * time.Second

// start starts e and closes it when t ends.
func start(t testing.TB, e *natsengine.Engine) *natsengine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func newEngine(t testing.TB, cfg natsengine.Config, h engine.Handler) *natsengine.Engine {
	t.Helper()
	e, err := natsengine.New(cfg, h)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return e
}

// openEmbedded is the enginetest.Opener of an engine with its own embedded
// server (JetStream in a temporary directory).
func openEmbedded(t *testing.T, h engine.Handler) engine.Broker {
	t.Helper()
	return start(t, newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "embedded"}, h))
}

// runServer starts a standalone NATS server listening on a random loopback
// port (no JetStream) and shuts it down when t ends.
func runServer(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(wait) {
		t.Fatal("nats server not ready")
	}
	return srv
}

// openURL returns an Opener of engines connecting to srv as node id.
func openURL(srv *server.Server, id string) enginetest.Opener {
	return func(t *testing.T, h engine.Handler) engine.Broker {
		t.Helper()
		return start(t, newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: id}, h))
	}
}

// sharedServer is the WithPair constructor: two engines, nodes a and b, of
// one standalone server.
func sharedServer(t *testing.T) (enginetest.Opener, enginetest.Opener) {
	srv := runServer(t)
	return openURL(srv, "a"), openURL(srv, "b")
}

func TestConformanceEmbedded(t *testing.T) {
	enginetest.RunBroker(t, openEmbedded, enginetest.WithPair(sharedServer))
}

func TestConformanceURL(t *testing.T) {
	srv := runServer(t)
	enginetest.RunBroker(t, openURL(srv, "url"))
}

func TestSubject(t *testing.T) {
	b64 := func(s string) string { return "~" + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct {
		t    engine.Topic
		want string
	}{
		{engine.Topic{Kind: engine.User, App: "app", Name: "alice"}, "hrl.u.app.alice"},
		{engine.Topic{Kind: engine.Room, App: "app", Name: "lobby"}, "hrl.r.app.lobby"},
		{engine.Topic{Kind: engine.App, App: "app"}, "hrl.a.app"},
		{engine.Topic{Kind: engine.All}, "hrl.all"},
		{engine.Topic{Kind: engine.Node, Name: "node-1"}, "hrl.n.node-1"},
		// Plain tokens: ASCII letters, digits, '_' and '-'.
		{engine.Topic{Kind: engine.User, App: "App_1-x", Name: "AZaz09_-"}, "hrl.u.App_1-x.AZaz09_-"},
		// Anything else is base64url (no padding) behind '~'.
		{engine.Topic{Kind: engine.User, App: "app", Name: "a.b"}, "hrl.u.app." + b64("a.b")},
		{engine.Topic{Kind: engine.Room, App: "my app", Name: "*"}, "hrl.r." + b64("my app") + "." + b64("*")},
		{engine.Topic{Kind: engine.Room, App: "app", Name: ">"}, "hrl.r.app." + b64(">")},
		{engine.Topic{Kind: engine.User, App: "app", Name: "ü"}, "hrl.u.app." + b64("ü")},
		{engine.Topic{Kind: engine.User, App: "app", Name: "a b"}, "hrl.u.app.~YSBi"},
		{engine.Topic{Kind: engine.Node, Name: "\x00"}, "hrl.n.~AA"},
		// The empty name is encoded too: "~" is never a plain token.
		{engine.Topic{Kind: engine.User, App: "app", Name: ""}, "hrl.u.app.~"},
		{engine.Topic{Kind: engine.App, App: ""}, "hrl.a.~"},
		// '~'-prefixed names are encoded, so they cannot pose as an
		// encoded token: "~YQ" is what "a" would be if it were encoded.
		{engine.Topic{Kind: engine.User, App: "app", Name: "~"}, "hrl.u.app.~fg"},
		{engine.Topic{Kind: engine.User, App: "app", Name: "~YQ"}, "hrl.u.app." + b64("~YQ")},
		{engine.Topic{Kind: engine.User, App: "app", Name: "~fg"}, "hrl.u.app." + b64("~fg")},
		{engine.Topic{Kind: engine.User, App: "app", Name: "a~b"}, "hrl.u.app." + b64("a~b")},
		// All has no app or name; App no name.
		{engine.Topic{Kind: engine.All, App: "ignored", Name: "ignored"}, "hrl.all"},
		{engine.Topic{Kind: engine.App, App: "app", Name: "ignored"}, "hrl.a.app"},
	} {
		if got := natsengine.Subject(c.t); got != c.want {
			t.Errorf("Subject(%+v) = %q, want %q", c.t, got, c.want)
		}
	}
}

// checkSubject fails unless subj is a literal NATS subject (non-empty
// tokens of printable ASCII, no wildcards) whose tokens decode back to t.
func checkSubject(t *testing.T, tp engine.Topic, subj string) {
	t.Helper()
	toks := strings.Split(subj, ".")
	for _, tok := range toks {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("Subject(%+v) = %q: token %q is not a literal subject token", tp, subj, tok)
		}
	}
	decode := func(tok string) string {
		if rest, ok := strings.CutPrefix(tok, "~"); ok {
			b, err := base64.RawURLEncoding.DecodeString(rest)
			if err != nil {
				t.Fatalf("Subject(%+v) = %q: token %q: %v", tp, subj, tok, err)
			}
			return string(b)
		}
		return tok
	}
	var got engine.Topic
	switch {
	case len(toks) == 4 && toks[1] == "u":
		got = engine.Topic{Kind: engine.User, App: decode(toks[2]), Name: decode(toks[3])}
	case len(toks) == 4 && toks[1] == "r":
		got = engine.Topic{Kind: engine.Room, App: decode(toks[2]), Name: decode(toks[3])}
	case len(toks) == 3 && toks[1] == "a":
		got = engine.Topic{Kind: engine.App, App: decode(toks[2])}
	case len(toks) == 2 && toks[1] == "all":
		got = engine.Topic{Kind: engine.All}
	case len(toks) == 3 && toks[1] == "n":
		got = engine.Topic{Kind: engine.Node, Name: decode(toks[2])}
	default:
		t.Fatalf("Subject(%+v) = %q: unknown shape", tp, subj)
	}
	if toks[0] != "hrl" || got != tp {
		t.Fatalf("Subject(%+v) = %q decodes to %+v", tp, subj, got)
	}
}

var subjectNames = []string{
	"", "a", "A", "~", "~~", "~YQ", "~fg", "a.b", "a b", "*", ">", ".", "..", "\x00",
	"ü", "日本語", "🙂", "\xff", "_", "-", "0", "a~", "YQ", "$SYS", "hrl.u.a.b",
}

func subjectTopics(names []string) []engine.Topic {
	topics := []engine.Topic{{Kind: engine.All}}
	for _, a := range names {
		topics = append(topics, engine.Topic{Kind: engine.App, App: a}, engine.Topic{Kind: engine.Node, Name: a})
		for _, n := range names {
			topics = append(topics,
				engine.Topic{Kind: engine.User, App: a, Name: n},
				engine.Topic{Kind: engine.Room, App: a, Name: n})
		}
	}
	return topics
}

// TestSubjectInjective checks that distinct topics never share a subject
// and every subject is literal and decodes back to its topic.
func TestSubjectInjective(t *testing.T) {
	seen := map[string]engine.Topic{}
	for _, tp := range subjectTopics(subjectNames) {
		subj := natsengine.Subject(tp)
		checkSubject(t, tp, subj)
		if prev, ok := seen[subj]; ok {
			t.Fatalf("%+v and %+v share subject %q", prev, tp, subj)
		}
		seen[subj] = tp
	}
}

func FuzzSubject(f *testing.F) {
	for _, n := range subjectNames {
		f.Add(n, n)
	}
	f.Fuzz(func(t *testing.T, app, name string) {
		checkSubject(t, engine.Topic{Kind: engine.User, App: app, Name: name},
			natsengine.Subject(engine.Topic{Kind: engine.User, App: app, Name: name}))
		checkSubject(t, engine.Topic{Kind: engine.Room, App: app, Name: name},
			natsengine.Subject(engine.Topic{Kind: engine.Room, App: app, Name: name}))
		checkSubject(t, engine.Topic{Kind: engine.App, App: app}, natsengine.Subject(engine.Topic{Kind: engine.App, App: app}))
		checkSubject(t, engine.Topic{Kind: engine.Node, Name: name}, natsengine.Subject(engine.Topic{Kind: engine.Node, Name: name}))
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := func([][]byte) {}
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		cfg  natsengine.Config
		h    engine.Handler
	}{
		{"nil handler", natsengine.Config{DataDir: dir, NodeID: "n"}, nil},
		{"embedded without data dir", natsengine.Config{NodeID: "n"}, h},
		{"empty node id (embedded)", natsengine.Config{DataDir: dir}, h},
		{"empty node id (url)", natsengine.Config{URL: "nats://127.0.0.1:4222"}, h},
	} {
		if e, err := natsengine.New(c.cfg, c.h); err == nil || e != nil {
			t.Errorf("%s: New = %v, %v; want nil, error", c.name, e, err)
		}
	}
	for _, c := range []struct {
		name string
		cfg  natsengine.Config
	}{
		{"embedded", natsengine.Config{DataDir: dir, NodeID: "n"}},
		{"url without data dir", natsengine.Config{URL: "nats://127.0.0.1:4222", NodeID: "n"}},
		{"negative sizes take defaults", natsengine.Config{DataDir: dir, NodeID: "n", Dispatchers: -1, QueueLen: -1}},
	} {
		if e, err := natsengine.New(c.cfg, h); err != nil || e == nil {
			t.Errorf("%s: New = %v, %v; want an engine", c.name, e, err)
		}
	}
}

func readyErr(e *natsengine.Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return e.Ready(ctx)
}

func TestNeverStarted(t *testing.T) {
	e := newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "n"}, func([][]byte) {})
	if err := readyErr(e); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Ready before Start = %v, want engine.ErrUnavailable", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close before Start = %v, want nil", err)
	}
}

func TestAfterClose(t *testing.T) {
	for name, cfg := range map[string]func(t *testing.T) natsengine.Config{
		"embedded": func(t *testing.T) natsengine.Config {
			return natsengine.Config{DataDir: t.TempDir(), NodeID: "n"}
		},
		"url": func(t *testing.T) natsengine.Config {
			return natsengine.Config{URL: runServer(t).ClientURL(), NodeID: "n"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, cfg(t), func([][]byte) {})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			tp := engine.Topic{Kind: engine.User, App: "app", Name: "u"}
			if err := e.Watch(tp); err != nil {
				t.Fatal(err)
			}
			if err := readyErr(e); err != nil {
				t.Fatalf("Ready after Start = %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if err := readyErr(e); !errors.Is(err, engine.ErrUnavailable) {
				t.Errorf("Ready after Close = %v, want engine.ErrUnavailable", err)
			}
			if err := e.Publish(ctx, tp, []byte("x")); !errors.Is(err, engine.ErrUnavailable) {
				t.Errorf("Publish after Close = %v, want engine.ErrUnavailable", err)
			}
			if err := e.Watch(engine.Topic{Kind: engine.Room, App: "app", Name: "r"}); err == nil {
				t.Error("Watch after Close succeeded")
			}
			// Close dropped every subscription, so this is a no-op.
			if err := e.Unwatch(tp); err != nil {
				t.Errorf("Unwatch after Close = %v", err)
			}
		})
	}
}

// TestUnreachableURL: with an external URL the engine starts even when
// nothing listens (it keeps retrying) and reports itself unavailable.
func TestUnreachableURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	before := goroutines()
	e := newEngine(t, natsengine.Config{URL: "nats://" + addr, NodeID: "n"}, func([][]byte) {})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start = %v, want nil (the connection is retried)", err)
	}
	if err := readyErr(e); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Ready = %v, want engine.ErrUnavailable", err)
	}
	if err := e.Publish(ctx, engine.Topic{Kind: engine.All}, []byte("x")); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("Publish = %v, want engine.ErrUnavailable", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	verifyNoLeaks(t, before)
}

// TestOnDrop: a full dispatcher queue drops pushes and reports it.
func TestOnDrop(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	dropped := make(chan struct{}, 1)
	e := newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "n", Dispatchers: 1, QueueLen: 1,
		OnDrop: func() {
			select {
			case dropped <- struct{}{}:
			default:
			}
		}}, func([][]byte) {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-release
	})
	start(t, e)
	defer close(release) // before Close (a Cleanup) so the dispatcher can stop
	tp := engine.Topic{Kind: engine.Room, App: "app", Name: "slow"}
	if err := e.Watch(tp); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i := range 16 {
		if err := e.Publish(ctx, tp, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ch   chan struct{}
		what string
	}{{blocked, "handler call"}, {dropped, "OnDrop call"}} {
		select {
		case <-c.ch:
		case <-time.After(wait):
			t.Fatalf("no %s within %v", c.what, wait)
		}
	}
}

// goroutines returns the stacks of all goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	m := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		rest, ok := strings.CutPrefix(g, "goroutine ")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, " ")
		m[id] = g
	}
	return m
}

// verifyNoLeaks fails t if goroutines that did not exist in before are
// still running once they had wait to finish. It stands in for
// goleak.VerifyNone(t, goleak.IgnoreCurrent()): go.uber.org/goleak is in
// go.sum but not required by go.mod, so it cannot be imported here.
func verifyNoLeaks(t *testing.T, before map[string]string) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 {
			return
		}
		select {
		case <-poll.C:
			continue
		case <-deadline.C:
		}
		sort.Strings(leaked)
		t.Fatalf("%d goroutines leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// exercise watches, publishes and receives on a started engine.
func exercise(t *testing.T, e *natsengine.Engine, got <-chan []byte) {
	t.Helper()
	tp := engine.Topic{Kind: engine.Room, App: "app", Name: "leak"}
	if err := e.Watch(tp); err != nil {
		t.Fatal(err)
	}
	if err := e.Watch(engine.Topic{Kind: engine.User, App: "app", Name: "left-watched"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.Publish(ctx, tp, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != "ping" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(wait):
		t.Fatal("no delivery")
	}
	if err := readyErr(e); err != nil {
		t.Fatal(err)
	}
}

func TestNoLeakEmbedded(t *testing.T) {
	dir := t.TempDir()
	before := goroutines()
	got := make(chan []byte, 1)
	e := newEngine(t, natsengine.Config{DataDir: dir, NodeID: "n"}, func(ps [][]byte) {
		for _, p := range ps {
			got <- slices.Clone(p)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exercise(t, e, got)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	verifyNoLeaks(t, before)
}

func TestNoLeakURL(t *testing.T) {
	srv := runServer(t)
	before := goroutines()
	got := make(chan []byte, 1)
	e := newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "n"}, func(ps [][]byte) {
		for _, p := range ps {
			got <- slices.Clone(p)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exercise(t, e, got)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	verifyNoLeaks(t, before)
}

// BenchmarkPublishDeliver measures publish→handler throughput of an
// embedded engine: 100-byte payloads on one watched topic, at most window
// of them in flight (so the dispatcher queue never overflows). An op is one
// payload published and handed to the handler.
func BenchmarkPublishDeliver(b *testing.B) {
	const window, every = 4096, 256
	var recv, target, dropped atomic.Int64
	wake := make(chan struct{}, 1)
	e := newEngine(b, natsengine.Config{DataDir: b.TempDir(), NodeID: "bench", OnDrop: func() { dropped.Add(1) }},
		func([][]byte) {
			if n := recv.Add(1); n%every == 0 || n == target.Load() {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		})
	start(b, e)
	tp := engine.Topic{Kind: engine.Room, App: "bench", Name: "room"}
	if err := e.Watch(tp); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	payload := make([]byte, 100)
	// waitFor blocks until the handler has seen at least n payloads. The
	// handler wakes it every `every` payloads and at the target.
	waitFor := func(n int64) {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for recv.Load() < n {
			select {
			case <-wake:
			case <-timer.C:
				b.Fatalf("handler saw %d of %d payloads (%d drop episodes reported)", recv.Load(), n, dropped.Load())
			}
		}
	}
	n := int64(b.N)
	target.Store(n)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := range n {
		if i-recv.Load() >= window {
			waitFor(i - window + 1)
		}
		if err := e.Publish(ctx, tp, payload); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(n)
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	if dropped.Load() > 0 {
		b.Fatalf("%d drop episodes reported", dropped.Load())
	}
}

// TestBroadInterest: a broad engine delivers every topic without Watch, in
// per-topic order.
func TestBroadInterest(t *testing.T) {
	got := make(chan string, 100)
	e := start(t, newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "n", Broad: true}, func(ps [][]byte) {
		for _, p := range ps {
			got <- string(p)
		}
	}))
	topics := []engine.Topic{{Kind: engine.User, App: "a", Name: "u"}, {Kind: engine.Room, App: "a", Name: "r"},
		{Kind: engine.App, App: "a"}, {Kind: engine.All}, {Kind: engine.Node, Name: "n"}}
	for i, tp := range topics {
		if err := e.Publish(context.Background(), tp, []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range topics {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v arrived", seen)
		}
	}
	if len(seen) != len(topics) {
		t.Fatalf("arrived %v", seen)
	}
	if err := e.Watch(topics[0]); err != nil {
		t.Fatalf("Watch on a broad engine: %v", err)
	}
	if err := e.Unwatch(topics[0]); err != nil {
		t.Fatalf("Unwatch on a broad engine: %v", err)
	}
}

// TestRecordsBatch: the records of a batch, stored in one write (a record
// with an id of its own beside them), are found one by one; recalling one
// recalls only it.
func TestRecordsBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e := start(t, newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "records"}, func([][]byte) {}))
	r := e.Records(time.Hour)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var rs []engine.MessageRecord
	for i := range 3 {
		rs = append(rs, engine.MessageRecord{ID: engine.BatchID("m_b1", i), App: "app", Created: now, TTL: time.Minute,
			Users: []engine.UserSeq{{User: "u" + strconv.Itoa(i), Seq: uint64(i + 1)}}})
	}
	own := engine.MessageRecord{ID: "order-7", App: "app", Created: now, TTL: time.Minute, Users: []engine.UserSeq{{User: "v", Seq: 9}}}
	if err := r.PutBatch(ctx, "app", "m_b1", append(rs, own)); err != nil {
		t.Fatal(err)
	}
	for _, want := range append(rs, own) {
		got, err := r.Record(ctx, "app", want.ID)
		if err != nil || got.ID != want.ID || got.Users[0] != want.Users[0] || !got.Created.Equal(now) || got.Recalled {
			t.Fatalf("Record(%s) = %+v, %v", want.ID, got, err)
		}
	}
	for _, k := range [][2]string{{"app", "m_b1-7"}, {"other", rs[0].ID}, {"app", "m_b1"}, {"app", "m_b2-0"}} {
		if _, err := r.Record(ctx, k[0], k[1]); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("Record(%q, %q) = %v, want not found", k[0], k[1], err)
		}
	}
	was, err := r.Recall(ctx, "app", rs[1].ID)
	if err != nil || was.Recalled || was.ID != rs[1].ID {
		t.Fatalf("Recall = %+v, %v", was, err)
	}
	if was, err := r.Recall(ctx, "app", rs[1].ID); err != nil || !was.Recalled {
		t.Fatalf("second Recall = %+v, %v; want it reported recalled", was, err)
	}
	for i, want := range []bool{false, true, false} {
		if got, err := r.Record(ctx, "app", rs[i].ID); err != nil || got.Recalled != want || got.Users[0] != rs[i].Users[0] {
			t.Fatalf("Record(%s) after the recall = %+v, %v", rs[i].ID, got, err)
		}
	}
}

// The records and nodes suites, each on an engine with its own embedded
// server, on engines of one external server (as separate nodes would be),
// and on a three-server cluster with three replicas.

func TestRecordsConformanceEmbedded(t *testing.T) {
	enginetest.RunRecords(t, func(t *testing.T) engine.Records {
		return start(t, newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "records"}, func([][]byte) {})).Records(time.Hour)
	})
}

func TestRecordsConformanceURL(t *testing.T) {
	srv := natstest.JetStream(t)
	enginetest.RunRecords(t, func(t *testing.T) engine.Records {
		return start(t, newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "n"}, func([][]byte) {})).Records(time.Hour)
	})
}

func TestRecordsConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	// Records reads a replicated bucket from its leader (kvRead): a
	// key-value Get is a direct get that a replica behind the leader
	// answers, and RoundTrip, NamesDistinct, Recall and RecallConcurrent
	// failed on it here.
	urls := natstest.Cluster(t)
	var n atomic.Int64
	enginetest.RunRecords(t, func(t *testing.T) engine.Records {
		i := n.Add(1)
		cfg := natsengine.Config{URL: urls[i%3], NodeID: "n" + strconv.FormatInt(i, 10), Replicas: 3}
		return start(t, newEngine(t, cfg, func([][]byte) {})).Records(time.Hour)
	})
}

func TestNodesConformanceEmbedded(t *testing.T) {
	enginetest.RunNodes(t, func(t *testing.T) engine.Nodes {
		return start(t, newEngine(t, natsengine.Config{DataDir: t.TempDir(), NodeID: "nodes"}, func([][]byte) {})).Nodes(enginetest.NodesTTL)
	})
}

func TestNodesConformanceURL(t *testing.T) {
	srv := natstest.JetStream(t)
	enginetest.RunNodes(t, func(t *testing.T) engine.Nodes {
		return start(t, newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "n"}, func([][]byte) {})).Nodes(enginetest.NodesTTL)
	})
}

func TestNodesConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls := natstest.Cluster(t)
	var n atomic.Int64
	enginetest.RunNodes(t, func(t *testing.T) engine.Nodes {
		i := n.Add(1)
		cfg := natsengine.Config{URL: urls[i%3], NodeID: "n" + strconv.FormatInt(i, 10), Replicas: 3}
		return start(t, newEngine(t, cfg, func([][]byte) {})).Nodes(enginetest.NodesTTL)
	})
}
