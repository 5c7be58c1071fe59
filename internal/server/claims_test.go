package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

// upgradeStatus tries a WebSocket upgrade with query and returns the HTTP
// status (101 when it upgraded) and the error message of a refusal.
func (n *node) upgradeStatus(query string) (int, string) {
	n.t.Helper()
	req, _ := http.NewRequest("GET", n.ws+"?"+query, nil)
	req.URL.Scheme = "http"
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := n.http.Do(req)
	if err != nil {
		n.t.Fatalf("upgrade %s: %v", query, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body.Error.Message
}

// authFrameClose connects without a token, sends an auth frame with tok
// and returns the close code and reason the server answers with (0 and
// the frame type if it answers with a frame instead).
func (n *node) authFrameClose(tok string) (int, string) {
	n.t.Helper()
	conn, err := n.rawDial("")
	if err != nil {
		n.t.Fatal(err)
	}
	msg, _ := json.Marshal(map[string]string{"type": "auth", "token": tok})
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewTextFrame(msg))); err != nil {
		n.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		f, err := ws.ReadFrame(conn)
		if err != nil {
			n.t.Fatalf("reading the answer to an auth frame: %v", err)
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			if len(f.Payload) < 2 {
				return 1005, ""
			}
			return int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
		case ws.OpText:
			var m map[string]any
			_ = json.Unmarshal(f.Payload, &m)
			typ, _ := m["type"].(string)
			return 0, typ
		}
	}
}

// signed signs claims for app with HS256 as a backend might, any claim
// allowed.
func signed(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenTimesAndNamesAreChecked(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		twoApps(c)
		c.Apps[0].MaxTokenLifetime = 24 * time.Hour // shop; blog has no limit
	})
	now := time.Now()
	claims := func(app string, over jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"app": app, "sub": "alice", "exp": now.Add(time.Hour).Unix()}
		for k, v := range over {
			c[k] = v
		}
		return c
	}
	shop := func(over jwt.MapClaims) string { return signed(t, shopSecret, claims("shop", over)) }
	blog := func(over jwt.MapClaims) string { return signed(t, blogSecret, claims("blog", over)) }
	for _, tc := range []struct {
		name string
		tok  string
		ok   bool
	}{
		{"valid", shop(nil), true},
		{"valid device", shop(jwt.MapClaims{"device": "phone 2"}), true},
		{"exp in the year 9999", blog(jwt.MapClaims{"exp": int64(253402300799)}), false},
		{"exp as a string", blog(jwt.MapClaims{"exp": "1893456000"}), false},
		{"nbf as a string", blog(jwt.MapClaims{"nbf": "1"}), false},
		{"iat as a string", blog(jwt.MapClaims{"iat": "1"}), false},
		{"exp within the app's maximum", shop(jwt.MapClaims{"exp": now.Add(23 * time.Hour).Unix()}), true},
		{"exp beyond the app's maximum", shop(jwt.MapClaims{"exp": now.Add(48 * time.Hour).Unix()}), false},
		{"exp - iat beyond the app's maximum", shop(jwt.MapClaims{"iat": now.Add(-48 * time.Hour).Unix()}), false},
		{"no maximum on the other app", blog(jwt.MapClaims{"exp": now.Add(48 * time.Hour).Unix()}), true},
		{"device with a control character", shop(jwt.MapClaims{"device": "phone\x07"}), false},
		{"device of 5000 bytes", shop(jwt.MapClaims{"device": strings.Repeat("d", 5000)}), false},
	} {
		status, msg := n.upgradeStatus("token=" + tc.tok)
		if tc.ok != (status == http.StatusSwitchingProtocols) || !tc.ok && status != http.StatusUnauthorized {
			t.Errorf("%s: upgrade answered %d %q", tc.name, status, msg)
		}
		if !tc.ok && !strings.HasPrefix(msg, "invalid token") {
			t.Errorf("%s: 401 message %q, want \"invalid token: …\"", tc.name, msg)
		}
		code, reason := n.authFrameClose(tc.tok)
		switch {
		case tc.ok && code != 0:
			t.Errorf("%s: auth frame closed with %d %q", tc.name, code, reason)
		case !tc.ok && (code != protocol.CloseUnauthorized || !strings.HasPrefix(reason, "invalid token")):
			t.Errorf("%s: auth frame answered %d %q, want close 4001 \"invalid token: …\"", tc.name, code, reason)
		}
	}
}

