package push

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natsinbox"
	"github.com/heraldpush/herald/internal/protocol"
)

// inbox records what one connection is sent.
type inbox struct {
	mu   sync.Mutex
	msgs []map[string]any
	got  chan struct{}
}

func (b *inbox) Send(frames ...*protocol.Outgoing) {
	b.mu.Lock()
	for _, f := range frames {
		var m map[string]any
		_ = json.Unmarshal(f.Msg, &m)
		b.msgs = append(b.msgs, m)
	}
	b.mu.Unlock()
	select {
	case b.got <- struct{}{}:
	default:
	}
}

// wait returns the n-th message (1-based) once it arrived.
func (b *inbox) wait(t *testing.T, n int) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		if len(b.msgs) >= n {
			m := b.msgs[n-1]
			b.mu.Unlock()
			return m
		}
		b.mu.Unlock()
		select {
		case <-b.got:
		case <-deadline:
			t.Fatalf("message %d did not arrive", n)
		}
	}
}

type fixture struct {
	svc *Service
	hub *hub.Hub
	eng *natsengine.Engine
}

// newFixture runs a Service on a real embedded NATS engine.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{hub: hub.New(4)}
	eng, err := natsengine.New(natsengine.Config{DataDir: t.TempDir(), NodeID: "n1"}, func(p [][]byte) { f.svc.Deliver(p) })
	if err != nil {
		t.Fatal(err)
	}
	f.eng = eng
	inbox, err := natsinbox.New(eng, natsinbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.svc, err = New(Limits{MaxPayload: 1024, MaxTargets: 10, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour, IdempotencyTTL: time.Minute},
		eng, inbox, eng.Records(time.Hour), f.hub, metrics.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := inbox.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := eng.Watch(engine.Topic{Kind: engine.Node, Name: "n1"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// conn registers a connection and watches its topics, as the gateway does.
func (f *fixture) conn(t *testing.T, id, app, user string, rooms ...string) *inbox {
	t.Helper()
	b := &inbox{got: make(chan struct{}, 1)}
	c := &hub.Conn{ID: id, App: app, User: user, Out: b}
	f.hub.Add(c)
	for _, topic := range []engine.Topic{{Kind: engine.User, App: app, Name: user}, {Kind: engine.App, App: app}} {
		if err := f.eng.Watch(topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rooms {
		f.hub.Join(c, r)
		if err := f.eng.Watch(engine.Topic{Kind: engine.Room, App: app, Name: r}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func code(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestValidate(t *testing.T) {
	f := newFixture(t)
	ttl := func(n int64) *int64 { return &n }
	ok := Target{Users: []string{"alice"}}
	cases := []struct {
		name string
		r    Request
		want string
	}{
		{"no target", Request{App: "a", Data: []byte(`1`)}, CodeInvalidTarget},
		{"all without admin", Request{App: "a", To: Target{All: true}, Data: []byte(`1`)}, CodeForbidden},
		{"too many targets", Request{App: "a", To: Target{Users: strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")}, Data: []byte(`1`)}, CodeInvalidTarget},
		{"empty user", Request{App: "a", To: Target{Users: []string{""}}, Data: []byte(`1`)}, CodeInvalidTarget},
		{"bad conn id", Request{App: "a", To: Target{Conns: []string{"c_nonode"}}, Data: []byte(`1`)}, CodeInvalidTarget},
		{"no data", Request{App: "a", To: ok}, CodeInvalidArgument},
		{"invalid data", Request{App: "a", To: ok, Data: []byte(`{`)}, CodeInvalidArgument},
		{"too large", Request{App: "a", To: ok, Data: []byte(`"` + strings.Repeat("x", 2000) + `"`)}, CodeTooLarge},
		{"ttl zero", Request{App: "a", To: ok, Data: []byte(`1`), TTL: ttl(0)}, CodeInvalidArgument},
		{"ttl over max", Request{App: "a", To: ok, Data: []byte(`1`), TTL: ttl(7201)}, CodeInvalidArgument},
		{"bad id", Request{App: "a", To: ok, Data: []byte(`1`), ID: "x\ny"}, CodeInvalidArgument},
		{"valid", Request{App: "a", To: ok, Data: []byte(`1`), TTL: ttl(7200)}, ""},
	}
	for _, tc := range cases {
		_, err := f.svc.Push(context.Background(), &tc.r)
		if got := code(err); got != tc.want {
			t.Errorf("%s: code %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestPushReachesTargetsOnce(t *testing.T) {
	f := newFixture(t)
	alice := f.conn(t, "c_n1_1", "shop", "alice", "r1", "r2")
	bob := f.conn(t, "c_n1_2", "shop", "bob", "r1")
	other := f.conn(t, "c_n1_3", "blog", "alice", "r1")

	id, err := f.svc.Push(context.Background(), &Request{App: "shop", Data: []byte(`{"k":1}`),
		To: Target{Users: []string{"alice"}, Rooms: []string{"r1", "r2"}, Conns: []string{"c_n1_1"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*inbox{alice, bob} {
		if m := b.wait(t, 1); m["id"] != id || mustJSON(m["data"]) != `{"k":1}` {
			t.Fatalf("message %v", m)
		}
	}
	// A sentinel to each proves nothing else came first: alice got one copy,
	// the other app's alice none.
	for _, who := range []struct {
		app, user string
		b         *inbox
		n         int
	}{{"shop", "alice", alice, 2}, {"blog", "alice", other, 1}} {
		if _, err := f.svc.Push(context.Background(), &Request{App: who.app, Data: []byte(`"s"`), To: Target{Users: []string{who.user}}}); err != nil {
			t.Fatal(err)
		}
		if m := who.b.wait(t, who.n); m["data"] != "s" {
			t.Fatalf("%s/%s got %v before the sentinel", who.app, who.user, m)
		}
	}
	// Deliveries are counted just after the frames are handed over.
	p, d := f.svc.Counters("shop")
	for deadline := time.Now().Add(5 * time.Second); d < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		p, d = f.svc.Counters("shop")
	}
	if p != 2 || d != 3 {
		t.Fatalf("shop counters: %d pushes, %d deliveries", p, d)
	}
}

func TestRoomMessagesCarryTheRoom(t *testing.T) {
	f := newFixture(t)
	b := f.conn(t, "c_n1_1", "shop", "alice", "news")
	if _, err := f.svc.Push(context.Background(), &Request{App: "shop", Data: []byte(`1`), To: Target{Rooms: []string{"news"}}}); err != nil {
		t.Fatal(err)
	}
	if m := b.wait(t, 1); m["room"] != "news" {
		t.Fatalf("room message %v", m)
	}
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	b := f.conn(t, "c_n1_1", "shop", "alice")
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := f.svc.Push(context.Background(), &Request{App: "shop", ID: "k1", Data: []byte(`1`), To: Target{Users: []string{"alice"}}})
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != "k1" {
			t.Fatalf("ids %v", ids)
		}
	}
	// The same key in another app is another message.
	if _, err := f.svc.Push(context.Background(), &Request{App: "blog", ID: "k1", Data: []byte(`2`), To: Target{Users: []string{"alice"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Push(context.Background(), &Request{App: "shop", Data: []byte(`"s"`), To: Target{Users: []string{"alice"}}}); err != nil {
		t.Fatal(err)
	}
	if m := b.wait(t, 2); m["data"] != "s" {
		t.Fatalf("second message %v: the idempotent push was delivered twice", m)
	}
}

func TestFailedPushIsNotRemembered(t *testing.T) {
	f := newFixture(t)
	f.eng.Close()
	r := &Request{App: "shop", ID: "k2", Data: []byte(`1`), To: Target{Users: []string{"alice"}}}
	if _, err := f.svc.Push(context.Background(), r); code(err) != CodeUnavailable {
		t.Fatalf("push with the engine down: %v", err)
	}
	if f.svc.idem.has("shop\x00k2") {
		t.Fatal("a failed push was remembered as done")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := envelope{App: "a", Users: []string{"u.1", "u 2"}, Rooms: []string{"r"}, Whole: true, ID: "m_1", Dedup: true, Except: "c_n_1"}
	msg := []byte(`{"id":"m_1","data":"line1\nline2"}`)
	got, gotMsg, err := splitEnvelope(appendEnvelope(nil, &e, msg))
	if err != nil || !sameTargets(&got, &e) || got.ID != e.ID || !got.Dedup || string(gotMsg) != string(msg) {
		t.Fatalf("round trip: %+v %q %v", got, gotMsg, err)
	}
	for _, bad := range []string{"", "no newline", "{bad\n{}"} {
		if _, _, err := splitEnvelope([]byte(bad)); err == nil {
			t.Errorf("%q split without error", bad)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
