package main

import (
	"strings"
	"testing"
)

// TestDrainCommand: herald drain --wait on a serving node closes its client
// with 4000 (reconnect elsewhere), and returns once the node has exited,
// with exit code 0.
func TestDrainCommand(t *testing.T) {
	srv, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--drain-time", "1h")
	alice := dialWS(t, addr, "?user=alice")
	alice.welcome("alice")
	r := run(t, nil, "drain", "--url", "http://"+addr, "--drain-time", "1s", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, `"drain_time":"1s"`) || !strings.Contains(r.stdout, `"conns":1`) {
		t.Fatalf("herald drain: %v", r)
	}
	if code := alice.closeCode(); code != 4000 {
		t.Errorf("drained client got close code %d; want 4000", code)
	}
	if code := srv.waitExit(); code != 0 {
		t.Errorf("drained herald serve exited with %d; want 0; stderr:\n%s", code, srv.stderr())
	}
	if _, ok := srv.find("herald draining"); !ok {
		t.Errorf("no drain was logged; stderr:\n%s", srv.stderr())
	}
	if r := run(t, nil, "drain", "--url", "http://"+addr); r.code == 0 {
		t.Errorf("herald drain of a node that is gone: %v; want a non-zero exit", r)
	}
}
