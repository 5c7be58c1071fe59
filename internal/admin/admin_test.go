package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

const (
	adminKey = "admin-key-0123456789abcdef"
	keyA     = "app-a-key-0123456789abcdef"
	keyB     = "app-b-key-0123456789abcdef"
)

// start runs a real node on loopback with apps "a" and "b" and an admin
// key (dev: a --dev node instead) and returns its base URL.
func start(t *testing.T, dev bool) string {
	t.Helper()
	cfg := config.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.Dev = dev
	if !dev {
		cfg.AdminKeys = []string{adminKey}
		cfg.Apps = []config.App{
			{Name: "a", APIKeys: []string{keyA}, TokenSecret: "secret-a-0123456789abcdef0123456789"},
			{Name: "b", APIKeys: []string{keyB}, TokenSecret: "secret-b-0123456789abcdef0123456789"},
		}
	}
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, 5*time.Second) }()
	select {
	case <-srv.Ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start in time")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("server: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop in time")
		}
	})
	return "http://" + srv.Addr
}

// browser is a session: its cookie and CSRF token.
type browser struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	csrf   string
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return res, body
}

func loginReq(t *testing.T, base, key string) *http.Request {
	req, err := http.NewRequest("POST", base+"/admin/login", strings.NewReader(`{"key":"`+key+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// login logs in with key and checks the cookie's attributes.
func login(t *testing.T, base, key string) *browser {
	t.Helper()
	res, body := do(t, loginReq(t, base, key))
	if res.StatusCode != 200 {
		t.Fatalf("login: %d %v", res.StatusCode, body)
	}
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == admin.CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 || ck.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Max-Age, Path=/", ck)
	}
	csrf, _ := body["csrf"].(string)
	if csrf == "" || strings.Contains(res.Header.Get("Set-Cookie"), csrf) {
		t.Fatalf("login answer %v: want a CSRF token that is not the cookie", body)
	}
	return &browser{t: t, base: base, cookie: ck, csrf: csrf}
}

// call makes an API call with the session cookie; csrf is the header's
// value ("" leaves it out).
func (b *browser) call(method, path, csrf, body string) (int, map[string]any) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.AddCookie(b.cookie)
	if csrf != "" {
		req.Header.Set(admin.CSRFHeader, csrf)
	}
	res, out := do(b.t, req)
	return res.StatusCode, out
}

func code(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// TestSessionStandsForItsKey: an admin key's session calls the v1 API
// with the cookie and the CSRF header; without the header, with another
// session's header, with a forged cookie or after logout it cannot.
func TestSessionStandsForItsKey(t *testing.T) {
	base := start(t, false)
	b := login(t, base, adminKey)
	other := login(t, base, adminKey)

	if st, body := b.call("GET", "/v1/stats?app=b", b.csrf, ""); st != 200 {
		t.Fatalf("stats with the session: %d %v", st, body)
	}
	if st, body := b.call("POST", "/v1/push", b.csrf, `{"app":"a","to":{"users":["u"]},"data":1}`); st != 200 {
		t.Fatalf("admin session push: %d %v", st, body)
	}
	for _, csrf := range []string{"", "wrong", other.csrf} {
		if st, body := b.call("POST", "/v1/push", csrf, `{"app":"a","to":{"users":["u"]},"data":1}`); st != 403 || code(body) != "forbidden" {
			t.Fatalf("push with CSRF header %q: %d %v, want 403 forbidden", csrf, st, body)
		}
		if st, _ := b.call("GET", "/v1/stats", csrf, ""); st != 403 {
			t.Fatalf("GET with CSRF header %q: %d, want 403", csrf, st)
		}
	}
	forged := &browser{t: t, base: base, cookie: &http.Cookie{Name: admin.CookieName, Value: "forged"}, csrf: b.csrf}
	if st, body := forged.call("GET", "/v1/stats", b.csrf, ""); st != 401 || code(body) != "unauthorized" {
		t.Fatalf("forged cookie: %d %v, want 401", st, body)
	}
	if st, _ := forged.call("GET", "/admin/session", "", ""); st != 401 {
		t.Fatalf("GET /admin/session with a forged cookie: %d, want 401", st)
	}
	if st, body := b.call("GET", "/admin/session", "", ""); st != 200 || body["csrf"] != b.csrf || body["admin"] != true {
		t.Fatalf("GET /admin/session: %d %v", st, body)
	}
	if st, _ := b.call("POST", "/admin/logout", "", ""); st != 403 {
		t.Fatalf("logout without the CSRF header: %d, want 403", st)
	}
	if st, _ := b.call("POST", "/admin/logout", b.csrf, ""); st != 204 {
		t.Fatalf("logout: %d, want 204", st)
	}
	if st, _ := b.call("GET", "/v1/stats", b.csrf, ""); st != 401 {
		t.Fatalf("after logout: %d, want 401", st)
	}
	if st, _ := other.call("GET", "/v1/stats", other.csrf, ""); st != 200 {
		t.Fatalf("the other session after the first's logout: %d, want 200", st)
	}
}

// TestAppKeySessionIsReadOnly: an app key's session reads its own app and
// nothing else, and changes nothing.
func TestAppKeySessionIsReadOnly(t *testing.T) {
	base := start(t, false)
	b := login(t, base, keyA)
	if st, body := b.call("GET", "/admin/session", "", ""); st != 200 || body["admin"] != false || body["app"] != "a" {
		t.Fatalf("session: %d %v", st, body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/push", `{"to":{"users":["u"]},"data":1}`},
		{"DELETE", "/v1/conns/c_x", ""},
		{"POST", "/v1/rooms/r/join", `{"users":["u"]}`},
		{"POST", "/v1/admin/drain", ""},
		{"GET", "/v1/stats?app=b", ""},
		{"GET", "/v1/users/u?app=b", ""},
		{"GET", "/v1/admin/tail?target=room:r", ""},
	} {
		if st, body := b.call(c.method, c.path, b.csrf, c.body); st != 403 {
			t.Errorf("%s %s: %d %v, want 403", c.method, c.path, st, body)
		}
	}
	if st, body := b.call("GET", "/v1/users/u", b.csrf, ""); st != 200 || body["online"] != false {
		t.Fatalf("GET own user: %d %v", st, body)
	}
	if st, _ := b.call("GET", "/v1/stats", b.csrf, ""); st != 200 {
		t.Fatalf("GET own stats: %d", st)
	}
}

// TestLoginRefusals: a wrong or empty key gets no cookie; after
// LoginBurst failures from one address even the right key waits (429 with
// Retry-After); a login from another origin is refused.
func TestLoginRefusals(t *testing.T) {
	base := start(t, false)
	req := loginReq(t, base, adminKey)
	req.Header.Set("Origin", "http://evil.example")
	if res, _ := do(t, req); res.StatusCode != 403 || len(res.Cookies()) != 0 {
		t.Fatalf("cross-origin login: %d, cookies %v", res.StatusCode, res.Cookies())
	}
	for i := range admin.LoginBurst {
		key := "wrong-key-0123456789abcdef"
		if i == 0 {
			key = ""
		}
		res, body := do(t, loginReq(t, base, key))
		if res.StatusCode != 401 || len(res.Cookies()) != 0 {
			t.Fatalf("login %d with a wrong key: %d %v cookies %v", i, res.StatusCode, body, res.Cookies())
		}
	}
	res, body := do(t, loginReq(t, base, adminKey))
	if res.StatusCode != 429 || code(body) != "rate_limited" || res.Header.Get("Retry-After") == "" || len(res.Cookies()) != 0 {
		t.Fatalf("login after %d failures: %d %v (Retry-After %q)", admin.LoginBurst, res.StatusCode, body, res.Header.Get("Retry-After"))
	}
}

// TestDevNeedsNoLogin: a --dev node's UI has a session without a login
// and its API answers without a cookie.
func TestDevNeedsNoLogin(t *testing.T) {
	base := start(t, true)
	res, body := do(t, mustReq(t, "GET", base+"/admin/session"))
	if res.StatusCode != 200 || body["dev"] != true || body["admin"] != true {
		t.Fatalf("dev session: %d %v", res.StatusCode, body)
	}
	res, _ = do(t, mustReq(t, "GET", base+"/admin/"))
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || res.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /admin/: %d %v", res.StatusCode, res.Header)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestTailShowsPushes: an admin session's tail of a room and of a user
// streams the pushes published to them, and no others.
func TestTailShowsPushes(t *testing.T) {
	base := start(t, false)
	b := login(t, base, adminKey)
	for _, target := range []string{"room:news", "user:alice"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/admin/tail?app=a&target="+target, nil)
		req.AddCookie(b.cookie)
		req.Header.Set(admin.CSRFHeader, b.csrf)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("tail %s: %v %v", target, err, res)
		}
		rd := bufio.NewReader(res.Body)
		if line, _ := rd.ReadString('\n'); line != ": tail\n" {
			t.Fatalf("tail opened with %q", line)
		}
		to := `{"rooms":["news"]}`
		if strings.HasPrefix(target, "user:") {
			to = `{"users":["alice"]}`
		}
		// Another app's push to the same name is not shown.
		if st, body := b.call("POST", "/v1/push", b.csrf, `{"app":"b","to":`+to+`,"data":"other app"}`); st != 200 {
			t.Fatalf("push: %d %v", st, body)
		}
		if st, body := b.call("POST", "/v1/push", b.csrf, `{"app":"a","to":`+to+`,"data":"hello"}`); st != 200 {
			t.Fatalf("push: %d %v", st, body)
		}
		var ev struct {
			Kind string `json:"kind"`
			Msg  struct {
				Data any `json:"data"`
			} `json:"msg"`
		}
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("tail %s ended before the push: %v", target, err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		if ev.Kind != "push" || ev.Msg.Data != "hello" {
			t.Fatalf("tail %s: first event %+v, want the push of app a", target, ev)
		}
		cancel()
		res.Body.Close()
	}
}
