package herald_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// TestClientOperations runs every server API operation against a real
// node and checks what a connected client sees of it.
func TestClientOperations(t *testing.T) { eachTransport(t, testClientOperations) }

func testClientOperations(t *testing.T, n *node) {
	cl := n.client(apiKey)
	c, hello := n.dial("alice")
	next[*herald.Resumed](t, c)

	// A live push, with a payload encoded from a Go value.
	id, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"alice"}}, Data: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if m := next[*herald.Message](t, c); m.ID != id || string(m.Data) != `{"n":1}` || m.Seq != 0 || m.Time.IsZero() {
		t.Fatalf("live push %q arrived as %+v", id, m)
	}

	// A stored push: its own id, a seq, a status.
	id, err = cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"alice"}}, Data: json.RawMessage(`"kept"`),
		Offline: true, TTL: 90 * time.Minute, ID: "order-1"})
	if err != nil || id != "order-1" {
		t.Fatalf("push with id: %q, %v", id, err)
	}
	if m := next[*herald.Message](t, c); m.ID != "order-1" || m.Seq != 1 || string(m.Data) != `"kept"` {
		t.Fatalf("stored push arrived as %+v", m)
	}
	st, err := cl.MessageStatus(ctx(t), "order-1")
	if err != nil || st.ID != "order-1" || st.TTL != 90*time.Minute || st.Targeted != 1 || st.Created.IsZero() ||
		len(st.Users) != 1 || st.Users[0].User != "alice" || st.Users[0].Seq != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}

	// A batch: one result per item, in order; a refused item has its code.
	res, err := cl.Batch(ctx(t), []herald.PushRequest{
		{To: herald.Target{Users: []string{"alice"}}, Data: 1},
		{Data: 2},
		{To: herald.Target{Users: []string{"alice"}}, Data: 3},
	})
	if err != nil || len(res) != 3 || res[0].ID == "" || res[0].Err != nil || res[2].ID == "" ||
		res[1].Err == nil || res[1].Err.Code != herald.CodeInvalidTarget || res[1].ID != "" {
		t.Fatalf("batch: %+v, %v", res, err)
	}
	for _, want := range []string{res[0].ID, res[2].ID} {
		if m := next[*herald.Message](t, c); m.ID != want {
			t.Fatalf("batch message %+v, want id %s", m, want)
		}
	}

	// Rooms: join by user, query the room and the user, leave.
	if err := cl.JoinRoom(ctx(t), "lobby", herald.Members{Users: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	if j := next[*herald.Joined](t, c); j.Room != "lobby" {
		t.Fatalf("joined %+v", j)
	}
	room, err := cl.Room(ctx(t), "lobby", "")
	if err != nil || room.Room != "lobby" || room.Conns != 1 || room.Users != 1 || len(room.Members) != 1 ||
		room.Members[0] != (herald.Member{Conn: hello.Conn, User: "alice"}) || room.Next != "" {
		t.Fatalf("room: %+v, %v", room, err)
	}
	u, err := cl.User(ctx(t), "alice")
	if err != nil || !u.Online || len(u.Conns) != 1 || u.Conns[0].ID != hello.Conn || u.Conns[0].Node == "" ||
		u.Conns[0].Since.IsZero() || strings.Join(u.Conns[0].Rooms, ",") != "lobby" {
		t.Fatalf("user: %+v, %v", u, err)
	}
	// An admin names its app, which must exist; the cursor pages through
	// members.
	if u, err := n.client(adminKey, herald.WithApp("shop")).User(ctx(t), "alice"); err != nil || !u.Online {
		t.Fatalf("alice as an admin of app shop sees her: %+v, %v", u, err)
	}
	if u, err := n.client(adminKey, herald.WithApp("blog")).User(ctx(t), "alice"); herald.ErrorCode(err) != herald.CodeInvalidArgument {
		t.Fatalf("an admin naming app blog, which does not exist: %+v, %v; want invalid_argument", u, err)
	}
	if room, err := cl.Room(ctx(t), "lobby", hello.Conn); err != nil || room.Conns != 1 || len(room.Members) != 0 {
		t.Fatalf("the page after the last member: %+v, %v", room, err)
	}
	if err := cl.LeaveRoom(ctx(t), "lobby", herald.Members{Conns: []string{hello.Conn}}); err != nil {
		t.Fatal(err)
	}
	if l := next[*herald.Left](t, c); l.Room != "lobby" {
		t.Fatalf("left %+v", l)
	}
	if u, err := cl.User(ctx(t), "nobody"); err != nil || u.Online || len(u.Conns) != 0 {
		t.Fatalf("offline user: %+v, %v", u, err)
	}

	// Node-wide views.
	stats, err := cl.Stats(ctx(t))
	if err != nil || stats.Nodes != 1 || stats.Conns != 1 || stats.Users != 1 || stats.Pushes != 4 || stats.Deliveries < 4 {
		t.Fatalf("stats: %+v, %v", stats, err)
	}
	nodes, err := cl.Nodes(ctx(t))
	if err != nil || len(nodes) != 1 || nodes[0].Addr == "" || nodes[0].Conns != 1 || nodes[0].Version == "" || nodes[0].Heartbeat.IsZero() {
		t.Fatalf("nodes: %+v, %v", nodes, err)
	}
	route, err := cl.Route(ctx(t))
	if err != nil || route.Node != nodes[0].ID || !strings.HasPrefix(route.URL, "ws://") || !strings.HasSuffix(route.URL, "/v1/ws") {
		t.Fatalf("route: %+v, %v", route, err)
	}

	// Recall: the client is told, the status says so.
	if err := cl.Recall(ctx(t), "order-1"); err != nil {
		t.Fatal(err)
	}
	if r := next[*herald.Recall](t, c); r.ID != "order-1" {
		t.Fatalf("recall %+v", r)
	}
	if st, err := cl.MessageStatus(ctx(t), "order-1"); err != nil || !st.Recalled {
		t.Fatalf("status after recall: %+v, %v", st, err)
	}

	// Kicks: the connection is closed with 4002 and does not come back.
	if err := cl.KickConn(ctx(t), hello.Conn); err != nil {
		t.Fatal(err)
	}
	d := next[*herald.Disconnected](t, c)
	var ce *herald.CloseError
	if !errors.As(d.Err, &ce) || ce.Code != herald.CloseKicked || d.Retry {
		t.Fatalf("after a kick: %+v", d)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events still open after a kick")
	}
	if !errors.As(c.Err(), &ce) || c.Join("x") != herald.ErrClosed {
		t.Fatalf("a kicked Conn: Err %v", c.Err())
	}
	c2, _ := n.dial("alice")
	next[*herald.Resumed](t, c2)
	if err := cl.KickUser(ctx(t), "alice"); err != nil {
		t.Fatal(err)
	}
	skipTo[*herald.Disconnected](t, c2)
	waitFor(t, "alice gone", func() bool { u, err := cl.User(ctx(t), "alice"); return err == nil && !u.Online })
	if err := cl.KickUser(ctx(t), "alice"); herald.ErrorCode(err) != herald.CodeNotFound {
		t.Fatalf("kicking a user with no connection: %v", err)
	}
}

// TestDrain: an admin drains a node; its Conn is told to go elsewhere
// (4000) and keeps trying; a repeat changes nothing; an app key may not.
func TestDrain(t *testing.T) { eachTransport(t, testDrain) }

func testDrain(t *testing.T, n *node) {
	c, _ := n.dial("jo")
	next[*herald.Resumed](t, c)
	for range 3 { // more clients: the drain spreads their closes over its time
		n.dial("jo")
	}
	if _, err := n.client(apiKey).Drain(ctx(t), 0); herald.ErrorCode(err) != herald.CodeForbidden {
		t.Fatalf("drain with an app key: %v", err)
	}
	admin := n.client(adminKey)
	nodes, err := admin.Nodes(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	d, err := admin.Drain(ctx(t), 4*time.Second)
	if err != nil || d.Node != nodes[0].ID || d.Conns != 4 || d.Time != 4*time.Second || d.Already {
		t.Fatalf("drain: %+v, %v", d, err)
	}
	if d, err := admin.Drain(ctx(t), 0); err != nil || !d.Already || d.Node != nodes[0].ID {
		t.Fatalf("a second drain: %+v, %v", d, err)
	}
	disc := next[*herald.Disconnected](t, c)
	var ce *herald.CloseError
	if !errors.As(disc.Err, &ce) || ce.Code != herald.CloseDraining || !disc.Retry {
		t.Fatalf("disconnected by the drain: %+v", disc)
	}
}

// countingTransport counts the requests that reach the server.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestClientErrors: error answers are *herald.Error with the stable code
// and status, and are not retried.
func TestClientErrors(t *testing.T) { eachTransport(t, testClientErrors) }

func testClientErrors(t *testing.T, n *node) {
	rt := &countingTransport{base: n.via.roundTripper()}
	hc := &http.Client{Transport: rt}
	for _, tc := range []struct {
		name   string
		call   func() error
		code   string
		status int
	}{
		{"wrong key", func() error { _, err := n.client("wrong", herald.WithHTTPClient(hc)).Stats(ctx(t)); return err }, herald.CodeUnauthorized, 401},
		{"unknown message", func() error {
			_, err := n.client(apiKey, herald.WithHTTPClient(hc)).MessageStatus(ctx(t), "no-such")
			return err
		}, herald.CodeNotFound, 404},
		{"recall unknown", func() error { return n.client(apiKey, herald.WithHTTPClient(hc)).Recall(ctx(t), "no-such") }, herald.CodeNotFound, 404},
		{"no target", func() error {
			_, err := n.client(apiKey, herald.WithHTTPClient(hc)).Push(ctx(t), herald.PushRequest{Data: 1})
			return err
		}, herald.CodeInvalidTarget, 400},
		{"ttl out of range", func() error {
			_, err := n.client(apiKey, herald.WithHTTPClient(hc)).Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"a"}}, Data: 1, TTL: -time.Second})
			return err
		}, herald.CodeInvalidArgument, 400},
		{"another app", func() error {
			_, err := n.client(apiKey, herald.WithHTTPClient(hc), herald.WithApp("blog")).User(ctx(t), "a")
			return err
		}, herald.CodeForbidden, 403},
		{"all for an app key", func() error {
			_, err := n.client(apiKey, herald.WithHTTPClient(hc)).Push(ctx(t), herald.PushRequest{To: herald.Target{All: true}, Data: 1})
			return err
		}, herald.CodeForbidden, 403},
		{"room without members", func() error {
			return n.client(apiKey, herald.WithHTTPClient(hc)).JoinRoom(ctx(t), "r", herald.Members{})
		}, herald.CodeInvalidTarget, 400},
	} {
		before := rt.count()
		err := tc.call()
		e := apiError(t, err)
		if e.Code != tc.code || e.Status != tc.status || e.Message == "" || herald.ErrorCode(err) != tc.code {
			t.Errorf("%s: %+v; want code %s, status %d", tc.name, e, tc.code, tc.status)
		}
		if sent := rt.count() - before; sent != 1 {
			t.Errorf("%s: sent %d times; an error answer is final", tc.name, sent)
		}
	}
	if _, err := herald.NewClient("127.0.0.1:8080", ""); err == nil {
		t.Error("NewClient took a base URL without a scheme")
	}
}

