package server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

const (
	shopKey    = "shop-key-0123456789"
	blogKey    = "blog-key-0123456789"
	adminKey   = "admin-key-0123456789"
	shopSecret = "shop-secret-0123456789"
	blogSecret = "blog-secret-0123456789"
)

// twoApps configures apps "shop" and "blog" and an admin key, no dev mode.
func twoApps(c *config.Config) {
	c.Dev = false
	c.AdminKeys = []string{adminKey}
	c.Apps = []config.App{
		{Name: "shop", APIKeys: []string{shopKey}, TokenSecret: shopSecret},
		{Name: "blog", APIKeys: []string{blogKey}, TokenSecret: blogSecret},
	}
}

func token(t *testing.T, app, secret, user string, edit func(*auth.Claims)) string {
	t.Helper()
	c := auth.Claims{App: app, User: user, Expires: time.Now().Add(time.Hour)}
	if edit != nil {
		edit(&c)
	}
	tok, err := auth.Mint(app, []byte(secret), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestUserPushReachesEveryConnectionOfTheUser(t *testing.T) {
	n := startNode(t, nil)
	phone := n.dial("user=alice&device=phone", dialOpt{})
	laptop := n.dial("user=alice&device=laptop", dialOpt{})
	bob := n.dial("user=bob", dialOpt{})

	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": map[string]any{"n": 1}})
	msg := phone.expectData(map[string]any{"n": 1})
	laptop.expectData(map[string]any{"n": 1})
	if _, ok := msg["id"].(string); !ok {
		t.Fatalf("message has no id: %v", msg)
	}
	// bob got nothing: the next thing he sees is a push to him.
	n.push("", map[string]any{"to": map[string]any{"users": []string{"bob"}}, "data": "sentinel"})
	bob.expectData("sentinel")
}

func TestRoomPushReachesOnlyMembers(t *testing.T) {
	n := startNode(t, nil)
	in1 := n.dial("user=a", dialOpt{})
	in2 := n.dial("user=b", dialOpt{})
	out := n.dial("user=c", dialOpt{})
	for _, c := range []*client{in1, in2} {
		c.send(`{"type":"join","room":"r1"}`)
		if j := c.expect("joined"); j["room"] != "r1" {
			t.Fatalf("joined %v", j)
		}
	}
	n.push("", map[string]any{"to": map[string]any{"rooms": []string{"r1"}}, "data": "hi room"})
	for _, c := range []*client{in1, in2} {
		if m := c.expectData("hi room"); m["room"] != "r1" {
			t.Fatalf("room message without room: %v", m)
		}
	}
	n.push("", map[string]any{"to": map[string]any{"users": []string{"c"}}, "data": "sentinel"})
	out.expectData("sentinel")

	// After leaving, the room push no longer arrives.
	in2.send(`{"type":"leave","room":"r1"}`)
	in2.expect("left")
	n.push("", map[string]any{"to": map[string]any{"rooms": []string{"r1"}}, "data": "second"})
	in1.expectData("second")
	n.push("", map[string]any{"to": map[string]any{"users": []string{"b"}}, "data": "sentinel"})
	in2.expectData("sentinel")
}

func TestOneCopyWhenTargetsOverlap(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	c.send(`{"type":"join","room":"r1"}`)
	c.expect("joined")
	c.send(`{"type":"join","room":"r2"}`)
	c.expect("joined")
	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}, "rooms": []string{"r1", "r2"}, "conns": []string{c.id}, "app": true}, "data": 1})
	c.expectData(1)
	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "sentinel"})
	c.expectData("sentinel")
}

