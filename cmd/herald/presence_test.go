package main

// A process test of presence and lifecycle webhooks across a cluster: a
// node is SIGKILLed and its users must still leave, be announced, and be
// reported to the backend.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a loopback webhook endpoint that verifies every request
// with the Standard Webhooks reference library and keeps each event once
// (by webhook-id: delivery is at least once).
type hookReceiver struct {
	t      *testing.T
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	byID   map[string]hookEvent
	repeat int // requests of an event already received
	// down makes the receiver answer 503 to everything (and keep nothing).
	down atomic.Bool
}

type hookEvent struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func newHookReceiver(t *testing.T) (*hookReceiver, string) {
	wh, err := standardwebhooks.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, wh: wh, byID: map[string]hookEvent{}}
	srv := httptest.NewServer(r) // 127.0.0.1
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.down.Load() {
		w.WriteHeader(503)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("signature refused by the reference library: %v", err)
		w.WriteHeader(400)
		return
	}
	var e hookEvent
	if err := json.Unmarshal(body, &e); err != nil || e.Timestamp.IsZero() || e.Data["app"] != "demo" {
		r.t.Errorf("event %s: %v", body, err)
	}
	r.mu.Lock()
	id := req.Header.Get("webhook-id")
	if _, ok := r.byID[id]; ok {
		r.repeat++
	}
	r.byID[id] = e
	r.mu.Unlock()
	w.WriteHeader(204)
}

// summary lists "type room user code" for every distinct event, sorted;
// code only for conn.closed of the connections in lost.
func (r *hookReceiver) summary(lost map[string]bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.byID {
		s := e.Type
		for _, k := range []string{"room", "user"} {
			if v, ok := e.Data[k].(string); ok {
				s += " " + v
			}
		}
		if conn, _ := e.Data["conn"].(string); e.Type == "conn.closed" && lost[conn] {
			s += fmt.Sprintf(" %v", e.Data["code"])
		} else if e.Type == "conn.closed" && e.Data["code"] == float64(1006) {
			s += " 1006 (a live node's connection!)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// waitEvents waits until the receiver holds exactly want (sorted), for at
// most limit.
func (r *hookReceiver) waitEvents(t *testing.T, limit time.Duration, lost map[string]bool, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	start := time.Now()
	defer func() { t.Logf("%d events after %v", len(want), time.Since(start).Round(time.Millisecond)) }()
	giveUp := start.Add(limit)
	for {
		got = r.summary(lost)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(giveUp) {
			t.Fatalf("webhook events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

// joinRoom joins room and returns the joined frame (skipping presence
// frames about earlier members).
func (c *wsClient) joinRoom(room string) map[string]any {
	c.t.Helper()
	c.send(`{"type":"join","room":"` + room + `"}`)
	for {
		f := c.next()
		if f["type"] == "joined" {
			return f
		}
	}
}

// keepAlive sends an application ping every 10 s until c is closed, so
// that a test longer than the heartbeat timeout (60 s) keeps c. Nothing
// else may write to c meanwhile.
func (c *wsClient) keepAlive() {
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.quit:
				return
			case <-t.C:
				_ = c.conn.SetWriteDeadline(time.Now().Add(deadline))
				_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewTextFrame([]byte(`{"type":"ping"}`))))
			}
		}
	}()
}

// awaitLeave collects the users of the presence leave frames c gets
// until until, failing the test if it has not seen want by then.
func (c *wsClient) awaitLeave(want string, until time.Time) []string {
	c.t.Helper()
	var left []string
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if f["type"] != "presence" {
				continue
			}
			users, _ := f["leave"].([]any)
			for _, u := range users {
				left = append(left, u.(string))
			}
			if slices.Contains(left, want) {
				return left
			}
		case <-timer.C:
			c.t.Fatalf("no presence leave of %s by the deadline (left: %v)", want, left)
			return nil
		}
	}
}

// TestClusterPresenceSIGKILL: three nodes with a presence room and a
// webhook to a loopback receiver. alice is connected only to the victim,
// carol to the victim and survivor A, bob to A and dave to survivor B,
// all in chat-1. The victim (a node that leads neither presence bucket)
// is SIGKILLed: within 30 s (the target; the time is logged),
// bob and dave get a presence leave for alice (and none for carol, still
// present through node 1), the presence query on a survivor lists bob,
// carol and dave, and the receiver gets conn.closed with code 1006 for both
// dead connections, user.offline and presence.leave for alice only. No
// event is lost: the receiver holds exactly one of each transition,
// verified by the reference library, before the kill, after it, and after
// everyone else leaves. A survivor swept as dead (its users' leave) fails
// it.
func TestClusterPresenceSIGKILL(t *testing.T) {
	presenceSIGKILL(t, func(leaders map[string]bool, i int) bool { return !leaders[fmt.Sprintf("node%d", i+1)] })
}

// TestClusterPresenceSIGKILLLeaseLeader is TestClusterPresenceSIGKILL with
// the node that leads the lease bucket as the victim: the survivors'
// renewals stall until JetStream elects another leader, and nobody live
// may be taken for dead for it.
func TestClusterPresenceSIGKILLLeaseLeader(t *testing.T) {
	presenceSIGKILL(t, func(leaders map[string]bool, i int) bool { return leaders["lease:"+fmt.Sprintf("node%d", i+1)] })
}

