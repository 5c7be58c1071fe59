package herald_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sdk/herald"
	"go.uber.org/goleak"
)

// gate holds connection attempts back while it is shut: the Conn's token
// function waits on it.
type gate struct{ ch atomic.Pointer[chan struct{}] }

func newGate() *gate {
	g := &gate{}
	ch := make(chan struct{})
	close(ch)
	g.ch.Store(&ch)
	return g
}

func (g *gate) shut() { ch := make(chan struct{}); g.ch.Store(&ch) }
func (g *gate) open() { close(*g.ch.Load()) }

func (g *gate) pass(ctx context.Context) error {
	select {
	case <-*g.ch.Load():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorder reads a Conn's events and keeps every message.
type recorder struct {
	t    *testing.T
	c    *herald.Conn
	msgs []*herald.Message
}

// until reads events until one satisfies ok, and returns it.
func (r *recorder) until(what string, ok func(herald.Event) bool) herald.Event {
	r.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, open := <-r.c.Events():
			if !open {
				r.t.Fatalf("waiting for %s: events closed: %v", what, r.c.Err())
			}
			if m, isMsg := ev.(*herald.Message); isMsg {
				r.msgs = append(r.msgs, m)
			}
			if ok(ev) {
				return ev
			}
		case <-deadline:
			r.t.Fatalf("waiting for %s: not in time", what)
		}
	}
}

// seq waits for the message with seq n.
func (r *recorder) seq(n uint64) {
	r.t.Helper()
	r.until("seq "+strconv.FormatUint(n, 10), func(ev herald.Event) bool { m, ok := ev.(*herald.Message); return ok && m.Seq == n })
}

// data waits for the message with data d.
func (r *recorder) data(d string) *herald.Message {
	r.t.Helper()
	return r.until("data "+d, func(ev herald.Event) bool { m, ok := ev.(*herald.Message); return ok && string(m.Data) == d }).(*herald.Message)
}

func pushOffline(t *testing.T, cl *herald.Client, user string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{user}}, Data: i, Offline: true}); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
}

// pushRoom pushes JSON data to a room.
func pushRoom(t *testing.T, cl *herald.Client, room, data string) {
	t.Helper()
	if _, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Rooms: []string{room}}, Data: json.RawMessage(data)}); err != nil {
		t.Fatalf("push to %s: %v", room, err)
	}
}

