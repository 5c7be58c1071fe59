package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/config"
)

// wait bounds every wait in these tests; it is a deadline, not a timing
// assertion.
const wait = 10 * time.Second

// node is a Herald server running in the test process.
type node struct {
	t    *testing.T
	base string // http://host:port (https:// with TLS)
	// admin is the admin listener's http://host:port (admin_addr; else
	// empty).
	admin string
	ws    string // ws://host:port/v1/ws (wss:// with TLS)
	// tls trusts the node's certificate when it serves TLS (else nil);
	// http is the API client (http.DefaultClient without TLS).
	tls  *tls.Config
	http *http.Client
	stop func() error
	// exited waits for the node to stop by itself (after a drain) and
	// returns what Run returned.
	exited func() error
}

// startNode runs a node on a free loopback port until the test ends.
func startNode(t *testing.T, edit func(*config.Config)) *node {
	t.Helper()
	return startNodeLog(t, edit, slog.New(slog.DiscardHandler))
}

// startNodeLog is startNode logging to log.
func startNodeLog(t *testing.T, edit func(*config.Config), log *slog.Logger) *node {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Dev = true
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, 5*time.Second) }()
	select {
	case <-srv.Ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(wait):
		t.Fatal("server did not start in time")
	}
	n := &node{t: t, base: "http://" + srv.Addr, ws: "ws://" + srv.Addr + "/v1/ws", http: http.DefaultClient}
	if srv.AdminAddr != "" {
		n.admin = "http://" + srv.AdminAddr
	}
	if cfg.TLSCert != "" {
		n.base, n.ws = "https://"+srv.Addr, "wss://"+srv.Addr+"/v1/ws"
		n.tls = trusting(t, cfg.TLSCert)
		n.http = &http.Client{Transport: &http.Transport{TLSClientConfig: n.tls}}
	}
	stopped := false
	result := func() error {
		stopped = true
		defer cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(wait):
			return errors.New("server did not stop in time")
		}
	}
	n.stop = func() error {
		if stopped {
			return nil
		}
		cancel()
		return result()
	}
	n.exited = result
	t.Cleanup(func() {
		if err := n.stop(); err != nil {
			t.Errorf("stopping server: %v", err)
		}
	})
	return n
}

// call makes an API request and decodes the JSON answer (if any).
func (n *node) call(method, path, key string, body any) (int, map[string]any) {
	n.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, n.base+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			n.t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

// push pushes and fails the test unless the answer is 200.
func (n *node) push(key string, body any) string {
	n.t.Helper()
	status, out := n.call("POST", "/v1/push", key, body)
	if status != 200 {
		n.t.Fatalf("push: status %d: %v", status, out)
	}
	return out["id"].(string)
}

// errCode returns error.code of an API error answer.
func errCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// client is a real WebSocket client.
type client struct {
	t      *testing.T
	conn   net.Conn
	in     io.Reader // conn, behind what the handshake read ahead
	frames chan map[string]any
	closed chan int // the close code the server sent (1006 when none)
	id     string   // connection id from welcome
}

type dialOpt struct {
	header http.Header
	noPong bool // do not answer the server's pings
	noAuto bool // do not read welcome/resumed
}

// dial connects and, unless told not to, reads welcome and resumed.
func (n *node) dial(query string, opt dialOpt) *client {
	n.t.Helper()
	c, err := n.tryDial(query, opt)
	if err != nil {
		n.t.Fatalf("dial %s: %v", query, err)
	}
	if !opt.noAuto {
		w := c.expect("welcome")
		c.id = w["conn"].(string)
		c.expect("resumed")
	}
	return c
}

func (n *node) tryDial(query string, opt dialOpt) (*client, error) {
	d := ws.Dialer{Timeout: wait, TLSConfig: n.tls}
	if opt.header != nil {
		d.Header = ws.HandshakeHeaderHTTP(opt.header)
	}
	url := n.ws
	if query != "" {
		url += "?" + query
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &client{t: n.t, conn: conn, in: conn, frames: make(chan map[string]any, 1024), closed: make(chan int, 1)}
	if br != nil { // frames that came with the handshake answer
		c.in = io.MultiReader(br, conn)
	}
	go c.read(!opt.noPong)
	n.t.Cleanup(func() { conn.Close() })
	return c, nil
}

func (c *client) read(pong bool) {
	code := 1006
	defer func() { c.closed <- code; close(c.frames) }()
	for {
		f, err := ws.ReadFrame(c.in)
		if err != nil {
			return
		}
		switch f.Header.OpCode {
		case ws.OpText:
			var m map[string]any
			if json.Unmarshal(f.Payload, &m) != nil {
				m = map[string]any{"type": "!not-json", "raw": string(f.Payload)}
			}
			c.frames <- m
		case ws.OpPing:
			if pong {
				_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewPongFrame(f.Payload)))
			}
		case ws.OpClose:
			if len(f.Payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.Payload))
			}
			return
		}
	}
}

// send writes a masked text frame.
func (c *client) send(s string) {
	c.t.Helper()
	if err := ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewTextFrame([]byte(s)))); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next text frame.
func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.frames:
		if !ok {
			c.t.Fatal("connection closed while waiting for a frame")
		}
		return m
	case <-time.After(wait):
		c.t.Fatal("no frame in time")
	}
	return nil
}

// expect returns the next frame and fails unless it has the type.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("got frame %v, want type %q", m, typ)
	}
	return m
}

// expectPush returns the data of each message of the next push frame.
func (c *client) expectPush() []any {
	c.t.Helper()
	m := c.expect("push")
	var out []any
	for _, msg := range m["msgs"].([]any) {
		out = append(out, msg.(map[string]any)["data"])
	}
	return out
}

// expectData fails unless the next pushed message carries data.
func (c *client) expectData(data any) map[string]any {
	c.t.Helper()
	m := c.expect("push")
	msgs := m["msgs"].([]any)
	first := msgs[0].(map[string]any)
	if got, _ := json.Marshal(first["data"]); string(got) != mustJSON(data) {
		c.t.Fatalf("got data %s, want %s", got, mustJSON(data))
	}
	return first
}

// expectClose waits for the connection to end and returns the close code.
func (c *client) expectClose() int {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return <-c.closed
			}
		case <-time.After(wait):
			c.t.Fatal("connection not closed in time")
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// metrics returns the node's Prometheus text.
func (n *node) metrics() string {
	n.t.Helper()
	resp, err := n.http.Get(n.base + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// rawDial completes a WebSocket handshake and then never reads.
func (n *node) rawDial(query string) (net.Conn, error) { return n.rawDialFrom(query, nil) }

// rawDialFrom is rawDial from a given local address (nil: any).
func (n *node) rawDialFrom(query string, local net.Addr) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: local}
		return nd.DialContext(ctx, network, addr)
	}}
	conn, _, _, err := d.Dial(ctx, n.ws+"?"+query)
	if err == nil {
		n.t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}