func TestAppPushStaysInTheApp(t *testing.T) {
	n := startNode(t, twoApps)
	shop1 := n.dial("token="+token(t, "shop", shopSecret, "u1", nil), dialOpt{})
	shop2 := n.dial("token="+token(t, "shop", shopSecret, "u2", nil), dialOpt{})
	blog := n.dial("token="+token(t, "blog", blogSecret, "u1", nil), dialOpt{})

	n.push(shopKey, map[string]any{"to": map[string]any{"app": true}, "data": "shop news"})
	shop1.expectData("shop news")
	shop2.expectData("shop news")
	// Same user name in another app: a shop user push does not cross either.
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"u1"}}, "data": "shop u1"})
	shop1.expectData("shop u1")
	n.push(blogKey, map[string]any{"to": map[string]any{"app": true}, "data": "sentinel"})
	blog.expectData("sentinel")

	// An admin push to everyone reaches both apps.
	n.push(adminKey, map[string]any{"to": map[string]any{"all": true}, "data": "all"})
	for _, c := range []*client{shop1, shop2, blog} {
		c.expectData("all")
	}
}

func TestKick(t *testing.T) {
	n := startNode(t, twoApps)
	c := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	d1 := n.dial("token="+token(t, "shop", shopSecret, "bob", nil), dialOpt{})
	d2 := n.dial("token="+token(t, "shop", shopSecret, "bob", nil), dialOpt{})

	// Another app's key cannot see or kick the connection.
	if status, out := n.call("DELETE", "/v1/conns/"+c.id, blogKey, nil); status != 404 || errCode(out) != "not_found" {
		t.Fatalf("kick with another app's key: %d %v", status, out)
	}
	if status, _ := n.call("DELETE", "/v1/conns/"+c.id, shopKey, nil); status != 204 {
		t.Fatalf("kick: %d", status)
	}
	if code := c.expectClose(); code != protocol.CloseKicked {
		t.Fatalf("close code %d, want %d", code, protocol.CloseKicked)
	}
	if status, _ := n.call("DELETE", "/v1/users/bob/conns", shopKey, nil); status != 204 {
		t.Fatalf("kick user: %d", status)
	}
	for _, d := range []*client{d1, d2} {
		if code := d.expectClose(); code != protocol.CloseKicked {
			t.Fatalf("close code %d, want %d", code, protocol.CloseKicked)
		}
	}
	if status, out := n.call("DELETE", "/v1/conns/c_nope_1", shopKey, nil); status != 404 {
		t.Fatalf("unknown conn: %d %v", status, out)
	}
	if status, out := n.call("DELETE", "/v1/users/bob/conns", shopKey, nil); status != 404 {
		t.Fatalf("user without connections: %d %v", status, out)
	}
	_, out := n.call("GET", "/v1/users/bob", shopKey, nil)
	if out["online"] != false {
		t.Fatalf("kicked user still online: %v", out)
	}
}

func TestSilentClientIsDropped(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.Heartbeat = 100 * time.Millisecond
		c.Limits.HeartbeatLimit = 400 * time.Millisecond
	})
	silent := n.dial("user=quiet", dialOpt{noPong: true})
	alive := n.dial("user=chatty", dialOpt{}) // answers pings
	if code := silent.expectClose(); code != protocol.CloseHeartbeat {
		t.Fatalf("close code %d, want %d", code, protocol.CloseHeartbeat)
	}
	// The client that answers pings is still served.
	n.push("", map[string]any{"to": map[string]any{"users": []string{"chatty"}}, "data": "still here"})
	alive.expectData("still here")
}

func TestClientFrames(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	c.send(`{"type":"ping"}`)
	c.expect("pong")
	c.send(`{"type":"resume","since":0}`)
	if r := c.expect("resumed"); r["complete"] != true {
		t.Fatalf("resumed %v", r)
	}
	c.send(`{"type":"resume","since":5}`)
	if e := c.expect("error"); e["code"] != float64(protocol.ErrCodeInvalidArgument) {
		t.Fatalf("resume beyond latest: %v", e)
	}
	c.send(`{"type":"ack","seq":3}`) // never sent: ignored
	c.send(`{"type":"ping"}`)
	c.expect("pong")
}