func TestExpiredTokenSaysSoOnBothPaths(t *testing.T) {
	n := startNode(t, twoApps)
	expired := token(t, "shop", shopSecret, "alice", func(c *auth.Claims) { c.Expires = time.Now().Add(-time.Minute) })
	status, msg := n.upgradeStatus("token=" + expired)
	if status != http.StatusUnauthorized || !strings.HasPrefix(msg, "token expired") {
		t.Errorf("upgrade with an expired token: %d %q, want 401 \"token expired: …\"", status, msg)
	}
	code, reason := n.authFrameClose(expired)
	if code != protocol.CloseUnauthorized || !strings.HasPrefix(reason, "token expired") {
		t.Errorf("auth frame with an expired token: close %d %q, want 4001 \"token expired: …\"", code, reason)
	}
	if m := n.metrics(); !strings.Contains(m, `herald_gateway_auth_refused_total{reason="expired"} 2`) {
		t.Errorf("refused expired tokens not counted:\n%s", m)
	}
}

func TestAdminCannotActOnAnAppThatDoesNotExist(t *testing.T) {
	n := startNode(t, twoApps)
	target := map[string]any{"users": []string{"alice"}}
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/push", map[string]any{"app": "nope", "to": target, "data": 1, "offline": true}},
		{"POST", "/v1/push", map[string]any{"app": "nope", "to": map[string]any{"all": true}, "data": 1}},
		{"POST", "/v1/rooms/r1/join", map[string]any{"app": "nope", "users": []string{"alice"}}},
		{"GET", "/v1/users/alice?app=nope", nil},
		{"GET", "/v1/stats?app=nope", nil},
	} {
		status, out := n.call(tc.method, tc.path, adminKey, tc.body)
		e, _ := out["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if status != 400 || errCode(out) != "invalid_argument" || !strings.Contains(msg, `"nope"`) {
			t.Errorf("%s %s: %d %v, want 400 invalid_argument naming the app", tc.method, tc.path, status, out)
		}
	}
	status, out := n.call("POST", "/v1/push/batch", adminKey, map[string]any{"items": []any{
		map[string]any{"app": "nope", "to": target, "data": 1},
		map[string]any{"app": "shop", "to": target, "data": 1},
	}})
	results, _ := out["results"].([]any)
	if status != 200 || len(results) != 2 {
		t.Fatalf("batch: %d %v", status, out)
	}
	if e, _ := results[0].(map[string]any)["error"].(map[string]any); e["code"] != "invalid_argument" {
		t.Errorf("batch item for an unknown app: %v", results[0])
	}
	if _, ok := results[1].(map[string]any)["id"]; !ok {
		t.Errorf("batch item for shop: %v", results[1])
	}
	n.push(adminKey, map[string]any{"app": "blog", "to": target, "data": 1})
}

func TestDevModeAppsAreDemoAndTheConfiguredOnes(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Apps = []config.App{{Name: "shop", APIKeys: []string{shopKey}, TokenSecret: shopSecret}}
	})
	target := map[string]any{"users": []string{"alice"}}
	if status, out := n.call("POST", "/v1/push", "", map[string]any{"app": "nope", "to": target, "data": 1}); status != 400 || errCode(out) != "invalid_argument" {
		t.Errorf("dev push to an unknown app: %d %v", status, out)
	}
	if status, msg := n.upgradeStatus("app=nope&user=alice"); status != http.StatusUnauthorized || !strings.Contains(msg, `"nope"`) {
		t.Errorf("dev connect to an unknown app: %d %q", status, msg)
	}
	demo := n.dial("user=alice", dialOpt{})
	shop := n.dial("app=shop&user=alice", dialOpt{})
	n.push("", map[string]any{"to": target, "data": "demo"})
	n.push("", map[string]any{"app": "shop", "to": target, "data": "shop"})
	demo.expectData("demo")
	shop.expectData("shop")
}

