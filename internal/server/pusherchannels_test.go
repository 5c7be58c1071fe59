package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/pusher"
)

// startPusherPresenceNode is startPusherNode with departures reported
// after 100 ms.
func startPusherPresenceNode(t *testing.T) *node {
	t.Helper()
	return startNode(t, func(c *config.Config) {
		sp := shopPusher
		c.Limits.OfflineDelay = 100 * time.Millisecond
		c.Apps = []config.App{{Name: "shop", APIKeys: []string{shopAPIKey}, TokenSecret: "shop-secret-0123456789", Pusher: &sp}}
	})
}

// joinPresence subscribes c to a presence channel as the member of
// channelData and returns the subscription_succeeded data.
func joinPresence(c *client, channel, channelData string) map[string]any {
	c.t.Helper()
	auth := shopPusher.Key + ":" + pusher.Sign(shopPusher.Secret, c.id+":"+channel+":"+channelData)
	c.send(mustJSON(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": channelData}}))
	return eventData(c, "pusher_internal:subscription_succeeded")
}

// eventData returns the data (a JSON string) of c's next frame, which
// must be the named event.
func eventData(c *client, name string) map[string]any {
	c.t.Helper()
	m := c.event(name)
	var d map[string]any
	if err := json.Unmarshal([]byte(m["data"].(string)), &d); err != nil {
		c.t.Fatalf("%s data %v: %v", name, m["data"], err)
	}
	return d
}

func TestPusherPresenceMembers(t *testing.T) {
	n := startPusherPresenceNode(t)
	a, _ := n.pusherConnect()
	d := joinPresence(a, "presence-x", `{"user_id":"1","user_info":{"name":"One"}}`)
	if got := mustJSON(d); got != `{"presence":{"count":1,"hash":{"1":{"name":"One"}},"ids":["1"]}}` {
		t.Fatalf("first member: %s", got)
	}
	// The tracker stores a member a moment after its subscription_succeeded:
	// the second member's listing is asserted once the first is stored.
	waitFor(t, func() bool {
		path := "/apps/" + shopPusher.AppID + "/channels/presence-x/users"
		resp, err := http.Get(signedURL(n.base, shopPusher, "GET", path, nil, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.TrimSpace(string(b)) == `{"users":[{"id":"1"}]}`
	})
	b, _ := n.pusherConnect()
	if got := mustJSON(joinPresence(b, "presence-x", `{"user_id":2}`)); got != `{"presence":{"count":2,"hash":{"1":{"name":"One"},"2":null},"ids":["1","2"]}}` {
		t.Fatalf("second member: %s", got)
	}
	if got := mustJSON(eventData(a, "pusher_internal:member_added")); got != `{"user_id":"2","user_info":null}` {
		t.Fatalf("member_added: %s", got)
	}
	// User 2's second connection announces nothing: a's next event is
	// about user 3, who comes after it.
	b2, _ := n.pusherConnect()
	joinPresence(b2, "presence-x", `{"user_id":"2"}`)
	c, _ := n.pusherConnect()
	joinPresence(c, "presence-x", `{"user_id":"3"}`)
	if got := eventData(a, "pusher_internal:member_added"); got["user_id"] != "3" {
		t.Fatalf("member_added: %v", got)
	}
	// A client event carries the member's user_id.
	b2.send(`{"event":"client-hi","channel":"presence-x","data":{"x":1}}`)
	if m := a.event("client-hi"); m["user_id"] != "2" || m["data"] != `{"x":1}` {
		t.Fatalf("client event %v", m)
	}
	// User 2 leaves only with its last connection.
	b.conn.Close()
	c.conn.Close()
	if got := eventData(a, "pusher_internal:member_removed"); got["user_id"] != "3" {
		t.Fatalf("member_removed: %v", got)
	}
	b2.conn.Close()
	if got := eventData(a, "pusher_internal:member_removed"); got["user_id"] != "2" {
		t.Fatalf("member_removed: %v", got)
	}
	// A forged channel_data (signed for another member) joins nothing.
	e, sid := n.pusherConnect()
	auth := shopPusher.Key + ":" + pusher.Sign(shopPusher.Secret, sid+":presence-x:"+`{"user_id":"4"}`)
	e.send(mustJSON(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-x", "auth": auth, "channel_data": `{"user_id":"1"}`}}))
	e.event("pusher:subscription_error")
	e.send(mustJSON(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-x", "auth": auth, "channel_data": `{"user_id":"4"}`}}))
	e.event("pusher_internal:subscription_succeeded")
	if got := eventData(a, "pusher_internal:member_added"); got["user_id"] != "4" {
		t.Fatalf("after the forged one: %v", got)
	}
}

func TestPusherSigninAndUserChannel(t *testing.T) {
	n := startPusherPresenceNode(t)
	n.push(shopAPIKey, map[string]any{"to": map[string]any{"users": []string{"dora"}}, "data": map[string]any{"n": 1}, "offline": true, "event": "note"})
	d, sid := n.pusherConnect()
	ud := `{"id":"dora"}`
	d.send(mustJSON(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": shopPusher.Key + ":" + pusher.Sign(shopPusher.Secret, sid+"::user::"+ud), "user_data": ud}}))
	if got := eventData(d, "pusher:signin_success"); got["user_data"] != ud {
		t.Fatalf("signin_success %v", got)
	}
	if m := d.event("note"); m["channel"] != "#server-to-user-dora" || m["data"] != `{"n":1}` {
		t.Fatalf("stored push: %v", m)
	}
	d.subscribe("#server-to-user-dora", "")
	d.event("pusher_internal:subscription_succeeded")
	other, _ := n.pusherConnect()
	other.subscribe("#server-to-user-dora", "")
	other.event("pusher:subscription_error")

	body := []byte(`{"name":"hi","channel":"#server-to-user-dora","data":"{}"}`)
	if s, b := n.pusherPost(signedURL(n.base, shopPusher, "POST", "/apps/1001/events", body, time.Now()), body); s != 200 {
		t.Fatalf("sendToUser: %d %s", s, b)
	}
	d.event("hi")
	if s, b := n.pusherPost(signedURL(n.base, shopPusher, "POST", "/apps/1001/users/dora/terminate_connections", []byte("{}"), time.Now()), []byte("{}")); s != 200 {
		t.Fatalf("terminate: %d %s", s, b)
	}
	if code := d.expectClose(); code != 4009 {
		t.Fatalf("terminated with %d", code)
	}
	// A bad signature: pusher:error 4009 and close 4009.
	ud = `{"id":"eve"}`
	other.send(mustJSON(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": shopPusher.Key + ":" + pusher.Sign("wrong", sid+"::user::"+ud), "user_data": ud}}))
	other.event("pusher:error")
	if code := other.expectClose(); code != 4009 {
		t.Fatalf("bad signin closed with %d", code)
	}
}
