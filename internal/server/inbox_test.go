package server

import (
	"fmt"
	"testing"
)

// TestUserInboxState: GET /v1/users/{user}/inbox follows the user's
// inbox: latest after offline pushes, delivered once a connection got
// them, acked after the client's ack, with the count of stored messages
// still waiting (a recalled one no longer counts); a user with no message
// stands at zero; app keys see their own app's users only.
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
	for i := range 3 {
		n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"ann"}}, "data": i, "offline": true, "id": fmt.Sprint("m", i)})
	}
	if out := inbox(shopKey, "ann"); out["latest_seq"] != 3.0 || out["delivered_seq"] != 0.0 || out["acked_seq"] != 0.0 || out["waiting"] != 3.0 {
		t.Fatalf("after three offline pushes: %v", out)
	}
	if status, out := n.call("DELETE", "/v1/messages/m2", shopKey, nil); status != 204 {
		t.Fatalf("recall: %d %v", status, out)
	}
	if out := inbox(shopKey, "ann"); out["latest_seq"] != 3.0 || out["waiting"] != 2.0 {
		t.Fatalf("after recalling one: %v", out)
	}
	if out := inbox(blogKey, "ann"); out["latest_seq"] != 0.0 {
		t.Fatalf("app blog sees app shop's inbox: %v", out)
	}
	c := n.dial("token="+token(t, "shop", shopSecret, "ann", nil), dialOpt{noAuto: true})
	defer c.conn.Close()
	c.expect("welcome")
	if got := c.expectPush(); len(got) != 2 {
		t.Fatalf("stored messages on connect: %v (the recalled one must not come)", got)
	}
	c.send(`{"type":"ack","seq":2}`)
	waitFor(t, func() bool {
		out := inbox(shopKey, "ann")
		return out["acked_seq"] == 2.0 && out["delivered_seq"] == 2.0 && out["waiting"] == 0.0
	})
	status, out := n.call("GET", "/v1/users/ann/inbox?app=shop", adminKey, nil)
	if status != 200 || out["latest_seq"] != 3.0 {
		t.Fatalf("admin key: %d %v", status, out)
	}
	if status, out := n.call("GET", fmt.Sprintf("/v1/users/%s/inbox", "ann"), "", nil); status != 401 {
		t.Fatalf("no key: %d %v", status, out)
	}
}