// TestConnSurvivesServerRestarts: a Conn resumes across two restarts of
// the server (on the same address and data) with every stored message
// exactly once and in order, and rejoins its rooms, the history room from
// the last position it saw.
func TestConnSurvivesServerRestarts(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.RoomHistory = []config.RoomHistory{{Rooms: "chat-*", Size: 100, TTL: time.Hour}}
	})
	cl := n.client(apiKey)
	g := newGate()
	tok := token(t, "zoe", nil)
	c, err := herald.Dial(ctx(t), "ws://"+n.addr, herald.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond),
		herald.WithTokenFunc(func(ctx context.Context) (string, error) { return tok, g.pass(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &recorder{t: t, c: c}
	r.until("the first replay", func(ev herald.Event) bool { _, ok := ev.(*herald.Resumed); return ok })
	if err := c.Join("lobby"); err != nil {
		t.Fatal(err)
	}
	if err := c.JoinFrom("chat-1", 0); err != nil {
		t.Fatal(err)
	}
	r.until("chat-1's replay", func(ev herald.Event) bool { e, ok := ev.(*herald.Resumed); return ok && e.Room == "chat-1" })
	pushOffline(t, cl, "zoe", 1, 3)
	r.seq(3)
	pushRoom(t, cl, "chat-1", `"c1"`)
	if m := r.data(`"c1"`); m.Room != "chat-1" || m.Pos != 1 {
		t.Fatalf("history room message %+v", m)
	}
	pushRoom(t, cl, "lobby", `"l1"`)
	r.data(`"l1"`)
	// A room left is left for good: not rejoined, nothing from it.
	if err := c.Join("temp"); err != nil {
		t.Fatal(err)
	}
	if err := c.Leave("temp"); err != nil {
		t.Fatal(err)
	}
	r.until("left temp", func(ev herald.Event) bool { e, ok := ev.(*herald.Left); return ok && e.Room == "temp" })
	pushRoom(t, cl, "temp", `"not a member"`)

	// Restart while the Conn is held back: what is pushed meanwhile is
	// replayed when it reconnects.
	g.shut()
	n.stop()
	d := r.until("the disconnect", func(ev herald.Event) bool { _, ok := ev.(*herald.Disconnected); return ok }).(*herald.Disconnected)
	var ce *herald.CloseError
	if !errors.As(d.Err, &ce) || ce.Code != herald.CloseGoingAway || !d.Retry {
		t.Fatalf("disconnected by the shutdown: %+v", d)
	}
	n.start()
	pushOffline(t, cl, "zoe", 4, 6)
	pushRoom(t, cl, "chat-1", `"c2"`)
	pushRoom(t, cl, "chat-1", `"c3"`)
	pushRoom(t, cl, "lobby", `"lost: live only"`)
	g.open()
	r.until("the reconnect", func(ev herald.Event) bool { _, ok := ev.(*herald.Connected); return ok })
	res := r.until("the inbox replay", func(ev herald.Event) bool { e, ok := ev.(*herald.Resumed); return ok && e.Room == "" }).(*herald.Resumed)
	if res.Since != 3 || res.To != 6 || !res.Complete {
		t.Fatalf("resumed %+v, want since 3, to 6, complete", res)
	}
	res = r.until("chat-1's replay", func(ev herald.Event) bool { e, ok := ev.(*herald.Resumed); return ok && e.Room == "chat-1" }).(*herald.Resumed)
	if res.Since != 1 || res.To != 3 || !res.Complete {
		t.Fatalf("chat-1 resumed %+v, want since 1, to 3, complete", res)
	}
	r.until("the lobby rejoin", func(ev herald.Event) bool { e, ok := ev.(*herald.Joined); return ok && e.Room == "lobby" })
	if u, err := cl.User(ctx(t), "zoe"); err != nil || len(u.Conns) != 1 || fmt.Sprint(u.Conns[0].Rooms) != "[chat-1 lobby]" {
		t.Fatalf("zoe after the reconnect: %+v, %v; want one connection in chat-1 and lobby", u, err)
	}
	pushOffline(t, cl, "zoe", 7, 9)
	r.seq(9)
	pushRoom(t, cl, "lobby", `"l2"`)
	r.data(`"l2"`)

	// Restart again, the Conn free to try: it is refused until the server
	// is back.
	n.stop()
	r.until("a refused attempt", func(ev herald.Event) bool {
		d, ok := ev.(*herald.Disconnected)
		return ok && d.Retry && !errors.As(d.Err, &ce)
	})
	n.start()
	pushOffline(t, cl, "zoe", 10, 12)
	pushRoom(t, cl, "chat-1", `"c4"`)
	r.seq(12)
	r.data(`"c4"`)

	var seqs, pos []uint64
	ids := map[string]bool{}
	for _, m := range r.msgs {
		if ids[m.ID] {
			t.Errorf("message %s delivered twice", m.ID)
		}
		ids[m.ID] = true
		if m.Seq > 0 {
			seqs = append(seqs, m.Seq)
			if string(m.Data) != strconv.FormatUint(m.Seq, 10) {
				t.Errorf("seq %d carries %s", m.Seq, m.Data)
			}
		}
		if m.Room == "chat-1" {
			pos = append(pos, m.Pos)
		}
		if string(m.Data) == `"lost: live only"` || string(m.Data) == `"not a member"` {
			t.Errorf("a push the Conn should not have got was delivered: %+v", m)
		}
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7 8 9 10 11 12]" {
		t.Errorf("stored messages arrived as seqs %v", seqs)
	}
	if fmt.Sprint(pos) != "[1 2 3 4]" {
		t.Errorf("history room messages arrived as positions %v", pos)
	}
}

// TestAckStopsRedelivery: acked messages are not replayed to the user's
// next connection; by hand, automatically, and for a message received
// before a reconnect.
func TestAckStopsRedelivery(t *testing.T) {
	n := startNode(t, nil)
	cl := n.client(apiKey)
	// acked reports whether the user's acked position is seq: a new
	// connection's replay starts there.
	acked := func(user string, seq uint64) bool {
		c2, err := herald.Dial(ctx(t), "ws://"+n.addr, herald.WithToken(token(t, user, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		next[*herald.Connected](t, c2)
		for {
			switch ev := nextEvent(t, c2).(type) {
			case *herald.Resumed:
				return ev.Since == seq
			}
		}
	}

	c, _ := n.dial("carol")
	r := &recorder{t: t, c: c}
	pushOffline(t, cl, "carol", 1, 3)
	r.seq(3)
	if err := c.Ack(2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ack of 2 stored", func() bool { return acked("carol", 2) })
	c3, hello := n.dial("carol")
	if m := next[*herald.Message](t, c3); hello.Seq != 3 || m.Seq != 3 {
		t.Fatalf("after ack 2 a new connection got %+v (latest %d); want seq 3 only", m, hello.Seq)
	}
	if res := next[*herald.Resumed](t, c3); res.Since != 2 || res.To != 3 {
		t.Fatalf("resumed %+v", res)
	}

	// An ack of a message received before a reconnect still counts.
	n.restart()
	r.until("the reconnect", func(ev herald.Event) bool { _, ok := ev.(*herald.Resumed); return ok })
	if err := c.Ack(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ack of 3 after a reconnect stored", func() bool { return acked("carol", 3) })
	for _, m := range r.msgs {
		if m.Seq == 3 && m != r.msgs[2] {
			t.Fatalf("seq 3 delivered again: %+v", r.msgs)
		}
	}

	d, _ := n.dial("dave", herald.WithAutoAck())
	rd := &recorder{t: t, c: d}
	pushOffline(t, cl, "dave", 1, 2)
	rd.seq(2)
	waitFor(t, "auto-ack of 2 stored", func() bool { return acked("dave", 2) })
}

// TestDialWaitsForTheServer: Dial retries until the node is up.
func TestDialWaitsForTheServer(t *testing.T) {
	n := startNode(t, nil)
	n.stop()
	dialed := make(chan error, 1)
	tok := token(t, "hal", nil)
	var attempts atomic.Int32
	go func() {
		c, err := herald.Dial(ctx(t), "http://"+n.addr, herald.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond),
			herald.WithTokenFunc(func(context.Context) (string, error) { attempts.Add(1); return tok, nil }))
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	waitFor(t, "a refused attempt", func() bool { return attempts.Load() >= 2 })
	n.start()
	if err := <-dialed; err != nil {
		t.Fatalf("Dial while the node was starting: %v", err)
	}
}

// TestConnRefusals: a refused token ends Dial with the server's answer;
// a join the token does not allow is refused and the next one goes on.
func TestConnRefusals(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.AuthTimeout = 100 * time.Millisecond })
	bad := token(t, "eve", func(c *auth.Claims) { c.App = "shop"; c.Expires = time.Now().Add(-time.Minute) })
	_, err := herald.Dial(ctx(t), "ws://"+n.addr, herald.WithToken(bad))
	if e := apiError(t, err); e.Code != herald.CodeUnauthorized || e.Status != http.StatusUnauthorized {
		t.Fatalf("expired token in the header: %+v", e)
	}
	_, err = herald.Dial(ctx(t), "ws://"+n.addr, herald.WithToken(bad), herald.WithAuthFrame())
	var ce *herald.CloseError
	if !errors.As(err, &ce) || ce.Code != herald.CloseUnauthorized {
		t.Fatalf("expired token in the first frame: %v", err)
	}
	if _, err := herald.Dial(ctx(t), "ws://"+n.addr); !errors.As(err, &ce) || ce.Code != herald.CloseUnauthorized {
		t.Fatalf("no token: %v", err)
	}

	// A token function gets one more try with a fresh token.
	var calls atomic.Int32
	c, err := herald.Dial(ctx(t), "ws://"+n.addr, herald.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond),
		herald.WithTokenFunc(func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return bad, nil
			}
			return token(t, "eve", nil), nil
		}))
	if err != nil || calls.Load() != 2 {
		t.Fatalf("a fresh token after a refused one: %v after %d tokens", err, calls.Load())
	}
	c.Close()

	c, hello := n.dial("eve", herald.WithToken(token(t, "eve", func(c *auth.Claims) { c.Rooms = []string{"news-*"} })), herald.WithAuthFrame())
	if hello.User != "eve" || hello.Conn == "" {
		t.Fatalf("welcome after first-frame auth: %+v", hello)
	}
	next[*herald.Resumed](t, c)
	if err := c.Join("admin"); err != nil {
		t.Fatal(err)
	}
	if err := c.Join("news-1"); err != nil {
		t.Fatal(err)
	}
	if e := next[*herald.RequestError](t, c); e.Code != herald.ErrCodeForbidden || e.Op != "join" || e.Room != "admin" {
		t.Fatalf("forbidden join: %+v", e)
	}
	if j := next[*herald.Joined](t, c); j.Room != "news-1" {
		t.Fatalf("joined %+v", j)
	}
	if err := c.Join("bad\x00name"); err == nil {
		t.Fatal("a room name with a control character was taken")
	}
}

// TestHeartbeatsKeepAQuietConnection: the server closes connections it
// hears nothing from; a Conn answers its pings, so it stays while nothing
// else happens.
func TestHeartbeatsKeepAQuietConnection(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.Heartbeat, c.Limits.HeartbeatLimit = 50*time.Millisecond, 200*time.Millisecond
	})
	cl := n.client(apiKey)
	c, _ := n.dial("ike")
	next[*herald.Resumed](t, c)
	for i := range 3 {
		time.Sleep(400 * time.Millisecond) // quiet for twice the server's limit: this is what is tested
		pushOffline(t, cl, "ike", i+1, i+1)
		if m := next[*herald.Message](t, c); m.Seq != uint64(i+1) {
			t.Fatalf("after a quiet spell got %+v", m)
		}
	}
}

