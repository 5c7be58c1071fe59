package server

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

// offline pushes data to users' inboxes and returns the message id.
func (n *node) offline(key string, data any, users ...string) string {
	n.t.Helper()
	return n.push(key, map[string]any{"to": map[string]any{"users": users}, "data": data, "offline": true})
}

// expectStored reads push frames until it has want messages and checks
// their data and seq, in order.
func (c *client) expectStored(firstSeq uint64, data ...any) {
	c.t.Helper()
	var got []map[string]any
	for len(got) < len(data) {
		for _, m := range c.expect("push")["msgs"].([]any) {
			got = append(got, m.(map[string]any))
		}
	}
	if len(got) != len(data) {
		c.t.Fatalf("got %d messages, want %d: %v", len(got), len(data), got)
	}
	for i, m := range got {
		if mustJSON(m["data"]) != mustJSON(data[i]) || m["seq"] != float64(firstSeq+uint64(i)) {
			c.t.Fatalf("message %d is %v, want data %v seq %d", i, m, data[i], firstSeq+uint64(i))
		}
	}
}

func (c *client) expectResumed(since, to uint64, complete bool) {
	c.t.Helper()
	r := c.expect("resumed")
	if r["since"] != float64(since) || r["to"] != float64(to) || r["complete"] != complete {
		c.t.Fatalf("resumed %v, want since %d to %d complete %v", r, since, to, complete)
	}
}

// dialFresh connects and reads only the welcome (the test reads the replay).
func (n *node) dialFresh(query string) (*client, map[string]any) {
	n.t.Helper()
	c := n.dial(query, dialOpt{noAuto: true})
	w := c.expect("welcome")
	c.id = w["conn"].(string)
	return c, w
}

func TestOfflineMessagesArriveAtNextConnectInOrder(t *testing.T) {
	n := startNode(t, nil)
	for i := 1; i <= 5; i++ {
		n.offline("", i, "bob")
	}
	c, w := n.dialFresh("user=bob")
	if w["seq"] != float64(5) {
		t.Fatalf("welcome %v, want seq 5", w)
	}
	c.expectStored(1, 1, 2, 3, 4, 5)
	c.expectResumed(0, 5, true)
	// Live stored messages follow with the next seq.
	n.offline("", 6, "bob")
	c.expectStored(6, 6)
}

func TestRecoveryAfterDisconnectHasNoGapAndNoDuplicate(t *testing.T) {
	n := startNode(t, nil)
	c, _ := n.dialFresh("user=alice")
	c.expectResumed(0, 0, true)
	for i := 1; i <= 3; i++ {
		n.offline("", i, "alice")
	}
	c.expectStored(1, 1, 2, 3)
	c.conn.Close() // killed after message 3
	for i := 4; i <= 6; i++ {
		n.offline("", i, "alice")
	}
	c2, w := n.dialFresh("user=alice&since=3")
	if w["seq"] != float64(6) {
		t.Fatalf("welcome %v", w)
	}
	c2.expectStored(4, 4, 5, 6)
	c2.expectResumed(3, 6, true)
	n.offline("", 7, "alice")
	c2.expectStored(7, 7) // nothing twice: 7 comes right after 6

	// A resume frame replays on demand, then live messages continue.
	c2.send(`{"type":"resume","since":5}`)
	c2.expectStored(6, 6, 7)
	c2.expectResumed(5, 7, true)
}

func TestAckedMessagesAreNotRedelivered(t *testing.T) {
	n := startNode(t, nil)
	phone, _ := n.dialFresh("user=carol&device=phone")
	phone.expectResumed(0, 0, true)
	for i := 1; i <= 3; i++ {
		n.offline("", i, "carol")
	}
	phone.expectStored(1, 1, 2, 3)
	phone.send(`{"type":"ack","seq":2}`)
	phone.send(`{"type":"ack","seq":99}`) // never sent: ignored
	// Acks are stored asynchronously: wait until a new connection sees it.
	waitFor(t, func() bool { return n.ackedOf("carol") == 2 })
	// Another device of the same user gets only what is not acked.
	laptop, _ := n.dialFresh("user=carol&device=laptop")
	laptop.expectStored(3, 3)
	laptop.expectResumed(2, 3, true)
	// The ack beyond the latest seq is counted as ignored (asynchronously).
	waitFor(t, func() bool { return strings.Contains(n.metrics(), "herald_inbox_acks_ignored_total 1") })
}

