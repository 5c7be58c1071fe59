package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/pusher"
)

// Two apps with Pusher identities: a key of one must never reach the other.
var (
	shopPusher = config.Pusher{AppID: "1001", Key: "shop-pusher-key", Secret: "shop-pusher-secret", ClientEvents: true}
	blogPusher = config.Pusher{AppID: "2002", Key: "blog-pusher-key", Secret: "blog-pusher-secret"}
)

const shopAPIKey = "shop-api-key-0123456789"

func startPusherNode(t *testing.T) *node {
	t.Helper()
	return startNode(t, func(c *config.Config) {
		sp, bp := shopPusher, blogPusher
		c.Apps = []config.App{
			{Name: "shop", APIKeys: []string{shopAPIKey}, TokenSecret: "shop-secret-0123456789", Pusher: &sp},
			{Name: "blog", APIKeys: []string{"blog-api-key-0123456789"}, TokenSecret: "blog-secret-0123456789", Pusher: &bp},
		}
	})
}

// pusherDial connects a raw WebSocket client to /app/{key}?{query}.
func (n *node) pusherDial(key, query string) *client { return n.pusherDialPong(key, query, true) }

// pusherDialPong is pusherDial answering the server's WebSocket pings or
// not.
func (n *node) pusherDialPong(key, query string, pong bool) *client {
	n.t.Helper()
	u := strings.Replace(n.ws, "/v1/ws", "/app/"+key, 1) + "?" + query
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, br, _, err := ws.Dialer{Timeout: wait}.Dial(ctx, u)
	if err != nil {
		n.t.Fatalf("dial %s: %v", u, err)
	}
	c := &client{t: n.t, conn: conn, in: conn, frames: make(chan map[string]any, 1024), closed: make(chan int, 1)}
	if br != nil {
		c.in = io.MultiReader(br, conn)
	}
	go c.read(pong)
	n.t.Cleanup(func() { conn.Close() })
	return c
}

// pusherConnect connects to the shop app and returns the client and its
// socket id.
func (n *node) pusherConnect() (*client, string) {
	n.t.Helper()
	c := n.pusherDial(shopPusher.Key, "protocol=7&client=js&version=8.4.0")
	m := c.event("pusher:connection_established")
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(m["data"].(string)), &d); err != nil {
		n.t.Fatalf("connection_established data: %v", err)
	}
	if !regexp.MustCompile(`^\d+\.\d+$`).MatchString(d.SocketID) || d.ActivityTimeout <= 0 {
		n.t.Fatalf("connection_established: %+v", d)
	}
	c.id = d.SocketID
	return c, d.SocketID
}

// event returns the next frame and fails unless it is the named event.
func (c *client) event(name string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["event"] != name {
		c.t.Fatalf("got %v, want event %q", m, name)
	}
	return m
}

func (c *client) subscribe(channel, auth string) {
	c.t.Helper()
	c.send(mustJSON(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth}}))
}

func channelAuth(p config.Pusher, socketID, channel string) string {
	return p.Key + ":" + pusher.Sign(p.Secret, socketID+":"+channel)
}

// signedURL signs a Pusher API request as the server SDKs do.
func signedURL(base string, p config.Pusher, method, path string, body []byte, at time.Time) string {
	return signedURLWith(base, p, method, path, body, at, url.Values{})
}

