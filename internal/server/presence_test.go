package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// frameJSON is a frame's members and change lists, compared as JSON.
func frameJSON(m map[string]any, keys ...string) string {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func wantFrame(t *testing.T, who string, m map[string]any, typ, want string, keys ...string) {
	t.Helper()
	if m["type"] != typ || m["room"] != "chat-1" {
		t.Fatalf("%s: got %v, want a %s frame of chat-1", who, m, typ)
	}
	if got := frameJSON(m, keys...); got != want {
		t.Fatalf("%s: %s frame %s, want %s", who, typ, got, want)
	}
}

// presenceUsers polls GET /v1/rooms/chat-1/presence until it lists want.
func (n *node) presenceUsers(want string) {
	n.t.Helper()
	var got string
	deadline := time.Now().Add(2 * wait)
	for {
		status, out := n.call("GET", "/v1/rooms/chat-1/presence", "", nil)
		if status != 200 || out["room"] != "chat-1" {
			n.t.Fatalf("GET presence: %d %v", status, out)
		}
		if got = mustJSON(out["users"]); got == want {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("presence users %s, want %s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPresenceFrames: members of a presence room, over WebSocket and SSE,
// get the members on joined (the joiner included, capped with "more") and
// a presence frame for each user's arrival and departure — none for a
// second tab, none about themselves; the query lists the same users.
func TestPresenceFrames(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.PresenceRooms = []string{"chat-*"}
		c.Limits.OfflineDelay = 100 * time.Millisecond
		c.Limits.PresenceMembers = 2
	})
	a1 := n.dial("app=demo&user=alice", dialOpt{})
	a1.send(`{"type":"join","room":"chat-1"}`)
	wantFrame(t, "alice", a1.next(), "joined", `{"members":["alice"]}`, "members", "more")
	n.presenceUsers(`["alice"]`)

	b := n.openSSE("user=bob&rooms=chat-1", nil)
	b.expect("welcome")
	b.expect("resumed")
	wantFrame(t, "bob", b.next().data, "joined", `{"members":["alice","bob"]}`, "members", "more")
	wantFrame(t, "alice", a1.next(), "presence", `{"join":["bob"]}`, "join", "leave")
	n.presenceUsers(`["alice","bob"]`)

	// A second tab of alice: members listed, and nobody is told.
	a2 := n.dial("app=demo&user=alice", dialOpt{})
	a2.send(`{"type":"join","room":"chat-1"}`)
	wantFrame(t, "alice 2", a2.next(), "joined", `{"members":["alice","bob"]}`, "members", "more")

	// carol: over the cap of 2, herself listed; the next frame everyone
	// gets is her arrival (so alice's second tab made none).
	c := n.dial("app=demo&user=carol", dialOpt{})
	c.send(`{"type":"join","room":"chat-1"}`)
	wantFrame(t, "carol", c.next(), "joined", `{"members":["alice","carol"],"more":true}`, "members", "more")
	wantFrame(t, "bob", b.next().data, "presence", `{"join":["carol"]}`, "join", "leave")
	wantFrame(t, "alice", a1.next(), "presence", `{"join":["carol"]}`, "join", "leave")
	wantFrame(t, "alice 2", a2.next(), "presence", `{"join":["carol"]}`, "join", "leave")
	n.presenceUsers(`["alice","bob","carol"]`)

	// alice's first tab leaves the room, the second disconnects: one leave.
	a1.send(`{"type":"leave","room":"chat-1"}`)
	a1.expect("left")
	a2.conn.Close()
	wantFrame(t, "bob", b.next().data, "presence", `{"leave":["alice"]}`, "join", "leave")
	wantFrame(t, "carol", c.next(), "presence", `{"leave":["alice"]}`, "join", "leave")
	n.presenceUsers(`["bob","carol"]`)
	// bob leaves by the server API: carol is told, bob is not.
	if status, _ := n.call("POST", "/v1/rooms/chat-1/leave", "", map[string]any{"users": []string{"bob"}}); status != 204 {
		t.Fatalf("leave: %d", status)
	}
	b.expect("left")
	wantFrame(t, "carol", c.next(), "presence", `{"leave":["bob"]}`, "join", "leave")
	// the server API joins bob back: he gets the members, carol his arrival.
	if status, _ := n.call("POST", "/v1/rooms/chat-1/join", "", map[string]any{"users": []string{"bob"}}); status != 204 {
		t.Fatalf("join: %d", status)
	}
	wantFrame(t, "bob", b.next().data, "joined", `{"members":["bob","carol"]}`, "members", "more")
	wantFrame(t, "carol", c.next(), "presence", `{"join":["bob"]}`, "join", "leave")
}

// TestPresenceQuery: the query pages, and refuses a room that is not a
// presence room.
func TestPresenceQuery(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.PresenceRooms = []string{"chat-*"} })
	if status, out := n.call("GET", "/v1/rooms/lobby/presence", "", nil); status != 400 || errCode(out) != "invalid_argument" {
		t.Fatalf("not a presence room: %d %v", status, out)
	}
	if status, out := n.call("GET", "/v1/rooms/chat-2/presence", "", nil); status != 200 || mustJSON(out) != `{"room":"chat-2","users":[]}` {
		t.Fatalf("empty room: %d %v", status, out)
	}
	const users = 105 // over one page of 100
	for i := range users {
		c := n.dial("app=demo&user=u"+string(rune('a'+i/26))+string(rune('a'+i%26)), dialOpt{})
		c.send(`{"type":"join","room":"chat-2"}`)
		c.expect("joined")
	}
	var all []string
	waitFor(t, func() bool {
		all = nil
		cursor := ""
		for {
			_, out := n.call("GET", "/v1/rooms/chat-2/presence?cursor="+cursor, "", nil)
			for _, u := range out["users"].([]any) {
				all = append(all, u.(string))
			}
			next, _ := out["next"].(string)
			if next == "" {
				return len(all) == users
			}
			if len(out["users"].([]any)) != 100 {
				t.Fatalf("a page that is not the last has %d users", len(out["users"].([]any)))
			}
			cursor = next
		}
	})
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("pages not sorted or repeating at %d: %v", i, all)
		}
	}
}