func TestClientSend(t *testing.T) {
	n := startNode(t, twoApps)
	sender := n.dial("token="+token(t, "shop", shopSecret, "alice", func(c *auth.Claims) { c.Send = true; c.Rooms = []string{"chat*"} }), dialOpt{})
	mute := n.dial("token="+token(t, "shop", shopSecret, "carol", func(c *auth.Claims) { c.Rooms = []string{"chat*"} }), dialOpt{})
	bob := n.dial("token="+token(t, "shop", shopSecret, "bob", func(c *auth.Claims) { c.Rooms = []string{"chat-1"} }), dialOpt{})
	for _, c := range []*client{sender, mute, bob} {
		c.send(`{"type":"join","room":"chat-1"}`)
		c.expect("joined")
	}
	sender.send(`{"type":"send","to":{"rooms":["chat-1"]},"data":{"text":"hello"}}`)
	for _, c := range []*client{mute, bob} {
		if m := c.expectData(map[string]any{"text": "hello"}); m["from"] != "alice" || m["room"] != "chat-1" {
			t.Fatalf("client message %v", m)
		}
	}
	sender.send(`{"type":"send","to":{"users":["bob"]},"data":"dm"}`)
	bob.expectData("dm")
	// The sender's own connection does not get its room message back.
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "sentinel"})
	sender.expectData("sentinel")

	mute.send(`{"type":"send","to":{"users":["bob"]},"data":"x"}`)
	if e := mute.expect("error"); e["code"] != float64(protocol.ErrCodeForbidden) {
		t.Fatalf("send without permission: %v", e)
	}
}

func TestRoomAPI(t *testing.T) {
	n := startNode(t, twoApps)
	a1 := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	a2 := n.dial("token="+token(t, "shop", shopSecret, "alice", nil), dialOpt{})
	b := n.dial("token="+token(t, "shop", shopSecret, "bob", nil), dialOpt{})
	if status, _ := n.call("POST", "/v1/rooms/lobby/join", shopKey, map[string]any{"users": []string{"alice"}, "conns": []string{b.id}}); status != 204 {
		t.Fatalf("join: %d", status)
	}
	for _, c := range []*client{a1, a2, b} {
		if j := c.expect("joined"); j["room"] != "lobby" {
			t.Fatalf("joined %v", j)
		}
	}
	status, out := n.call("GET", "/v1/rooms/lobby", shopKey, nil)
	if status != 200 || out["conns"] != float64(3) || out["users"] != float64(2) || len(out["members"].([]any)) != 3 {
		t.Fatalf("room: %d %v", status, out)
	}
	if _, out := n.call("GET", "/v1/rooms/lobby", blogKey, nil); out["conns"] != float64(0) {
		t.Fatalf("another app sees the room: %v", out)
	}
	_, out = n.call("GET", "/v1/users/alice", shopKey, nil)
	conns := out["conns"].([]any)
	if out["online"] != true || len(conns) != 2 || fmt.Sprint(conns[0].(map[string]any)["rooms"]) != "[lobby]" {
		t.Fatalf("user: %v", out)
	}
	if status, _ := n.call("POST", "/v1/rooms/lobby/leave", shopKey, map[string]any{"conns": []string{b.id}}); status != 204 {
		t.Fatalf("leave: %d", status)
	}
	b.expect("left")
	n.push(shopKey, map[string]any{"to": map[string]any{"rooms": []string{"lobby"}}, "data": "x"})
	a1.expectData("x")
	a2.expectData("x")
	_, out = n.call("GET", "/v1/stats", shopKey, nil)
	if out["conns"] != float64(3) || out["users"] != float64(2) || out["rooms"] != float64(1) {
		t.Fatalf("stats: %v", out)
	}
	if _, out := n.call("GET", "/v1/stats", blogKey, nil); out["conns"] != float64(0) {
		t.Fatalf("another app's stats: %v", out)
	}
	_, out = n.call("GET", "/v1/nodes", adminKey, nil)
	if nodes := out["nodes"].([]any); len(nodes) != 1 || nodes[0].(map[string]any)["conns"] != float64(3) {
		t.Fatalf("nodes: %v", out)
	}
}