func signedURLWith(base string, p config.Pusher, method, path string, body []byte, at time.Time, q url.Values) string {
	q.Set("auth_key", p.Key)
	q.Set("auth_timestamp", strconv.FormatInt(at.Unix(), 10))
	q.Set("auth_version", "1.0")
	if body != nil {
		sum := md5.Sum(body)
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	q.Set("auth_signature", pusher.Sign(p.Secret, pusher.StringToSign(method, path, q)))
	return base + path + "?" + q.Encode()
}

func (n *node) pusherPost(rawURL string, body []byte) (int, string) {
	n.t.Helper()
	resp, err := http.Post(rawURL, "application/json", strings.NewReader(string(body)))
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPusherSubscribeAndReceive(t *testing.T) {
	n := startPusherNode(t)
	c, sid := n.pusherConnect()
	c.send(`{"event":"pusher:ping","data":{}}`)
	c.event("pusher:pong")

	c.subscribe("news", "")
	if m := c.event("pusher_internal:subscription_succeeded"); m["channel"] != "news" {
		t.Fatalf("succeeded for %v", m)
	}
	// A forged and another socket's signature are refused; nothing joined.
	c.subscribe("private-orders", shopPusher.Key+":"+strings.Repeat("0", 64))
	m := c.event("pusher:subscription_error")
	if d := m["data"].(map[string]any); d["type"] != "AuthError" || d["status"] != float64(401) {
		t.Fatalf("subscription_error %v", m)
	}
	c.subscribe("private-orders", channelAuth(shopPusher, "1.2", "private-orders"))
	c.event("pusher:subscription_error")
	c.subscribe("private-orders", channelAuth(blogPusher, sid, "private-orders")) // the other app's key
	c.event("pusher:subscription_error")

	// A Herald push to both rooms reaches only the subscribed one, as the
	// push's event (default "message").
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"rooms": []string{"private-orders"}}, "data": map[string]any{"n": 0}})
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"rooms": []string{"news"}}, "data": map[string]any{"n": 1}, "event": "greeting"})
	m = c.event("greeting")
	if m["channel"] != "news" || m["data"] != `{"n":1}` {
		t.Fatalf("got %v", m)
	}
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"rooms": []string{"news"}}, "data": "plain"})
	if m = c.event("message"); m["data"] != "plain" {
		t.Fatalf("got %v", m)
	}

	c.subscribe("private-orders", channelAuth(shopPusher, sid, "private-orders"))
	c.event("pusher_internal:subscription_succeeded")
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"rooms": []string{"private-orders"}}, "data": 2, "event": "paid"})
	if m = c.event("paid"); m["channel"] != "private-orders" || m["data"] != "2" {
		t.Fatalf("got %v", m)
	}
}

func TestPusherRefusedConnections(t *testing.T) {
	n := startPusherNode(t)
	for _, tc := range []struct {
		key, query string
		code       int
	}{
		{"no-such-key", "protocol=7", 4001},
		{shopPusher.Key, "protocol=8", 4007},
		{shopPusher.Key, "protocol=4", 4007},
		{shopPusher.Key, "client=js", 4008},
	} {
		c := n.pusherDial(tc.key, tc.query)
		m := c.event("pusher:error")
		if d := m["data"].(map[string]any); d["code"] != float64(tc.code) {
			t.Errorf("%s?%s: error %v, want %d", tc.key, tc.query, m, tc.code)
		}
		if got := c.expectClose(); got != tc.code {
			t.Errorf("%s?%s: close %d, want %d", tc.key, tc.query, got, tc.code)
		}
	}
	for _, v := range []string{"5", "6", "7"} {
		c := n.pusherDial(shopPusher.Key, "protocol="+v)
		c.event("pusher:connection_established")
	}
}

func TestPusherClientEvents(t *testing.T) {
	n := startPusherNode(t)
	a, aid := n.pusherConnect()
	b, bid := n.pusherConnect()
	a.subscribe("private-chat", channelAuth(shopPusher, aid, "private-chat"))
	a.event("pusher_internal:subscription_succeeded")
	b.subscribe("private-chat", channelAuth(shopPusher, bid, "private-chat"))
	b.event("pusher_internal:subscription_succeeded")
	a.subscribe("lobby", "")
	a.event("pusher_internal:subscription_succeeded")

	a.send(`{"event":"client-typing","channel":"private-chat","data":{"who":"a"}}`)
	if m := b.event("client-typing"); m["channel"] != "private-chat" || m["data"] != `{"who":"a"}` {
		t.Fatalf("got %v", m)
	}
	// Refused: a public channel; nothing delivered, the connection stays.
	a.send(`{"event":"client-typing","channel":"lobby","data":{}}`)
	if m := a.event("pusher:error"); m["data"].(map[string]any)["code"] != float64(4009) {
		t.Fatalf("got %v", m)
	}
	// Never echoed to the sender: its next frame is the push that follows.
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"rooms": []string{"private-chat"}}, "data": "after"})
	if m := a.event("message"); m["data"] != "after" {
		t.Fatalf("got %v", m)
	}
	if m := b.event("message"); m["data"] != "after" {
		t.Fatalf("got %v", m)
	}
}

