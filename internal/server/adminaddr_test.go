package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/config"
)

// lockedBuffer is a log sink the server writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// httpDo sends req and returns the status and the decoded JSON answer.
func httpDo(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestAdminAddrServesTheUIOnItsOwnListener: with admin_addr the UI, its
// login and the API answer there; the main listener serves no /admin/ and
// takes no session cookie (API keys still work on both); the start log
// names the admin listener's URL.
func TestAdminAddrServesTheUIOnItsOwnListener(t *testing.T) {
	logs := &lockedBuffer{}
	n := startNodeLog(t, func(c *config.Config) {
		twoApps(c)
		c.AdminAddr = "127.0.0.1:0"
	}, slog.New(slog.NewTextHandler(logs, nil)))
	if n.admin == "" || n.admin == n.base {
		t.Fatalf("admin listener %q, main %q", n.admin, n.base)
	}
	if want := "url=" + n.admin + "/admin/"; !strings.Contains(logs.String(), want) {
		t.Fatalf("start log lacks %q:\n%s", want, logs.String())
	}
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(n.base + "/admin/"); got != 404 {
		t.Fatalf("main listener GET /admin/: %d, want 404", got)
	}
	if got := get(n.admin + "/admin/"); got != 200 {
		t.Fatalf("admin listener GET /admin/: %d, want 200", got)
	}
	req, _ := http.NewRequest("POST", n.base+"/admin/login", strings.NewReader(`{"key":"`+adminKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if status, _ := httpDo(t, req); status != 404 && status != 405 {
		t.Fatalf("main listener POST /admin/login: %d, want no such endpoint", status)
	}

	req, _ = http.NewRequest("POST", n.admin+"/admin/login", strings.NewReader(`{"key":"`+adminKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CSRF string `json:"csrf"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == admin.CookieName {
			cookie = c
		}
	}
	if resp.StatusCode != 200 || cookie == nil || info.CSRF == "" {
		t.Fatalf("login on the admin listener: %d, cookie %v", resp.StatusCode, cookie)
	}
	stats := func(base string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", base+"/v1/stats", nil)
		req.AddCookie(cookie)
		req.Header.Set(admin.CSRFHeader, info.CSRF)
		return httpDo(t, req)
	}
	if status, out := stats(n.admin); status != 200 {
		t.Fatalf("session on the admin listener: %d %v", status, out)
	}
	if status, out := stats(n.base); status != 401 {
		t.Fatalf("session on the main listener: %d %v, want 401", status, out)
	}
	for _, base := range []string{n.base, n.admin} {
		req, _ := http.NewRequest("GET", base+"/v1/stats", nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		if status, out := httpDo(t, req); status != 200 {
			t.Fatalf("admin key on %s: %d %v", base, status, out)
		}
	}
}

// TestAdminUIOnTheMainListener: without admin_addr the UI is on the main
// listener, and the start log says so.
func TestAdminUIOnTheMainListener(t *testing.T) {
	logs := &lockedBuffer{}
	n := startNodeLog(t, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if n.admin != "" {
		t.Fatalf("admin listener %q without admin_addr", n.admin)
	}
	if want := "url=" + n.base + "/admin/"; !strings.Contains(logs.String(), want) {
		t.Fatalf("start log lacks %q:\n%s", want, logs.String())
	}
	resp, err := http.Get(n.base + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /admin/: %d", resp.StatusCode)
	}
}

// TestAdminListenerCapsAndLoginMetrics: logins are counted (tried,
// failed) and the live sessions are a gauge; the admin listener refuses
// an address past its per-IP cap (counted as admin_per_ip) while the
// main listener still answers it.
func TestAdminListenerCapsAndLoginMetrics(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		twoApps(c)
		c.AdminAddr = "127.0.0.1:0"
	})
	for _, key := range []string{"wrong", adminKey} {
		req, _ := http.NewRequest("POST", n.admin+"/admin/login", strings.NewReader(`{"key":"`+key+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Close = true // holds no place on the admin listener afterwards
		httpDo(t, req)
	}
	m := n.metrics()
	for _, want := range []string{"herald_admin_login_attempts_total 2", "herald_admin_login_failures_total 1",
		"herald_admin_login_throttled_total 0", "herald_admin_sessions 1"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}

	waitFor(t, func() bool { return strings.Contains(n.metrics(), "herald_admin_listener_connections 0\n") })
	adminHost := strings.TrimPrefix(n.admin, "http://")
	for range adminMaxConnsPerIP {
		c, err := net.DialTimeout("tcp", adminHost, wait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	// One more is accepted and closed at once: it reads no answer.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", adminHost, wait)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(wait))
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		_, err = c.Read(make([]byte, 1))
		return err != nil
	})
	if status, _ := n.call("GET", "/healthz", "", nil); status != 200 {
		t.Fatalf("main listener /healthz: %d", status)
	}
	if m := n.metrics(); !strings.Contains(m, `herald_listener_refused_total{reason="admin_per_ip"}`) {
		t.Fatal("no admin_per_ip refusal counted")
	}
	// The probes answered before the cap was reached close in a moment.
	waitFor(t, func() bool {
		return strings.Contains(n.metrics(), "herald_admin_listener_connections "+strconv.Itoa(adminMaxConnsPerIP)+"\n")
	})
}