// ackedOf reads a user's acked position from a fresh connection's replay.
func (n *node) ackedOf(user string) float64 {
	n.t.Helper()
	c, _ := n.dialFresh("user=" + user + "&device=ackprobe")
	defer c.conn.Close()
	for {
		m := c.next()
		if m["type"] == "resumed" {
			return m["since"].(float64)
		}
	}
}

func TestExpiredMessagesAreNeverDelivered(t *testing.T) {
	n := startNode(t, nil)
	id := n.push("", map[string]any{"to": map[string]any{"users": []string{"dave"}}, "data": "short", "offline": true, "ttl": 1})
	n.offline("", "long", "dave")
	waitFor(t, func() bool {
		_, st := n.call("GET", "/v1/messages/"+id, "", nil)
		return st["expired"] == float64(1)
	})
	c, w := n.dialFresh("user=dave")
	if w["seq"] != float64(2) {
		t.Fatalf("welcome %v", w)
	}
	c.expectStored(2, "long")
	c.expectResumed(0, 2, false) // message 1 is gone, and the client is told
}

func TestRecall(t *testing.T) {
	n := startNode(t, twoApps)
	online := n.dial("token="+token(t, "shop", shopSecret, "erin", nil), dialOpt{})
	id := n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"erin", "frank"}}, "data": "oops", "offline": true})
	online.expectData("oops")
	if status, out := n.call("GET", "/v1/messages/"+id, blogKey, nil); status != 404 {
		t.Fatalf("another app's message status: %d %v", status, out)
	}
	if status, _ := n.call("DELETE", "/v1/messages/"+id, blogKey, nil); status != 404 {
		t.Fatal("another app recalled the message")
	}
	if status, out := n.call("DELETE", "/v1/messages/"+id, shopKey, nil); status != 204 {
		t.Fatalf("recall: %d %v", status, out)
	}
	if r := online.expect("recall"); r["id"] != id {
		t.Fatalf("recall frame %v", r)
	}
	// frank was offline: his stored copy is gone.
	n.push(shopKey, map[string]any{"to": map[string]any{"users": []string{"frank"}}, "data": "after", "offline": true})
	frank, _ := n.dialFresh("token=" + token(t, "shop", shopSecret, "frank", nil))
	frank.expectStored(2, "after")
	frank.expectResumed(0, 2, true) // a recalled message is not a loss
	_, st := n.call("GET", "/v1/messages/"+id, shopKey, nil)
	if st["recalled"] != true || st["targeted"] != float64(2) {
		t.Fatalf("status %v", st)
	}
	if status, _ := n.call("DELETE", "/v1/messages/m_unknown", shopKey, nil); status != 404 {
		t.Fatal("recall of an unknown id")
	}
}

func TestMessageStatus(t *testing.T) {
	n := startNode(t, nil)
	c, _ := n.dialFresh("user=gina")
	c.expectResumed(0, 0, true)
	id := n.push("", map[string]any{"to": map[string]any{"users": []string{"gina", "hank"}}, "data": 1, "offline": true, "ttl": 600})
	c.expectStored(1, 1)
	c.send(`{"type":"ack","seq":1}`)
	waitFor(t, func() bool {
		_, st := n.call("GET", "/v1/messages/"+id, "", nil)
		return st["delivered"] == float64(1) && st["acked"] == float64(1)
	})
	_, st := n.call("GET", "/v1/messages/"+id, "", nil)
	users := st["users"].([]any)
	if st["targeted"] != float64(2) || st["ttl"] != float64(600) || len(users) != 2 || st["expired"] != float64(0) {
		t.Fatalf("status %v", st)
	}
	for _, u := range users {
		u := u.(map[string]any)
		want := u["user"] == "gina"
		if u["delivered"] != want || u["acked"] != want || u["seq"] != float64(1) {
			t.Fatalf("user status %v", u)
		}
	}
}