func TestPusherHTTPAPI(t *testing.T) {
	n := startPusherNode(t)
	a, aid := n.pusherConnect()
	a.subscribe("news", "")
	a.event("pusher_internal:subscription_succeeded")
	b, _ := n.pusherConnect()
	b.subscribe("news", "")
	b.event("pusher_internal:subscription_succeeded")

	post := func(p config.Pusher, path string, body string, at time.Time) (int, string) {
		return n.pusherPost(signedURL(n.base, p, "POST", path, []byte(body), at), []byte(body))
	}
	now := time.Now()
	// Refused, nothing published: the other app's key, a stale timestamp,
	// a wrong body MD5, a bad signature.
	ev := `{"name":"bad","channels":["news"],"data":"x"}`
	if s, body := post(blogPusher, "/apps/1001/events", ev, now); s != 401 {
		t.Errorf("other app's key: %d %s", s, body)
	}
	if s, body := post(shopPusher, "/apps/1001/events", ev, now.Add(-11*time.Minute)); s != 401 {
		t.Errorf("stale timestamp: %d %s", s, body)
	}
	u := signedURL(n.base, shopPusher, "POST", "/apps/1001/events", []byte(ev), now)
	if s, body := n.pusherPost(u, []byte(`{"name":"bad","channels":["news"],"data":"y"}`)); s != 401 {
		t.Errorf("wrong body md5: %d %s", s, body)
	}
	if s, body := n.pusherPost(strings.Replace(u, "auth_signature=", "auth_signature=0", 1), []byte(ev)); s != 401 {
		t.Errorf("bad signature: %d %s", s, body)
	}

	// One event to two channels, leaving out the socket that caused it.
	s, body := post(shopPusher, "/apps/1001/events", `{"name":"update","channels":["news","other"],"data":"{\"v\":1}","socket_id":"`+aid+`"}`, now)
	if s != 200 || strings.TrimSpace(body) != "{}" {
		t.Fatalf("events: %d %s", s, body)
	}
	if m := b.event("update"); m["channel"] != "news" || m["data"] != `{"v":1}` {
		t.Fatalf("got %v", m)
	}
	s, body = post(shopPusher, "/apps/1001/batch_events", `{"batch":[{"channel":"news","name":"one","data":"1"},{"channel":"news","name":"two","data":"two"}]}`, now)
	if s != 200 {
		t.Fatalf("batch_events: %d %s", s, body)
	}
	// The excluded socket's first frame is the batch's; b gets both too.
	for _, c := range []*client{a, b} {
		if m := c.event("one"); m["data"] != "1" {
			t.Fatalf("got %v", m)
		}
		if m := c.event("two"); m["data"] != "two" {
			t.Fatalf("got %v", m)
		}
	}
	// Pusher's limits: 11 events in a batch, a bad socket id.
	var many []string
	for range 11 {
		many = append(many, `{"channel":"news","name":"x","data":"x"}`)
	}
	if s, _ := post(shopPusher, "/apps/1001/batch_events", `{"batch":[`+strings.Join(many, ",")+`]}`, now); s != 400 {
		t.Errorf("11 events: %d", s)
	}
	if s, _ := post(shopPusher, "/apps/1001/events", `{"name":"x","channel":"news","data":"x","socket_id":"abc"}`, now); s != 400 {
		t.Errorf("bad socket id: %d", s)
	}

	// A Pusher API event reaches a Herald client of the room with its
	// event name.
	h := n.dial("app=shop&user=u1", dialOpt{})
	h.send(`{"type":"join","room":"news"}`)
	h.expect("joined")
	if s, body := post(shopPusher, "/apps/1001/events", `{"name":"to-herald","channel":"news","data":"{\"k\":true}"}`, now); s != 200 {
		t.Fatalf("events: %d %s", s, body)
	}
	if m := h.expectData(map[string]any{"k": true}); m["event"] != "to-herald" {
		t.Fatalf("got %v", m)
	}
}