// dropFirstAnswer sends every request to the server, but throws the
// answer to the first push away and reports a broken connection instead:
// the push was made, the client does not know it.
type dropFirstAnswer struct {
	base    http.RoundTripper
	push    string // the push operation's path
	mu      sync.Mutex
	pushes  int
	dropped bool
}

func (d *dropFirstAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(r)
	if err != nil || r.URL.Path != d.push {
		return resp, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pushes++
	if d.dropped {
		return resp, nil
	}
	d.dropped = true
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, errors.New("connection reset (the test dropped the answer)")
}

// TestPushRetriedAfterALostAnswerIsStoredOnce: the Client gives each push
// an id, so retrying one whose answer was lost stores it once.
func TestPushRetriedAfterALostAnswerIsStoredOnce(t *testing.T) {
	eachTransport(t, testPushRetriedAfterALostAnswerIsStoredOnce)
}

func testPushRetriedAfterALostAnswerIsStoredOnce(t *testing.T, n *node) {
	drop := &dropFirstAnswer{base: n.via.roundTripper(), push: n.via.push}
	cl := n.client(apiKey, herald.WithHTTPClient(&http.Client{Transport: drop}), herald.WithRetryBackoff(time.Millisecond, 10*time.Millisecond))
	id, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"bob"}}, Data: "once", Offline: true})
	if err != nil || !strings.HasPrefix(id, "m_") {
		t.Fatalf("push: %q, %v", id, err)
	}
	if drop.pushes != 2 {
		t.Fatalf("the push reached the server %d times; want 2 (the retry)", drop.pushes)
	}
	st, err := n.client(apiKey).MessageStatus(ctx(t), id)
	if err != nil || st.Targeted != 1 || st.Users[0].Seq != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	// bob's inbox holds it once: seq 1 is the latest, and one message is
	// replayed.
	c, hello := n.dial("bob")
	if hello.Seq != 1 {
		t.Fatalf("bob's latest seq is %d; the push was stored %d times", hello.Seq, hello.Seq)
	}
	if m := next[*herald.Message](t, c); m.ID != id || m.Seq != 1 {
		t.Fatalf("replayed %+v", m)
	}
	if r := next[*herald.Resumed](t, c); r.To != 1 || !r.Complete {
		t.Fatalf("resumed %+v", r)
	}

	// Without an id a push whose answer was lost is not retried: it might
	// have been made.
	drop = &dropFirstAnswer{base: n.via.roundTripper(), push: n.via.push}
	cl = n.client(apiKey, herald.WithHTTPClient(&http.Client{Transport: drop}), herald.WithAutoID(false))
	if _, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"bob"}}, Data: "maybe"}); err == nil || drop.pushes != 1 {
		t.Fatalf("a push without id: %v after %d attempts; want the error after 1", err, drop.pushes)
	}
}
