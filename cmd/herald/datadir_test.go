package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSecondServeOnADataDirectoryExits: a second herald serve on the data
// directory of a running one exits at once, non-zero, naming the directory
// and the process that holds it; the first keeps serving.
func TestSecondServeOnADataDirectoryExits(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	first, addr := startServer(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", data)
	second := start(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--data", data)
	if code := second.waitExit(); code == 0 {
		t.Fatalf("the second herald serve exited with 0; stderr:\n%s", second.stderr())
	}
	out := second.stderr()
	for _, want := range []string{data, "process " + strconv.Itoa(first.cmd.Process.Pid), "in use"} {
		if !strings.Contains(out, want) {
			t.Errorf("the second herald serve's message does not name %q:\n%s", want, out)
		}
	}
	checkHealthz(t, addr)
}