func TestInboxCapAndTooOldSignals(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Limits.InboxCap = 3 })
	for i := 1; i <= 5; i++ {
		n.offline("", i, "ivy")
	}
	c, _ := n.dialFresh("user=ivy&since=1")
	c.expectStored(3, 3, 4, 5)
	c.expectResumed(1, 5, false) // 2 was dropped by the cap
	c.send(`{"type":"resume","since":9}`)
	if e := c.expect("error"); e["code"] != float64(protocol.ErrCodeInvalidArgument) {
		t.Fatalf("since beyond latest: %v", e)
	}
	c.send(`{"type":"ping"}`)
	c.expect("pong") // the connection stays
}

func TestOfflinePushToUserAndRoomIsOneCopy(t *testing.T) {
	n := startNode(t, nil)
	c, _ := n.dialFresh("user=jo")
	c.expectResumed(0, 0, true)
	c.send(`{"type":"join","room":"r"}`)
	c.expect("joined")
	other := n.dial("user=kim", dialOpt{})
	other.send(`{"type":"join","room":"r"}`)
	other.expect("joined")
	n.push("", map[string]any{"to": map[string]any{"users": []string{"jo"}, "rooms": []string{"r"}}, "data": "both", "offline": true})
	c.expectStored(1, "both")
	if m := other.expectData("both"); m["seq"] != nil {
		t.Fatalf("room member got a stored copy: %v", m)
	}
	n.push("", map[string]any{"to": map[string]any{"users": []string{"jo"}}, "data": "sentinel"})
	c.expectData("sentinel")
}

func TestOfflineIdempotentPushIsStoredOnce(t *testing.T) {
	n := startNode(t, nil)
	for range 3 {
		n.push("", map[string]any{"id": "order-7", "to": map[string]any{"users": []string{"lee"}}, "data": "x", "offline": true})
	}
	c, w := n.dialFresh("user=lee")
	if w["seq"] != float64(1) {
		t.Fatalf("welcome %v: stored more than once", w)
	}
	c.expectStored(1, "x")
	c.expectResumed(0, 1, true)
}

// TestOfflineIdempotentBatchIsStoredOnce: a stored batch sent again (and
// an id repeated within it) stores each id once; the repeats answer the
// first ids, and status finds a message by its own id.
func TestOfflineIdempotentBatchIsStoredOnce(t *testing.T) {
	n := startNode(t, nil)
	items := []any{
		map[string]any{"id": "b-1", "to": map[string]any{"users": []string{"kim"}}, "data": 1, "offline": true},
		map[string]any{"to": map[string]any{"users": []string{"kim"}}, "data": 2, "offline": true},
		map[string]any{"id": "b-1", "to": map[string]any{"users": []string{"kim"}}, "data": "again", "offline": true},
		map[string]any{"id": "b-3", "to": map[string]any{"users": []string{"kim"}}, "data": 3, "offline": true},
	}
	for round := range 2 {
		status, out := n.call("POST", "/v1/push/batch", "", map[string]any{"items": items})
		if status != 200 {
			t.Fatalf("batch: %d %v", status, out)
		}
		res := out["results"].([]any)
		for i, want := range []string{"b-1", "", "b-1", "b-3"} {
			got, _ := res[i].(map[string]any)["id"].(string)
			if got == "" || want != "" && got != want {
				t.Fatalf("round %d, item %d: %v", round, i, res[i])
			}
		}
	}
	c, w := n.dialFresh("user=kim")
	if w["seq"] != float64(4) { // b-1, two unnamed pushes, b-3
		t.Fatalf("welcome %v: want 4 stored", w)
	}
	c.expectStored(1, 1, 2, 3, 2)
	c.expectResumed(0, 4, true)
	if _, st := n.call("GET", "/v1/messages/b-3", "", nil); st["targeted"] != float64(1) {
		t.Fatalf("status of b-3: %v", st)
	}
}

func TestOfflineNeedsUsers(t *testing.T) {
	n := startNode(t, nil)
	status, out := n.call("POST", "/v1/push", "", map[string]any{"to": map[string]any{"rooms": []string{"r"}}, "data": 1, "offline": true})
	if status != 400 || errCode(out) != "invalid_argument" {
		t.Fatalf("%d %v", status, out)
	}
}

