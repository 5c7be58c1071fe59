package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

func TestBadFramesGetErrorsAndTheConnectionStays(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	cases := []struct {
		frame string
		code  int
	}{
		{`{"type":"join","room":`, protocol.ErrCodeInvalidFrame},
		{`not json at all`, protocol.ErrCodeInvalidFrame},
		{`{"type":"teleport"}`, protocol.ErrCodeInvalidFrame},
		{`{"room":"r1"}`, protocol.ErrCodeInvalidFrame},
		{`{"type":"join"}`, protocol.ErrCodeInvalidArgument},
		{`{"type":"ack","seq":0}`, protocol.ErrCodeInvalidArgument},
		{`{"type":"send","to":{},"data":1}`, protocol.ErrCodeInvalidArgument},
	}
	for _, tc := range cases {
		c.send(tc.frame)
		if e := c.expect("error"); e["code"] != float64(tc.code) {
			t.Fatalf("frame %s: error %v, want code %d", tc.frame, e, tc.code)
		}
	}
	if err := ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewBinaryFrame([]byte{1, 2, 3}))); err != nil {
		t.Fatal(err)
	}
	if e := c.expect("error"); e["code"] != float64(protocol.ErrCodeInvalidFrame) {
		t.Fatalf("binary frame: %v", e)
	}
	// Still connected and served.
	c.send(`{"type":"ping"}`)
	c.expect("pong")
	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "still here"})
	c.expectData("still here")
}

func TestOversizedFrameCloses1009(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.MaxFrame = 1024 })
	big := n.dial("user=big", dialOpt{})
	other := n.dial("user=other", dialOpt{})
	big.send(`{"type":"ping","pad":"` + strings.Repeat("x", 2000) + `"}`)
	if code := big.expectClose(); code != protocol.CloseTooLarge {
		t.Fatalf("close code %d, want %d", code, protocol.CloseTooLarge)
	}
	n.push("", map[string]any{"to": map[string]any{"users": []string{"other"}}, "data": 1})
	other.expectData(1)
}

func TestBadTokensAreRefusedBeforeTheUpgrade(t *testing.T) {
	n := startNode(t, twoApps)
	expired := token(t, "shop", shopSecret, "alice", func(c *auth.Claims) { c.Expires = time.Now().Add(-time.Minute) })
	forged := token(t, "shop", "some-other-secret-0123", "alice", nil)
	hs512 := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "alice", "app": "shop", "exp": time.Now().Add(time.Hour).Unix()})
	wrongAlg, _ := hs512.SignedString([]byte(shopSecret))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "app": "shop", "exp": time.Now().Add(time.Hour).Unix()})
	algNone, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tok := range map[string]string{"expired": expired, "forged": forged, "wrong alg": wrongAlg, "alg none": algNone, "garbage": "abc.def.ghi"} {
		_, err := n.tryDial("token="+tok, dialOpt{})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s token: dial error %v, want a 401", name, err)
		}
		// The same in the Authorization header.
		_, err = n.tryDial("", dialOpt{header: http.Header{"Authorization": {"Bearer " + tok}}})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s token in header: dial error %v, want a 401", name, err)
		}
	}
}

func TestFirstFrameAuthFailures(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		twoApps(c)
		c.Limits.AuthTimeout = 300 * time.Millisecond
	})
	forged := token(t, "shop", "some-other-secret-0123", "alice", nil)
	for name, first := range map[string]string{
		"forged token": `{"type":"auth","token":"` + forged + `"}`,
		"not auth":     `{"type":"ping"}`,
		"not json":     `hello`,
	} {
		c := n.dial("", dialOpt{noAuto: true})
		c.send(first)
		if code := c.expectClose(); code != protocol.CloseUnauthorized {
			t.Errorf("%s: close code %d, want %d", name, code, protocol.CloseUnauthorized)
		}
	}
	silent := n.dial("", dialOpt{noAuto: true})
	if code := silent.expectClose(); code != protocol.CloseUnauthorized {
		t.Errorf("no auth frame: close code %d, want %d", code, protocol.CloseUnauthorized)
	}
}

func TestJoinNotAllowedByToken(t *testing.T) {
	n := startNode(t, twoApps)
	c := n.dial("token="+token(t, "shop", shopSecret, "alice", func(c *auth.Claims) { c.Rooms = []string{"news*", "lobby"} }), dialOpt{})
	none := n.dial("token="+token(t, "shop", shopSecret, "bob", nil), dialOpt{})
	for _, room := range []string{"secret", "new", "lobby2"} {
		c.send(`{"type":"join","room":"` + room + `"}`)
		if e := c.expect("error"); e["code"] != float64(protocol.ErrCodeForbidden) {
			t.Fatalf("join %s: %v", room, e)
		}
	}
	for _, room := range []string{"news-1", "lobby"} {
		c.send(`{"type":"join","room":"` + room + `"}`)
		c.expect("joined")
	}
	none.send(`{"type":"join","room":"lobby"}`)
	if e := none.expect("error"); e["code"] != float64(protocol.ErrCodeForbidden) {
		t.Fatalf("join without rooms claim: %v", e)
	}
}