// TestCloseLeavesNoGoroutine: Close stops every goroutine of a Conn, both
// while connected and while reconnecting.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	n := startNode(t, nil)
	tr := &http.Transport{}
	cl := n.client(apiKey, herald.WithHTTPClient(&http.Client{Transport: tr}))
	// A whole session: join, a stored message, an ack, Close.
	session := func(user string) {
		c, _ := n.dial(user)
		r := &recorder{t: t, c: c}
		if err := c.Join("lobby"); err != nil {
			t.Fatal(err)
		}
		r.until("joined", func(ev herald.Event) bool { _, ok := ev.(*herald.Joined); return ok })
		pushOffline(t, cl, user, 1, 1)
		r.seq(1)
		if err := c.Ack(1); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-c.Events(); ok || c.Err() != herald.ErrClosed || c.Ack(1) != herald.ErrClosed {
			t.Fatalf("after Close: events open %v, Err %v", ok, c.Err())
		}
		tr.CloseIdleConnections()
	}
	// The server starts what it keeps running (streams, buckets): the node
	// registry's bucket on its first announcement, the others on a
	// session's first use.
	waitFor(t, "the node registry", func() bool { nodes, err := cl.Nodes(context.Background()); return err == nil && len(nodes) == 1 })
	session("warm-up")
	before := goleak.IgnoreCurrent()
	session("fay")
	goleak.VerifyNone(t, before)

	c, _ := n.dial("fay")
	r := &recorder{t: t, c: c}
	r.until("the replay", func(ev herald.Event) bool { _, ok := ev.(*herald.Resumed); return ok })
	n.stop()
	r.until("a retry", func(ev herald.Event) bool { d, ok := ev.(*herald.Disconnected); return ok && d.Retry })
	c.Close()
	goleak.VerifyNone(t, before)
}