func TestRoomHistoryReplaysWhatARejoiningClientMissed(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.RoomHistory = []config.RoomHistory{{Rooms: "chat*", Size: 3, TTL: time.Hour}}
	})
	a := n.dial("user=amy", dialOpt{})
	a.send(`{"type":"join","room":"chat-1"}`)
	a.expect("joined")
	n.push("", map[string]any{"to": map[string]any{"rooms": []string{"chat-1"}}, "data": 1})
	if m := a.expectData(1); m["pos"] != float64(1) || m["room"] != "chat-1" {
		t.Fatalf("room message %v", m)
	}
	a.conn.Close()
	for i := 2; i <= 4; i++ {
		n.push("", map[string]any{"to": map[string]any{"rooms": []string{"chat-1"}}, "data": i})
	}
	b := n.dial("user=amy", dialOpt{})
	b.send(`{"type":"join","room":"chat-1","since":1}`)
	b.expect("joined")
	b.expectPositions("chat-1", 2, 3, 4)
	if r := b.expect("resumed"); r["room"] != "chat-1" || r["since"] != float64(1) || r["to"] != float64(4) || r["complete"] != true {
		t.Fatalf("room resumed %v", r)
	}
	n.push("", map[string]any{"to": map[string]any{"rooms": []string{"chat-1"}}, "data": 5})
	b.expectData(5) // live, right after the replay

	// More missed than the history keeps: the newest 3, and the client is told.
	c := n.dial("user=bea", dialOpt{})
	c.send(`{"type":"join","room":"chat-1","since":0}`)
	c.expect("joined")
	c.expectPositions("chat-1", 3, 4, 5)
	if r := c.expect("resumed"); r["complete"] != false || r["to"] != float64(5) {
		t.Fatalf("room resumed %v", r)
	}
	c.send(`{"type":"join","room":"chat-1","since":99}`)
	c.expect("joined")
	if e := c.expect("error"); e["code"] != float64(protocol.ErrCodeInvalidArgument) {
		t.Fatalf("since beyond the room's latest: %v", e)
	}
	c.send(`{"type":"join","room":"lobby","since":1}`)
	c.expect("joined")
	if e := c.expect("error"); !strings.Contains(e["reason"].(string), "no history") {
		t.Fatalf("room without history: %v", e)
	}
}

// expectPositions reads room messages (data = their position) across push
// frames and checks their positions, in order.
func (c *client) expectPositions(room string, positions ...int) {
	c.t.Helper()
	var got []map[string]any
	for len(got) < len(positions) {
		for _, m := range c.expect("push")["msgs"].([]any) {
			got = append(got, m.(map[string]any))
		}
	}
	for i, m := range got {
		if i >= len(positions) || m["pos"] != float64(positions[i]) || m["data"] != float64(positions[i]) || m["room"] != room {
			c.t.Fatalf("room messages %v, want positions %v", got, positions)
		}
	}
}

func TestOfflineBatchKeepsEachUsersOrder(t *testing.T) {
	n := startNode(t, nil)
	var items []any
	for i := 1; i <= 6; i++ {
		items = append(items, map[string]any{"to": map[string]any{"users": []string{[]string{"mia", "ned"}[i%2]}}, "data": i, "offline": true})
	}
	items = append(items, map[string]any{"to": map[string]any{"users": []string{"mia"}}, "data": "bad", "offline": true, "ttl": -1})
	status, out := n.call("POST", "/v1/push/batch", "", map[string]any{"items": items})
	if status != 200 {
		t.Fatalf("batch: %d %v", status, out)
	}
	res := out["results"].([]any)
	for i, r := range res[:6] {
		if r.(map[string]any)["id"] == nil {
			t.Fatalf("item %d: %v", i, r)
		}
	}
	if errCode(res[6].(map[string]any)) != "invalid_argument" {
		t.Fatalf("item with a bad ttl: %v", res[6])
	}
	mia, _ := n.dialFresh("user=mia")
	mia.expectStored(1, 2, 4, 6)
	mia.expectResumed(0, 3, true)
	ned, _ := n.dialFresh("user=ned")
	ned.expectStored(1, 1, 3, 5)
	ned.expectResumed(0, 3, true)
	_, st := n.call("GET", "/v1/messages/"+res[0].(map[string]any)["id"].(string), "", nil)
	if st["targeted"] != float64(1) {
		t.Fatalf("status of a batch item: %v", st)
	}
}
