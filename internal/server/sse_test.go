package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	heraldjs "github.com/heraldpush/herald/sdk/js"
)

// event is one SSE event as a browser's EventSource sees it.
type event struct {
	id   string // "" when the event had no id: line
	data map[string]any
}

// sseClient is a real SSE client over net/http.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan event
	ended  chan struct{} // the stream ended
	count  atomic.Int64  // push messages seen, when counting instead of queueing
}

// openSSE opens GET /v1/sse?query with the given headers and fails the
// test unless it answers 200.
func (n *node) openSSE(query string, header http.Header) *sseClient {
	n.t.Helper()
	c, status, body := n.trySSE(query, header, false)
	if status != 200 {
		n.t.Fatalf("GET /v1/sse?%s: %d %s", query, status, body)
	}
	return c
}

// trySSE opens a stream; a refusal returns its status and body. With
// count, push messages are counted (c.count) instead of queued.
func (n *node) trySSE(query string, header http.Header, count bool) (*sseClient, int, string) {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/v1/sse?"+query, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	// A transport of its own: the stream holds its connection.
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: n.tls}}).Do(req)
	if err != nil {
		cancel()
		n.t.Fatalf("GET /v1/sse: %v", err)
	}
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, string(body)
	}
	c := &sseClient{t: n.t, resp: resp, cancel: cancel, events: make(chan event, 1024), ended: make(chan struct{})}
	n.t.Cleanup(c.close)
	go c.read(count)
	return c, 200, ""
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// read parses the stream as the EventSource algorithm does (comments
// skipped, data lines joined with \n, an event dispatched at a blank line).
func (c *sseClient) read(count bool) {
	defer close(c.ended)
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var id string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == nil {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.Join(data, "\n")), &m); err != nil {
				c.t.Errorf("event data is not JSON: %q", data)
				return
			}
			data = nil
			if count {
				if msgs, ok := m["msgs"].([]any); ok {
					c.count.Add(int64(len(msgs)))
				}
				continue
			}
			c.events <- event{id: id, data: m}
			id = ""
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):])
		case strings.HasPrefix(line, "event:"):
			c.t.Errorf("named event %q: events must be unnamed", line)
		}
	}
}

// next returns the next event.
func (c *sseClient) next() event {
	c.t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-c.ended:
		select {
		case e := <-c.events:
			return e
		default:
		}
		c.t.Fatal("stream ended")
	case <-time.After(wait):
		c.t.Fatal("no event in time")
	}
	return event{}
}

// expect returns the next event, failing unless its frame has type typ.
func (c *sseClient) expect(typ string) event {
	c.t.Helper()
	e := c.next()
	if e.data["type"] != typ {
		c.t.Fatalf("got %v, want a %s frame", e.data, typ)
	}
	return e
}

// post sends a client frame by POST /v1/sse/{conn}?query.
func (n *node) post(conn, query, token string, body string) (int, map[string]any) {
	n.t.Helper()
	path := "/v1/sse/" + conn
	if query != "" {
		path += "?" + query
	}
	return n.call("POST", path, token, body)
}