func TestBatchPush(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	status, out := n.call("POST", "/v1/push/batch", "", map[string]any{"items": []any{
		map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": 1},
		map[string]any{"to": map[string]any{}, "data": 2},
		map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": 3},
	}})
	if status != 200 {
		t.Fatalf("batch: %d %v", status, out)
	}
	res := out["results"].([]any)
	if len(res) != 3 || res[0].(map[string]any)["id"] == nil || errCode(res[1].(map[string]any)) != "invalid_target" || res[2].(map[string]any)["id"] == nil {
		t.Fatalf("results: %v", res)
	}
	var got []any
	for len(got) < 2 {
		got = append(got, c.expectPush()...)
	}
	if mustJSON(got) != "[1,3]" {
		t.Fatalf("got %v", got)
	}
	items := make([]any, 1001)
	for i := range items {
		items[i] = map[string]any{"to": map[string]any{"users": []string{"x"}}, "data": i}
	}
	if status, out := n.call("POST", "/v1/push/batch", "", map[string]any{"items": items}); status != 400 {
		t.Fatalf("oversized batch: %d %v", status, out)
	}
}

func TestIdempotentPush(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	body := map[string]any{"id": "order-42", "to": map[string]any{"users": []string{"alice"}}, "data": "once"}
	if id := n.push("", body); id != "order-42" {
		t.Fatalf("id %q", id)
	}
	body["data"] = "ignored"
	if id := n.push("", body); id != "order-42" {
		t.Fatalf("repeat id %q", id)
	}
	c.expectData("once")
	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "sentinel"})
	c.expectData("sentinel")
}

func TestGracefulShutdownTellsClientsToReconnect(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("user=alice", dialOpt{})
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if code := c.expectClose(); code != protocol.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, protocol.CloseGoingAway)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	n := startNode(t, nil)
	if status, _ := n.call("GET", "/healthz", "", nil); status != 200 {
		t.Fatalf("healthz %d", status)
	}
	if status, out := n.call("GET", "/readyz", "", nil); status != 200 || out["status"] != "ready" {
		t.Fatalf("readyz %d %v", status, out)
	}
	n.dial("user=alice", dialOpt{})
	m := n.metrics()
	for _, want := range []string{"herald_hub_connections 1", "herald_gateway_connects_total 1"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

func TestFirstFrameAuth(t *testing.T) {
	n := startNode(t, twoApps)
	c := n.dial("", dialOpt{noAuto: true})
	c.send(`{"type":"auth","token":"` + token(t, "shop", shopSecret, "alice", nil) + `"}`)
	if w := c.expect("welcome"); w["user"] != "alice" {
		t.Fatalf("welcome %v", w)
	}
	c.expect("resumed")
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "ok"})
	c.expectData("ok")
}

func TestDevModeRefusesNothingButNeedsLoopback(t *testing.T) {
	cfg := config.Default()
	cfg.Dev = false
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "no apps") {
		t.Fatalf("no apps and no dev mode: %v", err)
	}
}

func TestNodesAndRoute(t *testing.T) {
	n := startNode(t, nil)
	n.dial("user=alice", dialOpt{})
	status, out := n.call("GET", "/v1/nodes", "", nil)
	nodes, _ := out["nodes"].([]any)
	if status != 200 || len(nodes) != 1 {
		t.Fatalf("nodes: %d %v", status, out)
	}
	self := nodes[0].(map[string]any)
	if self["conns"] != float64(1) || self["version"] != Version || self["id"] == "" {
		t.Fatalf("node %v", self)
	}
	status, out = n.call("GET", "/v1/route", "", nil)
	if status != 200 || out["node"] != self["id"] || !strings.HasSuffix(out["url"].(string), "/v1/ws") {
		t.Fatalf("route: %d %v", status, out)
	}
	// The registry entry this node announced carries its reachable address.
	waitFor(t, func() bool {
		_, out := n.call("GET", "/v1/route", "", nil)
		return out["url"] == n.ws
	})
}

