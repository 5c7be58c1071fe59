package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natsinbox"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/nats-io/nats-server/v2/server"
)

// runNATS starts a NATS server with JetStream on a loopback port.
func runNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(wait) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// natsOnFreePort runs a NATS server with JetStream on a free loopback port;
// again starts another on the same port and store, once the first is shut
// down (the same server restarted).
func natsOnFreePort(t *testing.T) (ns *server.Server, again func() *server.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	return runNATS(t, port, dir), func() *server.Server { return runNATS(t, port, dir) }
}

// TestNATSOutage: with an external NATS that goes away, /readyz turns
// not-ready and pushes get a clear 503 (never a silent 200); when NATS comes
// back the node recovers by itself (reconnect, resubscribe) and delivers
// again.
func TestNATSOutage(t *testing.T) {
	ns, again := natsOnFreePort(t)
	n := startNode(t, func(c *config.Config) { c.NATSURL = ns.ClientURL() })
	c := n.dial("user=olga", dialOpt{})
	n.push("", map[string]any{"to": map[string]any{"users": []string{"olga"}}, "data": "before"})
	c.expectData("before")

	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, func() bool { status, _ := n.call("GET", "/readyz", "", nil); return status == 503 })
	for _, offline := range []bool{false, true} {
		status, out := n.call("POST", "/v1/push", "", map[string]any{"to": map[string]any{"users": []string{"olga"}}, "data": "lost?", "offline": offline})
		if status != 503 || errCode(out) != "unavailable" {
			t.Fatalf("push (offline %v) during the outage: %d %v", offline, status, out)
		}
	}

	again()
	waitFor(t, func() bool { status, _ := n.call("GET", "/readyz", "", nil); return status == 200 })
	// The connection's interest was resubscribed: a push reaches it again.
	waitFor(t, func() bool {
		status, _ := n.call("POST", "/v1/push", "", map[string]any{"to": map[string]any{"users": []string{"olga"}}, "data": "after"})
		return status == 200
	})
	for {
		if m := c.expect("push"); mustJSON(m["msgs"].([]any)[0].(map[string]any)["data"]) == `"after"` {
			break
		}
	}
}

// TestLostLiveCopiesAreFilledFromTheInbox: a stored message whose live copy
// never reached the node (here: written to the inbox by another writer,
// which publishes nothing) is still delivered to the user's connection, in
// seq order: before the next stored message that does arrive live (a gap
// in seqs), or, with no next message, once the node's engine connection
// is back after a break (while it was down, live copies went nowhere).
func TestLostLiveCopiesAreFilledFromTheInbox(t *testing.T) {
	ns, again := natsOnFreePort(t)
	n := startNode(t, func(c *config.Config) { c.NATSURL = ns.ClientURL() })
	c := n.dial("user=gil", dialOpt{})

	// The other writer: the same inbox stream, through its own connection.
	e, err := natsengine.New(natsengine.Config{URL: ns.ClientURL(), NodeID: "writer"}, func([][]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ib, err := natsinbox.New(e, natsinbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ib.Start(ctx); err != nil {
		t.Fatal(err)
	}
	silent := func(data string) {
		t.Helper()
		m := &protocol.Message{ID: "m_" + data, Data: []byte(`"` + data + `"`), TS: time.Now().UnixMilli()}
		if _, err := ib.Append(ctx, "demo", []string{"gil"}, m.ID, protocol.AppendMessage(nil, m), time.Hour); err != nil {
			t.Fatal(err)
		}
	}

	silent("lost 1")
	n.offline("", "live 2", "gil")
	c.expectStored(1, "lost 1", "live 2")

	silent("lost 3")
	ns.Shutdown()
	ns.WaitForShutdown()
	again()
	c.expectStored(3, "lost 3")
	n.offline("", "live 4", "gil")
	c.expectStored(4, "live 4")
}