// presenceSIGKILL runs the SIGKILL scenario with the first node victim
// accepts (leaders holds "<node>" for the leader of either presence bucket
// and "lease:<node>" for the lease bucket's).
func presenceSIGKILL(t *testing.T, victimOK func(leaders map[string]bool, i int) bool) {
	r, url := newHookReceiver(t)
	c := embeddedCluster(t, "--webhook-url", url, "--webhook-secret", hookSecret, "--presence-rooms", "chat-*")
	// The bound is the target, 30 s; docs/webhooks.md states how
	// it is made up and the times this test measured.
	const bound = 30 * time.Second
	victim := pickVictim(t, c, victimOK)
	a, b := (victim+1)%3, (victim+2)%3
	// Webhook delivery after the kill may wait for the outbox consumer's
	// ack wait (30 s: an event the dead node held, or an ack lost while
	// the consumer's leader moved) on top of the usual deadline.
	const afterKill = deadline + 30*time.Second

	type tab struct {
		user string
		node int
		ws   *wsClient
		conn string
	}
	tabs := []*tab{{user: "bob", node: a}, {user: "dave", node: b}, {user: "carol", node: a},
		{user: "alice", node: victim}, {user: "carol", node: victim}}
	for _, tb := range tabs {
		tb.ws = dialWS(t, c.addr(tb.node), "?user="+tb.user)
		tb.conn = tb.ws.welcome(tb.user)["conn"].(string)
		j := tb.ws.joinRoom("chat-1")
		if members, _ := j["members"].([]any); !slices.Contains(members, any(tb.user)) {
			t.Fatalf("%s's joined frame %v: members without itself", tb.user, j)
		}
		tb.ws.keepAlive()
	}
	want := []string{"room.occupied chat-1"}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		want = append(want, "user.online "+u, "presence.join chat-1 "+u)
	}
	for _, tb := range tabs {
		want = append(want, "conn.opened "+tb.user)
	}
	lost := map[string]bool{tabs[3].conn: true, tabs[4].conn: true}
	r.waitEvents(t, deadline, lost, want)

	c.kill(victim)
	killed := time.Now()
	until := killed.Add(bound)
	for _, tb := range tabs[:2] {
		if left := tb.ws.awaitLeave("alice", until); !slices.Equal(left, []string{"alice"}) {
			t.Errorf("%s's presence leave frames: %v; want alice only", tb.user, left)
		}
		t.Logf("%s told of alice's departure %v after the kill", tb.user, time.Since(killed).Round(time.Millisecond))
	}
	var users []any
	eventually(t, "GET /v1/rooms/chat-1/presence on a survivor lists bob, carol, dave", func() bool {
		status, body := get(t, c.addr(a), "/v1/rooms/chat-1/presence")
		var out map[string]any
		if status != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("GET /v1/rooms/chat-1/presence: %d %s", status, body)
		}
		users, _ = out["users"].([]any)
		return fmt.Sprint(users) == "[bob carol dave]"
	})
	if time.Now().After(until) {
		t.Errorf("node %d's users left after the %v bound", victim+1, bound)
	}
	want = append(want, "conn.closed alice 1006", "conn.closed carol 1006",
		"user.offline alice", "presence.leave chat-1 alice")
	r.waitEvents(t, afterKill, lost, want)

	for _, tb := range tabs[:3] {
		tb.ws.close()
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		want = append(want, "conn.closed "+u, "user.offline "+u, "presence.leave chat-1 "+u)
	}
	want = append(want, "room.vacated chat-1")
	r.waitEvents(t, afterKill, lost, want)
	r.mu.Lock()
	t.Logf("%d events, %d delivered again (at least once)", len(r.byID), r.repeat)
	r.mu.Unlock()
}

// pickVictim returns the index of the first node ok accepts, given the
// leaders of the presence buckets (see presenceSIGKILL).
func pickVictim(t *testing.T, c *cluster, ok func(leaders map[string]bool, i int) bool) int {
	t.Helper()
	m := clientsRE.FindStringSubmatch(c.nodes[0].proc.waitLine(`msg="embedded NATS server clustering"`))
	if m == nil {
		t.Fatal("node 1 logged no client URL of its embedded NATS server")
	}
	nc, err := nats.Connect(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[string]bool{}
	for _, name := range []string{"KV_HERALD_PRESENCE", "KV_HERALD_PRESENCE_LEASES"} {
		eventually(t, "the leader of "+name, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s, err := js.Stream(ctx, name)
			if err != nil || s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" {
				return false
			}
			leaders[s.CachedInfo().Cluster.Leader] = true
			if name == "KV_HERALD_PRESENCE_LEASES" {
				leaders["lease:"+s.CachedInfo().Cluster.Leader] = true
			}
			return true
		})
	}
	for i := range c.nodes {
		if ok(leaders, i) {
			return i
		}
	}
	t.Fatalf("no node fits: %v", leaders)
	return -1
}
