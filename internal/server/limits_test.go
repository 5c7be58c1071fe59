package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/datadir"
)

// addr is the node's host:port.
func (n *node) addr() string { return strings.TrimPrefix(n.base, "http://") }

// rawHTTP opens a TCP connection to the node from local (nil: any) and
// writes req.
func (n *node) rawHTTP(local net.Addr, req string) net.Conn {
	n.t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: wait}
	c, err := d.Dial("tcp", n.addr())
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	if req != "" {
		if _, err := io.WriteString(c, req); err != nil {
			n.t.Fatal(err)
		}
	}
	return c
}

// closedByServer reads c until the server closes it (EOF or reset), within
// the test's wait; it returns what was read.
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open (read %q)", b)
	}
	return string(b)
}

// TestUnauthenticatedBodyNotWaitedFor: a key-less request announcing a body
// it never sends is answered 401 at once and its connection closed; the
// server does not wait for the body (which let ~20,000 such requests hold
// every descriptor of the process).
func TestUnauthenticatedBodyNotWaitedFor(t *testing.T) {
	n := startNode(t, twoApps)
	for _, path := range []string{"/v1/push", "/v1/push/batch", "/nowhere"} {
		c := n.rawHTTP(nil, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		got := closedByServer(t, c)
		if path != "/nowhere" && !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Errorf("%s: answer %q, want a 401", path, got)
		}
	}
}

// TestBodyDeadline: an authenticated request whose body stops arriving is
// cut off after body_timeout, instead of holding its connection forever.
func TestBodyDeadline(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		twoApps(c)
		c.Limits.BodyTimeout = 300 * time.Millisecond
	})
	c := n.rawHTTP(nil, "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+shopKey+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"to\":")
	if got := closedByServer(t, c); got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("answer %q, want nothing or a 400", got)
	}
	// A well-behaved caller is unaffected.
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"a"}}, "data": 1})
}

// TestConnectionCaps: connections over the global cap or over the per-IP
// cap are closed on accept and counted; a connection that closes gives its
// place back.
func TestConnectionCaps(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.MaxConns = 6
		c.Limits.MaxConnsPerIP = 3
	})
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip)} }
	// Three idle connections from 127.0.0.2 fill its share; a fourth is
	// closed, while another address still gets in.
	var held []net.Conn
	for range 3 {
		held = append(held, n.rawHTTP(from("127.0.0.2"), ""))
	}
	healthy := func(local net.Addr) bool {
		d := net.Dialer{LocalAddr: local, Timeout: wait}
		c, err := d.Dial("tcp", n.addr())
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return false
		}
		b, _ := io.ReadAll(c)
		return strings.HasPrefix(string(b), "HTTP/1.1 200")
	}
	waitFor(t, func() bool { return !healthy(from("127.0.0.2")) })
	if !healthy(from("127.0.0.3")) {
		t.Fatal("127.0.0.3 refused while only 127.0.0.2 is at its cap")
	}
	// Three more from 127.0.0.3 reach the global cap of 6: everyone is
	// refused.
	for range 3 {
		held = append(held, n.rawHTTP(from("127.0.0.3"), ""))
	}
	waitFor(t, func() bool { return !healthy(from("127.0.0.4")) })
	// Places come back when connections close.
	held[0].Close()
	held[3].Close()
	waitFor(t, func() bool { return healthy(from("127.0.0.4")) })
	m := n.metrics()
	for _, want := range []string{`herald_listener_refused_total{reason="global"}`, `herald_listener_refused_total{reason="per_ip"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The caps never count a WebSocket connection twice: the upgrade's
	// connection is the socket the gateway keeps, and closing it frees the
	// place.
	for _, c := range held[1:] {
		c.Close()
	}
	waitFor(t, func() bool { return healthy(from("127.0.0.3")) })
	n.dial("user=w", dialOpt{}) // welcome and resumed
}

// TestDataDirectoryLocked: a second node on the same data directory fails
// at once, naming the directory, and leaves the first one's data alone.
func TestDataDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	first := startNode(t, func(c *config.Config) { c.Data = dir })
	id := first.push("", map[string]any{"to": map[string]any{"users": []string{"u"}}, "data": "kept", "offline": true})
	cfg := config.Default()
	cfg.Addr, cfg.Data, cfg.Dev = "127.0.0.1:0", dir, true
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err = srv.Run(ctx, time.Second)
	if !errors.Is(err, datadir.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second node on %s: %v, want ErrLocked naming the directory", dir, err)
	}
	status, out := first.call("GET", "/v1/messages/"+id, "", nil)
	if status != 200 || out["targeted"] != float64(1) {
		t.Fatalf("first node's message after the refused start: %d %v", status, out)
	}
}

// TestKeepAliveAfterReadBodies: the body guards never cost a well-behaved
// caller its keep-alive connection: pushes, batches and gRPC-free JSON
// calls one after another share one connection.
func TestKeepAliveAfterReadBodies(t *testing.T) {
	n := startNode(t, nil)
	client := &http.Client{Transport: &http.Transport{}}
	var conns []string
	for i, c := range []struct{ path, body string }{
		{"/v1/push", `{"to":{"users":["k"]},"data":1}`},
		{"/v1/push", `{"to":{"users":["k"]},"data":2,"offline":true}`},
		{"/v1/push/batch", `{"items":[{"to":{"users":["k"]},"data":3}]}`},
		{"/v1/rooms/r/join", `{"users":["k"]}`},
		{"/v1/push", `{"to":{"users":["k"]},"data":4}`},
	} {
		req, _ := http.NewRequest("POST", n.base+c.path, strings.NewReader(c.body))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { conns = append(conns, info.Conn.LocalAddr().String()) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("call %d %s: status %d", i, c.path, resp.StatusCode)
		}
	}
	for i, c := range conns {
		if c != conns[0] {
			t.Fatalf("call %d went over a new connection (%s after %s): the server closed a keep-alive connection", i, c, conns[0])
		}
	}
}

// TestFailedUpgradesGiveTheirPlaceBack: a GET /v1/ws that is no WebSocket
// handshake (plain curl) is answered and its connection closed, and its
// place under the connection caps is free again: they never add up until
// the node refuses everyone.
func TestFailedUpgradesGiveTheirPlaceBack(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MaxConns = 8 })
	for i := range 20 {
		c := n.rawHTTP(nil, "GET /v1/ws?user=u HTTP/1.1\r\nHost: x\r\n\r\n")
		if got := closedByServer(t, c); !strings.HasPrefix(got, "HTTP/1.1 4") {
			t.Fatalf("plain GET /v1/ws %d: %q, want a 4xx answer", i, got)
		}
		c.Close()
	}
	waitFor(t, func() bool {
		return strings.Contains(n.metrics(), "herald_listener_connections 1\n")
	})
	n.dial("user=w", dialOpt{})
}