// TestSSEStream: a stream gets welcome, resumed and the rooms of ?rooms=,
// stored pushes carry id: <seq> and live room pushes none, and the client
// frames sent by POST (join, ping, ack, leave, send) act as on a WebSocket.
func TestSSEStream(t *testing.T) {
	n := startNode(t, nil)
	c := n.openSSE("user=alice&rooms=lobby", nil)
	h := c.resp.Header
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("headers %v", h)
	}
	w := c.expect("welcome")
	conn := w.data["conn"].(string)
	if r := c.expect("resumed"); r.data["complete"] != true {
		t.Fatalf("resumed %v", r.data)
	}
	c.expect("joined")

	id := n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": map[string]any{"k": "v"}, "offline": true})
	e := c.expect("push")
	msg := e.data["msgs"].([]any)[0].(map[string]any)
	if msg["id"] != id || e.id != "1" || msg["seq"] != 1.0 {
		t.Fatalf("stored push: id: %q, %v", e.id, e.data)
	}
	// Pretty-printed data has line breaks: they become data: lines.
	n.push("", "{\"to\":{\"rooms\":[\"lobby\"]},\n\"data\":{\n\"text\": \"hi\"\n}}")
	if e := c.expect("push"); e.id != "" || e.data["msgs"].([]any)[0].(map[string]any)["room"] != "lobby" {
		t.Fatalf("live room push: id: %q, %v", e.id, e.data)
	}

	for _, f := range []string{`{"type":"join","room":"news"}`, `{"type":"ping"}`} {
		if status, out := n.post(conn, "user=alice", "", f); status != 202 {
			t.Fatalf("POST %s: %d %v", f, status, out)
		}
	}
	if e := c.expect("joined"); e.data["room"] != "news" {
		t.Fatalf("%v", e.data)
	}
	c.expect("pong")
	n.ok(202, "POST", "/v1/sse/"+conn+"?user=alice", `{"type":"ack","seq":1}`)
	waitFor(t, func() bool {
		_, out := n.call("GET", "/v1/messages/"+id, "", nil)
		return out["acked"] == 1.0
	})
	n.ok(202, "POST", "/v1/sse/"+conn+"?user=alice", `{"type":"leave","room":"news"}`)
	if e := c.expect("left"); e.data["room"] != "news" {
		t.Fatalf("%v", e.data)
	}
	bob := n.openSSE("user=bob&rooms=lobby", nil)
	bob.expect("welcome")
	bob.expect("resumed")
	bob.expect("joined")
	n.ok(202, "POST", "/v1/sse/"+conn+"?user=alice", `{"type":"send","to":{"rooms":["lobby"]},"data":"from alice"}`)
	if e := bob.expect("push"); e.data["msgs"].([]any)[0].(map[string]any)["from"] != "alice" {
		t.Fatalf("%v", e.data)
	}

	// A kick ends the stream with a close frame.
	n.ok(204, "DELETE", "/v1/conns/"+conn, nil)
	if e := c.expect("close"); e.data["code"] != 4002.0 {
		t.Fatalf("%v", e.data)
	}
	select {
	case <-c.ended:
	case <-time.After(wait):
		t.Fatal("stream did not end after the close frame")
	}
}

// TestSSEResume: a reconnect with Last-Event-ID (over ?since=, which the
// browser repeats from the first URL) gets exactly the stored messages it
// missed, once, then live ones.
func TestSSEResume(t *testing.T) {
	n := startNode(t, nil)
	pushTo := func(i int) {
		n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": i, "offline": true})
	}
	c := n.openSSE("user=alice&since=0", nil)
	c.expect("welcome")
	c.expect("resumed")
	last := ""
	for i := 1; i <= 3; i++ {
		pushTo(i)
		last = c.expect("push").id
	}
	if last != "3" {
		t.Fatalf("last event id %q, want 3", last)
	}
	c.close()
	pushTo(4)
	pushTo(5)

	c = n.openSSE("user=alice&since=0", http.Header{"Last-Event-Id": {last}})
	if w := c.expect("welcome"); w.data["seq"] != 5.0 {
		t.Fatalf("%v", w.data)
	}
	var seqs []float64
	var ids []string
	for {
		e := c.next()
		if e.data["type"] == "resumed" {
			if e.data["since"] != 3.0 || e.data["to"] != 5.0 || e.data["complete"] != true {
				t.Fatalf("resumed %v", e.data)
			}
			break
		}
		for _, m := range e.data["msgs"].([]any) {
			seqs = append(seqs, m.(map[string]any)["seq"].(float64))
		}
		ids = append(ids, e.id)
	}
	if fmt.Sprint(seqs) != "[4 5]" || ids[len(ids)-1] != "5" {
		t.Fatalf("replayed seqs %v, ids %v; want [4 5] ending with id 5", seqs, ids)
	}
	pushTo(6)
	if e := c.expect("push"); e.id != "6" {
		t.Fatalf("live after the replay: id %q %v", e.id, e.data)
	}

	// A bad Last-Event-ID is refused before the stream starts.
	if _, status, _ := n.trySSE("user=alice", http.Header{"Last-Event-Id": {"x"}}, false); status != 400 {
		t.Fatalf("bad Last-Event-ID: %d", status)
	}
}

