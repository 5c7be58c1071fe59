package fastlane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a real http.Server behind a lane that takes POST /push.
// Its handler answers "<transport> <method> <path> <body>" (transport:
// lane or net/http) with the request's X-N echoed in a header.
type testServer struct {
	addr   string
	lane   *Lane
	onLane atomic.Int64
	// block, when set, holds the handler until it is closed.
	block chan struct{}
}

// serve runs h on a loopback listener as Herald's server does: HTTP/1.1
// and h2c on the listener, the lane (if any) in front of h, and the
// connections it hands back on a second, HTTP/1-only server.
func serve(t testing.TB, lane *Lane, h http.Handler, header time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newServer := func(h http.Handler, h2c bool) *http.Server {
		srv := &http.Server{Handler: h, IdleTimeout: time.Minute, ReadHeaderTimeout: header, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(h2c)
		return srv
	}
	servers := []*http.Server{newServer(h, true)}
	if lane != nil {
		servers[0].Handler = lane.Wrap(h)
		servers[0].RegisterOnShutdown(lane.Close)
		servers = append(servers, newServer(servers[0].Handler, false))
		go func() { _ = servers[1].Serve(lane.Listener()) }()
	}
	go func() { _ = servers[0].Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range servers {
			_ = srv.Shutdown(ctx)
		}
		if lane != nil {
			_ = lane.Shutdown(ctx)
		}
	})
	return ln.Addr().String()
}

func newTestServer(t *testing.T, header time.Duration) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.lane = New(func(m, p string) bool { return m == "POST" && p == "/push" }, time.Minute, header)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		transport := "net/http"
		if _, ok := w.(*response); ok {
			transport = "lane"
			ts.onLane.Add(1)
		}
		if ts.block != nil && r.URL.Query().Get("block") != "" {
			<-ts.block
		}
		if r.URL.Query().Get("skip") != "" { // leaves the body unread
			fmt.Fprintf(w, "%s skipped", transport)
			return
		}
		if r.URL.Query().Get("close") != "" {
			w.Header().Set("Connection", "close")
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-N", r.Header.Get("X-N"))
		w.WriteHeader(201)
		fmt.Fprintf(w, "%s %s %s %s", transport, r.Method, r.URL.Path, body)
	})
	ts.addr = serve(t, ts.lane, h, header)
	return ts
}

// rawConn is a client that writes requests by hand and reads the answers
// in order.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *rawConn {
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, raw); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one response: status, body, and the response itself.
func (c *rawConn) answer() (int, string, *http.Response) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp
}

// expect reads one answer and fails unless its body is want.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	if _, body, _ := c.answer(); body != want {
		c.t.Fatalf("got %q, want %q", body, want)
	}
}