func TestAppKeyNamingAnotherAppInStatsIsForbidden(t *testing.T) {
	n := startNode(t, twoApps)
	if status, out := n.call("GET", "/v1/stats?app=blog", shopKey, nil); status != 403 || errCode(out) != "forbidden" {
		t.Errorf("app key, another app's stats: %d %v, want 403 forbidden", status, out)
	}
	if status, out := n.call("GET", "/v1/stats?app=shop", shopKey, nil); status != 200 {
		t.Errorf("app key, its own app's stats: %d %v", status, out)
	}
	n.dial("token="+token(t, "blog", blogSecret, "bob", nil), dialOpt{})
	status, out := n.call("GET", "/v1/stats?app=blog", adminKey, nil)
	if status != 200 || out["conns"] != float64(1) {
		t.Errorf("admin, blog's stats: %d %v, want 1 connection", status, out)
	}
	if status, out := n.call("GET", "/v1/stats?app=shop", adminKey, nil); status != 200 || out["conns"] != float64(0) {
		t.Errorf("admin, shop's stats: %d %v, want 0 connections", status, out)
	}
}

func TestRootPointsToTheDocs(t *testing.T) {
	n := startNode(t, twoApps)
	status, out := n.call("GET", "/", "", nil)
	if status != 200 || out["docs"] == nil || out["websocket"] != "/v1/ws" || out["ready"] != "/readyz" {
		t.Errorf("GET /: %d %v", status, out)
	}
	resp, err := n.http.Get(n.base + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nothing-here: %d, want 404", resp.StatusCode)
	}
}

func TestErrorBodiesAreNotHTMLEscaped(t *testing.T) {
	n := startNode(t, twoApps)
	resp, err := n.http.Post(n.base+"/v1/push", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(raw), "Bearer <key>") {
		t.Errorf("401 body %q, want it to say Bearer <key> as is", raw)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDebugLogsConnectsDisconnectsAndPushes(t *testing.T) {
	var debug, info syncBuffer
	n := startNodeLog(t, nil, slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	quiet := startNodeLog(t, nil, slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo})))
	for _, n := range []*node{n, quiet} {
		c := n.dial("user=alice&device=phone", dialOpt{})
		n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}, "rooms": []string{"r1"}}, "data": 1, "offline": true})
		c.expectData(1)
		if status, _ := n.call("DELETE", "/v1/conns/"+c.id, "", nil); status != 204 {
			t.Fatalf("kick: %d", status)
		}
		c.expectClose()
	}
	want := []string{
		`msg="client connected" conn=c_`, `app=demo user=alice device=phone addr=127.0.0.1:`,
		`msg="push accepted" id=m_`, `app=demo users=1 conns=0 rooms=1 to_app=false to_all=false offline=true`,
		`msg="client disconnected" conn=c_`, `code=4002 reason=kicked`,
	}
	// Each line is written before the client or the API caller hears of
	// the event: connected before welcome, accepted before the 200,
	// disconnected before the close frame.
	for _, w := range want {
		if !strings.Contains(debug.String(), w) {
			t.Errorf("debug log lacks %q:\n%s", w, debug.String())
		}
	}
	for _, w := range []string{"client connected", "push accepted", "client disconnected"} {
		if strings.Contains(info.String(), w) {
			t.Errorf("info log has %q:\n%s", w, info.String())
		}
	}
}