// TestDeduplication: two copies of one push (the stored one and the one
// through a history room) are delivered once.
func TestDeduplication(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.RoomHistory = []config.RoomHistory{{Rooms: "chat-*", Size: 10, TTL: time.Hour}}
	})
	cl := n.client(apiKey)
	c, _ := n.dial("gil")
	r := &recorder{t: t, c: c}
	if err := c.JoinFrom("chat-2", 0); err != nil {
		t.Fatal(err)
	}
	r.until("chat-2's replay", func(ev herald.Event) bool { _, ok := ev.(*herald.Resumed); return ok })
	r.msgs = nil
	id, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"gil"}, Rooms: []string{"chat-2"}}, Data: "both", Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	pushOffline(t, cl, "gil", 2, 2)
	r.seq(2)
	got := slices.Collect(func(yield func(string) bool) {
		for _, m := range r.msgs {
			if !yield(m.ID) {
				return
			}
		}
	})
	if len(got) != 2 || got[0] != id {
		t.Fatalf("messages %v; want %s once, then seq 2", got, id)
	}
}

// TestConnNodeFunc: each attempt connects where the node function says
// (here: away from a dead address Dial was given), and Dial's URL is the
// fallback when the function fails.
func TestConnNodeFunc(t *testing.T) {
	n := startNode(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/v1/ws"
	ln.Close() // nothing listens there now
	var calls atomic.Int32
	c, err := herald.Dial(ctx(t), dead, herald.WithToken(token(t, "nia", nil)),
		herald.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond),
		herald.WithNodeFunc(func(context.Context) (string, error) {
			calls.Add(1)
			return "ws://" + n.addr, nil
		}))
	if err != nil {
		t.Fatalf("Dial with a node function: %v", err)
	}
	defer c.Close()
	if got := next[*herald.Connected](t, c); got.User != "nia" || calls.Load() == 0 {
		t.Fatalf("connected %+v after %d calls", got, calls.Load())
	}
	f, err := herald.Dial(ctx(t), "ws://"+n.addr, herald.WithToken(token(t, "nia", nil)),
		herald.WithNodeFunc(func(context.Context) (string, error) { return "", errors.New("no route") }))
	if err != nil {
		t.Fatalf("Dial with a failing node function: %v", err)
	}
	defer f.Close()
	next[*herald.Connected](t, f)
}
