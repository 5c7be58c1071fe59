package main

import (
	"strconv"
	"syscall"
	"testing"
)

// TestSIGKILLLosesNoAcknowledgedMessage: every offline push the API
// answered 200 survives a SIGKILL of the server, in order.
func TestSIGKILLLosesNoAcknowledgedMessage(t *testing.T) {
	data := t.TempDir()
	srv, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", data)
	const n = 50
	for i := 1; i <= n; i++ {
		r := run(t, nil, "push", "--url", "http://"+addr, "--user", "zoe", "--offline", "--data", strconv.Itoa(i))
		if r.code != 0 {
			t.Fatalf("push %d: %v", i, r)
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.waitExit()

	_, addr = startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", data)
	c := dialWS(t, addr, "?user=zoe")
	if w := c.welcome("zoe"); w["seq"] != float64(n) {
		t.Fatalf("welcome %v after the restart, want seq %d", w, n)
	}
	next := 1
	for next <= n {
		f := c.next()
		if f["type"] != "push" {
			t.Fatalf("frame %v before message %d", f, next)
		}
		for _, m := range f["msgs"].([]any) {
			m := m.(map[string]any)
			if m["data"] != float64(next) || m["seq"] != float64(next) {
				t.Fatalf("message %v, want data and seq %d", m, next)
			}
			next++
		}
	}
	if f := c.next(); f["type"] != "resumed" || f["complete"] != true || f["to"] != float64(n) {
		t.Fatalf("after the replay: %v", f)
	}
}
