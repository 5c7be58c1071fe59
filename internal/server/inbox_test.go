package server

import (
	"fmt"
	"testing"
)

// TestUserInboxState: GET /v1/users/{user}/inbox follows the user's
// inbox: latest after offline pushes, delivered once a connection got
// them, acked after the client's ack; a user with no message stands at
// zero; app keys see their own app's users only.
func TestUserInboxState(t *testing.T) {
	n := startNode(t, twoApps)
	inbox := func(key, user string) map[string]any {
		t.Helper()
		status, out := n.call("GET", "/v1/users/"+user+"/inbox", key, nil)
		if status != 200 {
			t.Fatalf("inbox of %s: %d %v", user, status, out)
		}
		return out
	}
	if out := inbox(shopKey, "nobody"); out["latest_seq"] != 0.0 || out["acked_seq"] != 0.0 || out["user"] != "nobody" {
		t.Fatalf("empty inbox: %v", out)
	}
	for i := range 2 {
		n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"ann"}}, "data": i, "offline": true})
	}
	if out := inbox(shopKey, "ann"); out["latest_seq"] != 2.0 || out["delivered_seq"] != 0.0 || out["acked_seq"] != 0.0 {
		t.Fatalf("after two offline pushes: %v", out)
	}
	if out := inbox(blogKey, "ann"); out["latest_seq"] != 0.0 {
		t.Fatalf("app blog sees app shop's inbox: %v", out)
	}
	c := n.dial("token="+token(t, "shop", shopSecret, "ann", nil), dialOpt{noAuto: true})
	defer c.conn.Close()
	c.expect("welcome")
	c.expectPush()
	c.send(`{"type":"ack","seq":2}`)
	waitFor(t, func() bool {
		out := inbox(shopKey, "ann")
		return out["acked_seq"] == 2.0 && out["delivered_seq"] == 2.0
	})
	status, out := n.call("GET", "/v1/users/ann/inbox?app=shop", adminKey, nil)
	if status != 200 || out["latest_seq"] != 2.0 {
		t.Fatalf("admin key: %d %v", status, out)
	}
	if status, out := n.call("GET", fmt.Sprintf("/v1/users/%s/inbox", "ann"), "", nil); status != 401 {
		t.Fatalf("no key: %d %v", status, out)
	}
}