// TestSSEPostRefusals: a POST with another user's or app's token, an
// invalid token, an unknown connection or a malformed body is refused and
// leaves the stream as it was.
func TestSSEPostRefusals(t *testing.T) {
	n := startNode(t, twoApps)
	if _, status, _ := n.trySSE("", nil, false); status != 401 {
		t.Fatalf("no token: %d, want 401", status)
	}
	if _, status, _ := n.trySSE("token=bad", nil, false); status != 401 {
		t.Fatalf("bad token: %d, want 401", status)
	}
	anyRoom := func(c *auth.Claims) { c.Rooms = []string{"*"} }
	alice := token(t, "shop", shopSecret, "alice", anyRoom)
	c := n.openSSE("", http.Header{"Authorization": {"Bearer " + alice}})
	conn := c.expect("welcome").data["conn"].(string)
	c.expect("resumed")
	join := `{"type":"join","room":"secret"}`
	for _, tc := range []struct {
		token, conn, body string
		want              int
	}{
		{token(t, "shop", shopSecret, "bob", anyRoom), conn, join, 403},
		{token(t, "blog", blogSecret, "alice", anyRoom), conn, join, 404},
		{"bad", conn, join, 401},
		{alice, "c_nosuchnode_1", join, 404},
		{alice, conn[:len(conn)-1] + "zz", join, 404},
		{alice, conn, `{"type":"join","room":`, 400},
		{alice, conn, `{"type":"auth","token":"x"}`, 400},
		{alice, conn, `{"type":"nope"}`, 400},
	} {
		if status, out := n.post(tc.conn, "", tc.token, tc.body); status != tc.want {
			t.Fatalf("POST %s %s: %d %v, want %d", tc.conn, tc.body, status, out, tc.want)
		}
	}
	// Nothing happened to the stream: the next frame is the answer to this
	// ping, and the connection is in no room.
	if status, out := n.post(conn, "", alice, `{"type":"ping"}`); status != 202 {
		t.Fatalf("ping: %d %v", status, out)
	}
	c.expect("pong")
	if _, out := n.call("GET", "/v1/users/alice", shopKey, nil); len(out["conns"].([]any)[0].(map[string]any)["rooms"].([]any)) != 0 {
		t.Fatalf("a refused join acted: %v", out)
	}
}

// TestSSESlowConsumer: a client that opens a stream and stops reading is
// closed as a slow consumer, while another stream on the same room gets
// every push.
func TestSSESlowConsumer(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.MaxPayload = 16 << 10
		c.Limits.QueueBytes = 64 << 10
	})
	raw, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(raw, "GET /v1/sse?user=slow&rooms=r HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	fast, _, _ := n.trySSE("user=fast&rooms=r", nil, true)
	inRoom := func() int {
		_, out := n.call("GET", "/v1/rooms/r", "", nil)
		return int(out["conns"].(float64))
	}
	waitFor(t, func() bool { return inRoom() == 2 })
	data := strings.Repeat("x", 12<<10)
	pushes := 0
	for inRoom() == 2 {
		if pushes == 5000 {
			t.Fatal("the client that does not read is still connected")
		}
		n.push("", map[string]any{"to": map[string]any{"rooms": []string{"r"}}, "data": data})
		pushes++
		// In step with the reading client, so that only the one that does
		// not read can fall behind, however loaded the machine is.
		waitFor(t, func() bool { return fast.count.Load() == int64(pushes) || inRoom() < 2 })
	}
	waitFor(t, func() bool { return fast.count.Load() == int64(pushes) })
	if !strings.Contains(n.metrics(), `herald_gateway_disconnects_total{code="4004"} 1`) {
		t.Fatal("the dropped stream was not counted as a slow consumer (4004)")
	}
}

