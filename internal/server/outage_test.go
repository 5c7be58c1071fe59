package server

import (
	"net"
	"testing"

	"github.com/heraldpush/herald/internal/config"
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

// TestNATSOutage: with an external NATS that goes away, /readyz turns
// not-ready and pushes get a clear 503 (never a silent 200); when NATS comes
// back the node recovers by itself (reconnect, resubscribe) and delivers
// again.
func TestNATSOutage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	ns := runNATS(t, port, dir)
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

	runNATS(t, port, dir)
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