func post(path, body string, extra ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: herald\r\n" + strings.Join(extra, "") +
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

// TestKeepAliveCallsRideTheLane: every push of a keep-alive connection
// (net/http's real client) is served by the lane, the first included, with
// the handler's status, headers and body intact.
func TestKeepAliveCallsRideTheLane(t *testing.T) {
	ts := newTestServer(t, 10*time.Second)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := range 100 {
		req, _ := http.NewRequest("POST", "http://"+ts.addr+"/push", strings.NewReader(fmt.Sprintf("body-%d", i)))
		req.Header.Set("X-N", fmt.Sprint(i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("lane POST /push body-%d", i); resp.StatusCode != 201 || string(b) != want ||
			resp.Header.Get("X-N") != fmt.Sprint(i) || resp.Header.Get("Content-Type") != "text/plain" ||
			resp.ContentLength != int64(len(want)) || resp.Header.Get("Date") == "" {
			t.Fatalf("push %d: %d %q %v", i, resp.StatusCode, b, resp.Header)
		}
	}
	if n := ts.onLane.Load(); n != 100 {
		t.Fatalf("%d of 100 pushes on the lane", n)
	}
}

// TestOtherRequestsGoBackToNetHTTP: a request the lane does not take hands
// the connection back to net/http with the bytes read so far; the next
// push takes it onto the lane again. Pipelined requests are answered in
// order.
func TestOtherRequestsGoBackToNetHTTP(t *testing.T) {
	ts := newTestServer(t, 10*time.Second)
	c := ts.dial(t)
	c.send(post("/push", "a"))
	c.expect("lane POST /push a")
	// Pipelined: a push, a call the lane does not take, a push.
	c.send(post("/push", "b") + post("/other", "c") + post("/push", "d") + post("/push?x=1", "e"))
	for _, want := range []string{"lane POST /push b", "net/http POST /other c", "lane POST /push d", "lane POST /push e"} {
		c.expect(want)
	}
}

// TestOddInputIsNetHTTPs: whatever the lane does not take as clean is
// answered by net/http, on the same connection, as net/http answers it.
func TestOddInputIsNetHTTPs(t *testing.T) {
	cases := []struct {
		name, raw  string
		status     int
		body       string // the handler's answer (empty: net/http's error)
		staysAlive bool
	}{
		{"chunked body", "POST /push HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 201, "net/http POST /push abc", true},
		{"space before colon", "POST /push HTTP/1.1\r\nHost: h\r\nX-N : 1\r\nContent-Length: 0\r\n\r\n", 400, "", false},
		// net/http reads it, then hands it to the lane (Wrap).
		{"bare LF", "POST /push HTTP/1.1\nHost: h\nContent-Length: 1\n\nz", 201, "lane POST /push z", true},
		{"no Host", "POST /push HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "", false},
		{"two lengths", "POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nzz", 400, "", false},
		{"HTTP/1.0", "POST /push HTTP/1.0\r\nHost: h\r\nContent-Length: 1\r\n\r\nz", 201, "net/http POST /push z", false},
		{"control byte in a value", "POST /push HTTP/1.1\r\nHost: h\r\nX-N: a\x01b\r\nContent-Length: 0\r\n\r\n", 400, "", false},
		{"expect", "POST /push HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz", 201, "net/http POST /push z", true},
	}
	ts := newTestServer(t, 10*time.Second)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			c.send(post("/push", "first"))
			c.expect("lane POST /push first")
			c.send(tc.raw)
			resp, err := http.ReadResponse(c.br, nil)
			for err == nil && resp.StatusCode == 100 { // Expect: 100-continue
				resp, err = http.ReadResponse(c.br, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || (tc.body != "" && string(b) != tc.body) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tc.status, tc.body)
			}
			if !tc.staysAlive {
				return
			}
			c.send(post("/push", "after"))
			c.expect("lane POST /push after")
		})
	}
}

// TestBodiesLeftUnread: a body the handler did not read is skipped, so the
// next request is read from the right place; Connection: close from the
// handler ends the connection after its answer.
func TestBodiesLeftUnread(t *testing.T) {
	ts := newTestServer(t, 10*time.Second)
	c := ts.dial(t)
	c.send(post("/push", "x"))
	c.answer()
	c.send(post("/push?skip=1", strings.Repeat("y", 10000)) + post("/push", "z"))
	c.expect("lane skipped")
	c.expect("lane POST /push z")
	c.send(post("/push?close=1", "w"))
	_, body, resp := c.answer()
	if body != "lane POST /push w" || !resp.Close {
		t.Fatalf("close: %q, close %v", body, resp.Close)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("the connection stays open after Connection: close: %v", err)
	}
}

// TestSlowHeadIsCut: a lane connection that begins a request head and
// stalls is closed after the header timeout, as net/http would.
func TestSlowHeadIsCut(t *testing.T) {
	ts := newTestServer(t, 200*time.Millisecond)
	c := ts.dial(t)
	c.send(post("/push", "x"))
	c.answer()
	c.send("POST /push HTTP/1.1\r\nHost: h\r\n")
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("a stalled head: %v, want the connection closed", err)
	}
}

// TestShutdownEndsLanes: Shutdown closes an idle lane connection at once
// and lets a busy one finish its request, answered with Connection: close.
func TestShutdownEndsLanes(t *testing.T) {
	ts := newTestServer(t, 10*time.Second)
	ts.block = make(chan struct{})
	idle, busy := ts.dial(t), ts.dial(t)
	for _, c := range []*rawConn{idle, busy} {
		c.send(post("/push", "x"))
		c.answer()
	}
	busy.send(post("/push?block=1", "slow"))
	for deadline := time.Now().Add(10 * time.Second); ts.onLane.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached its handler")
		}
		time.Sleep(time.Millisecond) // polling a condition
	}
	done := make(chan error, 1)
	go func() { done <- ts.lane.Shutdown(context.Background()) }()
	if _, err := idle.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle lane: %v, want EOF", err)
	}
	close(ts.block)
	_, body, resp := busy.answer()
	if body != "lane POST /push slow" || !resp.Close {
		t.Fatalf("busy lane: %q, close %v", body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzParseHead: a head the lane takes is one net/http reads the same
// way: method, target, host, headers and length.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
		"POST /push?a=1&b=%20 HTTP/1.1\r\nHost: [::1]:80\r\nauthorization: Bearer k\r\nX-A:  v \r\nX-A: w\r\nContent-Length: 0\r\n\r\n",
		"POST /push HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\nContent-Length: 10\r\n\r\n",
		"POST /p%75sh HTTP/1.1\r\nHost: h\r\nidempotency-key: a\xffb\r\n\r\n",
		"POST //push HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		i := bytes.Index(head, crlf2)
		if i < 0 || bareLF(head[:i+4]) {
			return
		}
		head = head[:i+4]
		ours := new(http.Request)
		if !parseHead(ours, head, func(m, p string) bool { return true }) {
			return
		}
		theirs, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("taken, but net/http refuses it: %v\n%q", err, head)
		}
		cl := theirs.ContentLength
		if cl < 0 {
			cl = 0
		}
		if ours.Method != theirs.Method || ours.RequestURI != theirs.RequestURI || ours.URL.String() != theirs.URL.String() ||
			ours.Host != theirs.Host || ours.ContentLength != cl || !sameHeader(ours.Header, theirs.Header) {
			t.Fatalf("read differently:\nours   %s %s %q %d %v\ntheirs %s %s %q %d %v\n%q", ours.Method, ours.RequestURI, ours.Host,
				ours.ContentLength, ours.Header, theirs.Method, theirs.RequestURI, theirs.Host, theirs.ContentLength, theirs.Header, head)
		}
	})
}

func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}