// TestKeepAlivePushesOnTheFastLane: a backend's keep-alive connection
// moves onto the fast lane with its first push and keeps working for every
// other call in between (handed back to net/http and taken again); pushes
// and their errors read as before.
func TestKeepAlivePushesOnTheFastLane(t *testing.T) {
	n := startNode(t, nil)
	alice := n.dial("user=alice", dialOpt{})
	other := n.http
	n.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	for i := range 20 {
		n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": i})
		if i%5 == 0 {
			if status, out := n.call("GET", "/v1/stats", "", nil); status != 200 || out["conns"] == nil {
				t.Fatalf("stats between pushes: %d %v", status, out)
			}
		}
	}
	for i := range 20 {
		alice.expectData(float64(i))
	}
	if status, out := n.call("POST", "/v1/push", "", `{"to":{"users":["alice"]},"data":`); status != 400 || errCode(out) != "invalid_json" {
		t.Fatalf("malformed push on the lane: %d %v", status, out)
	}
	n.http = other // another connection: a GET on the backend's would take it off the lane
	if got := metricValue(t, n.metrics(), "herald_http_fastlane_connections"); got != 1 {
		t.Fatalf("herald_http_fastlane_connections %v, want 1 (the one keep-alive connection)", got)
	}
}

func TestFastPathTakesOnlyPushCalls(t *testing.T) {
	for path, want := range map[string]bool{"/v1/push": true, "/v1/push/batch": true, "/apps/1/events": true,
		"/apps/1/batch_events": true, "/apps//events": false, "/apps/1/channels": false, "/v1/pushx": false, "/v1/stats": false} {
		if fastPath("POST", path) != want || fastPath("GET", path) {
			t.Errorf("fastPath(%q) = %v, want %v", path, !want, want)
		}
	}
}

// TestUpgradeAfterTheFastLane: a WebSocket upgrade on a connection the
// fast lane served before is handed back to net/http and upgraded as
// usual (the gateway reaches the socket under the handed-back connection).
func TestUpgradeAfterTheFastLane(t *testing.T) {
	n := startNode(t, nil)
	c := n.rawRequest("POST /v1/push HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n" +
		`{"to":{"users":["nobody"]},"data":"x"}  `)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if _, err := io.WriteString(c, "GET /v1/ws?user=carol HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil || head[0] != 0x81 {
		t.Fatalf("first frame: %x %v", head, err)
	}
	frame := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(br, frame); err != nil || !strings.Contains(string(frame), `"welcome"`) {
		t.Fatalf("welcome: %q %v", frame, err)
	}
}

// TestRefusedBodyAnswerArrives: a push refused without reading its body (a
// 4 MiB body over the size limit: 413; a wrong key: 401) is answered on the
// fast lane as on net/http: the client reads the answer, not a reset.
func TestRefusedBodyAnswerArrives(t *testing.T) {
	n := startNode(t, nil)
	body := `{"to":{"users":["u"]},"data":"` + strings.Repeat("z", 4<<20) + `"}`
	for _, tc := range []struct {
		key    string
		status int
	}{{"", 413}, {"wrong-key-0123456789", 401}} {
		for i := range 5 {
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			req, _ := http.NewRequest("POST", n.base+"/v1/push", strings.NewReader(body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("key %q, try %d: %v", tc.key, i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("key %q, try %d: %d, want %d", tc.key, i, resp.StatusCode, tc.status)
			}
			c.CloseIdleConnections()
		}
	}
}
