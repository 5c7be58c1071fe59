package main

import (
	"regexp"
	"strings"
	"testing"
)

var adminURLRE = regexp.MustCompile(`msg="admin UI" url=http://([^/\s]+)/admin/`)

// TestServeAdminAddr: `herald serve --admin-addr` serves the UI on that
// listener, prints its URL at start, and the main listener has no
// /admin/; --dev refuses a non-loopback admin address.
func TestServeAdminAddr(t *testing.T) {
	p := start(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data", t.TempDir())
	main := servingRE.FindStringSubmatch(p.waitLine(`msg="herald serving"`))[1]
	m := adminURLRE.FindStringSubmatch(p.waitLine(`msg="admin UI"`))
	if m == nil || m[1] == main || strings.HasSuffix(m[1], ":0") {
		t.Fatalf("admin URL %v, main listener %s", m, main)
	}
	if status, _ := get(t, m[1], "/admin/"); status != 200 {
		t.Fatalf("GET /admin/ on the admin listener: %d", status)
	}
	if status, _ := get(t, main, "/admin/"); status != 404 {
		t.Fatalf("GET /admin/ on the main listener: %d, want 404", status)
	}

	r := run(t, nil, "serve", "--dev", "--addr", "127.0.0.1:0", "--admin-addr", "0.0.0.0:0", "--data", t.TempDir())
	if r.code == 0 || !strings.Contains(r.stderr, "--admin-addr") || !strings.Contains(r.stderr, "loopback") {
		t.Fatalf("--dev with a public --admin-addr: %v", r)
	}
}
