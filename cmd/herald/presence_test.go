package main

// A process test of presence and lifecycle webhooks across a cluster: a
// node is SIGKILLed and its users must still leave, be announced, and be
// reported to the backend.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

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
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// waitEvents waits until the receiver holds exactly want (sorted).
func (r *hookReceiver) waitEvents(t *testing.T, lost map[string]bool, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []string
	giveUp := time.Now().Add(deadline)
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

// presenceLeaves collects the users of the presence leave frames c gets
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
// webhook to a loopback receiver. alice is connected only to node 3,
// carol to node 3 and node 1, bob to node 1 and dave to node 2, all in
// chat-1. Node 3 is SIGKILLed: within the documented bound (lease 10 s +
// sweep 2.5 s + offline delay 5 s = 17.5 s), bob and dave get a presence
// leave for alice (and none for carol, still present through node 1), the
// presence query on a survivor lists bob, carol and dave, and the receiver
// gets conn.closed with code 1006 for both dead connections, user.offline
// and presence.leave for alice only. No event is lost: the receiver holds
// exactly one of each transition, verified by the reference library,
// before the kill, after it, and after everyone else leaves.
func TestClusterPresenceSIGKILL(t *testing.T) {
	r, url := newHookReceiver(t)
	c := embeddedCluster(t, "--webhook-url", url, "--webhook-secret", hookSecret, "--presence-rooms", "chat-*")
	const bound = 17500 * time.Millisecond

	type tab struct {
		user string
		node int
		ws   *wsClient
		conn string
	}
	tabs := []*tab{{user: "bob", node: 0}, {user: "dave", node: 1}, {user: "carol", node: 0},
		{user: "alice", node: 2}, {user: "carol", node: 2}}
	for _, tb := range tabs {
		tb.ws = dialWS(t, c.addr(tb.node), "?user="+tb.user)
		tb.conn = tb.ws.welcome(tb.user)["conn"].(string)
		j := tb.ws.joinRoom("chat-1")
		if members, _ := j["members"].([]any); !slices.Contains(members, any(tb.user)) {
			t.Fatalf("%s's joined frame %v: members without itself", tb.user, j)
		}
	}
	want := []string{"room.occupied chat-1"}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		want = append(want, "user.online "+u, "presence.join chat-1 "+u)
	}
	for _, tb := range tabs {
		want = append(want, "conn.opened "+tb.user)
	}
	lost := map[string]bool{tabs[3].conn: true, tabs[4].conn: true}
	r.waitEvents(t, lost, want)

	c.kill(2)
	until := time.Now().Add(bound)
	for _, tb := range tabs[:2] {
		if left := tb.ws.awaitLeave("alice", until); !slices.Equal(left, []string{"alice"}) {
			t.Errorf("%s's presence leave frames: %v; want alice only", tb.user, left)
		}
	}
	var users []any
	eventually(t, "GET /v1/rooms/chat-1/presence on node 1 lists bob, carol, dave", func() bool {
		status, body := get(t, c.addr(0), "/v1/rooms/chat-1/presence")
		var out map[string]any
		if status != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("GET /v1/rooms/chat-1/presence: %d %s", status, body)
		}
		users, _ = out["users"].([]any)
		return fmt.Sprint(users) == "[bob carol dave]"
	})
	if time.Now().After(until) {
		t.Errorf("node 3's users left after the %v bound", bound)
	}
	want = append(want, "conn.closed alice 1006", "conn.closed carol 1006",
		"user.offline alice", "presence.leave chat-1 alice")
	r.waitEvents(t, lost, want)

	for _, tb := range tabs[:3] {
		tb.ws.close()
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		want = append(want, "conn.closed "+u, "user.offline "+u, "presence.leave chat-1 "+u)
	}
	want = append(want, "room.vacated chat-1")
	r.waitEvents(t, lost, want)
	r.mu.Lock()
	t.Logf("%d events, %d delivered again (at least once)", len(r.byID), r.repeat)
	r.mu.Unlock()
}