func TestAPIBadInput(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		twoApps(c)
		c.Limits.MaxPayload = 1024
	})
	target := map[string]any{"users": []string{"alice"}}
	cases := []struct {
		name, method, path, key string
		body                    any
		status                  int
		code                    string
	}{
		{"no key", "POST", "/v1/push", "", map[string]any{"to": target, "data": 1}, 401, "unauthorized"},
		{"wrong key", "POST", "/v1/push", "not-a-key-0123456789", map[string]any{"to": target, "data": 1}, 401, "unauthorized"},
		{"other app", "POST", "/v1/push", shopKey, map[string]any{"app": "blog", "to": target, "data": 1}, 403, "forbidden"},
		{"to.all with app key", "POST", "/v1/push", shopKey, map[string]any{"to": map[string]any{"all": true}, "data": 1}, 403, "forbidden"},
		{"bad json", "POST", "/v1/push", shopKey, `{"to":`, 400, "invalid_json"},
		{"empty body", "POST", "/v1/push", shopKey, ``, 400, "invalid_json"},
		{"no targets", "POST", "/v1/push", shopKey, map[string]any{"to": map[string]any{}, "data": 1}, 400, "invalid_target"},
		{"no to", "POST", "/v1/push", shopKey, map[string]any{"data": 1}, 400, "invalid_target"},
		{"bad conn id", "POST", "/v1/push", shopKey, map[string]any{"to": map[string]any{"conns": []string{"nope"}}, "data": 1}, 400, "invalid_target"},
		{"no data", "POST", "/v1/push", shopKey, map[string]any{"to": target}, 400, "invalid_argument"},
		{"ttl zero", "POST", "/v1/push", shopKey, map[string]any{"to": target, "data": 1, "ttl": 0}, 400, "invalid_argument"},
		{"ttl too long", "POST", "/v1/push", shopKey, map[string]any{"to": target, "data": 1, "ttl": 604801}, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/push", shopKey, map[string]any{"to": target, "data": 1, "user": "x"}, 400, "invalid_argument"},
		{"payload too large", "POST", "/v1/push", shopKey, map[string]any{"to": target, "data": strings.Repeat("x", 2000)}, 413, "payload_too_large"},
		{"body too large", "POST", "/v1/push", shopKey, map[string]any{"to": target, "data": strings.Repeat("x", 100<<10)}, 413, "payload_too_large"},
		{"kick unknown conn", "DELETE", "/v1/conns/c_x_1", shopKey, nil, 404, "not_found"},
		{"kick offline user", "DELETE", "/v1/users/ghost/conns", shopKey, nil, 404, "not_found"},
		{"unknown endpoint", "GET", "/v1/teleport", shopKey, nil, 404, "not_found"},
		{"join without members", "POST", "/v1/rooms/r/join", shopKey, map[string]any{}, 400, "invalid_target"},
		{"drain with an app key", "POST", "/v1/admin/drain", shopKey, nil, 403, "forbidden"},
		{"another app's recent messages", "GET", "/v1/messages?app=blog", shopKey, nil, 403, "forbidden"},
		{"another app's history", "GET", "/v1/stats/history?app=blog", shopKey, nil, 403, "forbidden"},
		{"another app's webhooks", "GET", "/v1/webhooks?app=blog", shopKey, nil, 403, "forbidden"},
		{"another app's dead letters", "GET", "/v1/webhooks/dead?app=blog", shopKey, nil, 403, "forbidden"},
		{"another app's inbox", "GET", "/v1/users/ann/inbox?app=blog", shopKey, nil, 403, "forbidden"},
		{"drain, bad time", "POST", "/v1/admin/drain", adminKey, map[string]any{"drain_time": "soon"}, 400, "invalid_argument"},
		{"drain, unknown field", "POST", "/v1/admin/drain", adminKey, map[string]any{"over": "1s"}, 400, "invalid_argument"},
	}
	for _, tc := range cases {
		status, out := n.call(tc.method, tc.path, tc.key, tc.body)
		if status != tc.status || errCode(out) != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, out, tc.status, tc.code)
		}
	}
	// The ttl error names the limit.
	_, out := n.call("POST", "/v1/push", shopKey, map[string]any{"to": target, "data": 1, "ttl": -5})
	if msg := out["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "604800") {
		t.Errorf("ttl message %q does not name the limit", msg)
	}
}

func TestSlowConsumerIsClosedAndOthersKeepReceiving(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.QueueBytes, c.Limits.MaxPayload = 64<<10, 20<<10 })
	// The slow client never reads: its socket buffers fill, then its queue.
	if _, err := n.rawDial("user=slow"); err != nil {
		t.Fatal(err)
	}
	fast := n.dial("user=fast", dialOpt{})
	fast.send(`{"type":"join","room":"firehose"}`)
	fast.expect("joined")
	if status, _ := n.call("POST", "/v1/rooms/firehose/join", "", map[string]any{"users": []string{"slow"}}); status != 204 {
		t.Fatal("join")
	}
	payload := strings.Repeat("y", 16<<10)
	status, out := n.call("GET", "/v1/users/slow", "", nil)
	if status != 200 || out["online"] != true {
		t.Fatalf("slow user: %v", out)
	}
	for i := 0; ; i++ {
		n.push("", map[string]any{"to": map[string]any{"rooms": []string{"firehose"}}, "data": payload})
		fast.expectPush()
		if _, out := n.call("GET", "/v1/users/slow", "", nil); out["online"] == false {
			break // closed as a slow consumer
		}
		if i > 10000 {
			t.Fatal("slow consumer never closed")
		}
	}
	n.push("", map[string]any{"to": map[string]any{"rooms": []string{"firehose"}}, "data": "after"})
	for {
		if d := fast.expectPush(); mustJSON(d[len(d)-1]) == `"after"` {
			break
		}
	}
	if m := n.metrics(); !strings.Contains(m, "herald_gateway_slow_consumers_total 1") {
		t.Fatal("slow consumer not counted")
	}
}