// TestSSEPostOnAnotherNode: a client frame posted to any node of a cluster
// reaches the connection on its own node; another user's is refused there.
func TestSSEPostOnAnotherNode(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	c := a.openSSE("user=alice", nil)
	conn := c.expect("welcome").data["conn"].(string)
	c.expect("resumed")
	if status, out := b.post(conn, "user=bob", "", `{"type":"join","room":"x"}`); status != 403 {
		t.Fatalf("another user's frame through the other node: %d %v", status, out)
	}
	b.ok(202, "POST", "/v1/sse/"+conn+"?user=alice", `{"type":"join","room":"lobby"}`)
	if e := c.expect("joined"); e.data["room"] != "lobby" {
		t.Fatalf("%v", e.data)
	}
	b.push("", map[string]any{"to": map[string]any{"rooms": []string{"lobby"}}, "data": "hi"})
	if e := c.expect("push"); e.data["msgs"].([]any)[0].(map[string]any)["data"] != "hi" {
		t.Fatalf("%v", e.data)
	}
}

// TestSSECORS: the SSE endpoints answer CORS requests and preflights for
// the allowed origins and refuse the others.
func TestSSECORS(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	req := func(method, path, origin string) *http.Response {
		r, _ := http.NewRequest(method, n.base+path, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/v1/sse", "/v1/sse/c_x_1"} {
		resp := req("OPTIONS", path, "https://app.example")
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Fatalf("preflight %s: %d %v", path, resp.StatusCode, resp.Header)
		}
		if resp := req("OPTIONS", path, "https://evil.example"); resp.StatusCode != 403 {
			t.Fatalf("preflight %s from another origin: %d", path, resp.StatusCode)
		}
	}
	if resp := req("GET", "/v1/sse?user=a", "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("stream from another origin: %d", resp.StatusCode)
	}
	if resp := req("POST", "/v1/sse/c_x_1?user=a", "https://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("POST from another origin: %d", resp.StatusCode)
	}
	c := n.openSSE("user=a", http.Header{"Origin": {"https://app.example"}})
	if got := c.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Fatalf("stream's Access-Control-Allow-Origin %q", got)
	}
	if resp := req("POST", "/v1/sse/c_x_1?user=a", "https://app.example"); resp.StatusCode != 400 ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("POST from the allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestSSEShutdownAndDrain: a node that drains tells its streams to
// reconnect (4000) and one that shuts down ends them (1001) without
// waiting out its grace period.
func TestSSEShutdownAndDrain(t *testing.T) {
	n := startNode(t, nil)
	c := n.openSSE("user=a", nil)
	c.expect("welcome")
	c.expect("resumed")
	n.ok(202, "POST", "/v1/admin/drain", map[string]any{"drain_time": "0s"})
	if e := c.expect("close"); e.data["code"] != 4000.0 {
		t.Fatalf("%v", e.data)
	}

	m := startNode(t, nil)
	d := m.openSSE("user=a", nil)
	d.expect("welcome")
	d.expect("resumed")
	stopped := make(chan error, 1)
	go func() { stopped <- m.stop() }()
	if e := d.expect("close"); e.data["code"] != 1001.0 {
		t.Fatalf("%v", e.data)
	}
	// Run fails if the HTTP server's shutdown ran out its grace waiting for
	// the stream's handler.
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestScriptServed: GET /v1/herald.js is the SDK's browser build, embedded,
// with CORS for any origin when allowed_origins is empty, and a 304 for a
// browser that has it.
func TestScriptServed(t *testing.T) {
	n := startNode(t, nil)
	req, _ := http.NewRequest("GET", n.base+"/v1/herald.js", nil)
	req.Header.Set("Origin", "http://app.example")
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, heraldjs.Script) || len(body) == 0 ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("GET /v1/herald.js: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(body))
	}
	req, _ = http.NewRequest("GET", n.base+"/v1/herald.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	again, err := n.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != 304 {
		t.Fatalf("GET /v1/herald.js with its ETag: %d, want 304", again.StatusCode)
	}
}