func TestPusherChannelQuery(t *testing.T) {
	n := startPusherNode(t)
	c, _ := n.pusherConnect()
	c.subscribe("news", "")
	c.event("pusher_internal:subscription_succeeded")
	get := func(p config.Pusher, path string, q url.Values) (int, map[string]any) {
		resp, err := http.Get(signedURLWith(n.base, p, "GET", path, nil, time.Now(), q))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	s, out := get(shopPusher, "/apps/1001/channels/news", url.Values{"info": {"subscription_count"}})
	if s != 200 || out["occupied"] != true || out["subscription_count"] != float64(1) {
		t.Fatalf("news: %d %v", s, out)
	}
	if s, out = get(shopPusher, "/apps/1001/channels/empty", url.Values{}); s != 200 || out["occupied"] != false || out["subscription_count"] != nil {
		t.Fatalf("empty: %d %v", s, out)
	}
	// The blog app's key and id see nothing of the shop's channels.
	if s, out = get(blogPusher, "/apps/2002/channels/news", url.Values{}); s != 200 || out["occupied"] != false {
		t.Fatalf("blog: %d %v", s, out)
	}
	if s, _ = get(blogPusher, "/apps/1001/channels/news", url.Values{}); s != 401 {
		t.Fatalf("blog's key on shop: %d", s)
	}
	if s, _ = get(shopPusher, "/apps/1001/channels/news", url.Values{"info": {"user_count"}}); s != 400 {
		t.Fatalf("user_count of a public channel: %d", s)
	}
	// An event's info: the channels' counts after publishing.
	ev := `{"name":"x","channels":["news","empty"],"data":"1","info":"subscription_count"}`
	s, body := n.pusherPost(signedURL(n.base, shopPusher, "POST", "/apps/1001/events", []byte(ev), time.Now()), []byte(ev))
	if want := `{"channels":{"empty":{"subscription_count":0},"news":{"subscription_count":1}}}`; s != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("events with info: %d %s, want %s", s, body, want)
	}
	ev = `{"batch":[{"name":"x","channel":"news","data":"1","info":"subscription_count"},{"name":"y","channel":"news","data":"2"}]}`
	s, body = n.pusherPost(signedURL(n.base, shopPusher, "POST", "/apps/1001/batch_events", []byte(ev), time.Now()), []byte(ev))
	if want := `{"batch":[{"subscription_count":1},{}]}`; s != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("batch with info: %d %s, want %s", s, body, want)
	}
	ev = `{"name":"x","channel":"news","data":"1","info":"user_count"}`
	if s, _ := n.pusherPost(signedURL(n.base, shopPusher, "POST", "/apps/1001/events", []byte(ev), time.Now()), []byte(ev)); s != 400 {
		t.Fatalf("user_count info: %d", s)
	}
}

// Herald's own closes carry Pusher's codes on this endpoint: a silent
// client 4201 (pusher-js reconnects at once), a kicked one 4009 (it gives
// up); never Herald's 4005 or 4002.
func TestPusherHeraldCloses(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		sp := shopPusher
		c.Apps = []config.App{{Name: "shop", APIKeys: []string{shopAPIKey}, TokenSecret: "shop-secret-0123456789", Pusher: &sp}}
		c.Limits.Heartbeat, c.Limits.HeartbeatLimit = 200*time.Millisecond, 600*time.Millisecond
	})
	silent := n.pusherDialPong(shopPusher.Key, "protocol=7", false)
	m := silent.event("pusher:connection_established")
	if !strings.Contains(m["data"].(string), `"activity_timeout":1`) {
		t.Fatalf("activity_timeout: %v", m)
	}
	if code := silent.expectClose(); code != 4201 {
		t.Fatalf("heartbeat close %d, want 4201", code)
	}
	kicked, sid := n.pusherConnect()
	// Its user is pusher-<socket_id> (conn-id routing does not know socket ids).
	if status, out := n.call("DELETE", "/v1/users/pusher-"+sid+"/conns", shopAPIKey, nil); status != 204 {
		t.Fatalf("kick: %d %v", status, out)
	}
	if code := kicked.expectClose(); code != 4009 {
		t.Fatalf("kick close %d, want 4009", code)
	}
}

// A subscribe that arrives in the same packet as the upgrade request is
// read, not lost.
func TestPusherFrameWithTheUpgrade(t *testing.T) {
	n := startPusherNode(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var out bytes.Buffer
	out.WriteString("GET /app/" + shopPusher.Key + "?protocol=7 HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err := ws.WriteFrame(&out, ws.MaskFrame(ws.NewTextFrame([]byte(`{"event":"pusher:subscribe","data":{"channel":"early"}}`)))); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c := &client{t: t, conn: conn, in: br, frames: make(chan map[string]any, 16), closed: make(chan int, 1)}
	go c.read(true)
	c.event("pusher:connection_established")
	if m := c.event("pusher_internal:subscription_succeeded"); m["channel"] != "early" {
		t.Fatalf("got %v", m)
	}
}
