package server

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

	"github.com/heraldpush/herald/internal/config"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a loopback webhook endpoint that verifies signatures
// with the Standard Webhooks reference library and keeps the events that
// it accepted.
type hookReceiver struct {
	t      *testing.T
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	events []hookEvent
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
	r := &hookReceiver{t: t, wh: wh}
	srv := httptest.NewServer(r)
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
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("event %s: %v", body, err)
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	w.WriteHeader(204)
}

// summary lists "type who" for every event received, sorted.
func (r *hookReceiver) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		who, _ := e.Data["user"].(string)
		if room, ok := e.Data["room"].(string); ok {
			who = strings.TrimSpace(room + " " + who)
		}
		if e.Data["app"] != "demo" {
			who += " (app " + e.Data["app"].(string) + ")"
		}
		out = append(out, e.Type+" "+who)
	}
	sort.Strings(out)
	return out
}

// TestLifecycleWebhooks: a real node with a presence room and a loopback
// webhook; two tabs of alice and one of bob come and go. Every event type
// of the lifecycle arrives once per transition, signed, and a second tab
// makes no user or presence event.
func TestLifecycleWebhooks(t *testing.T) {
	r, url := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.PresenceRooms = []string{"chat-*"}
		c.DevWebhooks = []config.Webhook{{URL: url, Secret: hookSecret}}
		c.Limits.OfflineDelay = 200 * time.Millisecond
	})
	a1 := n.dial("app=demo&user=alice", dialOpt{})
	a2 := n.dial("app=demo&user=alice", dialOpt{})
	b := n.dial("app=demo&user=bob", dialOpt{})
	for _, c := range []*client{a1, a2, b} {
		c.send(`{"type":"join","room":"chat-1"}`)
		c.expect("joined")
	}
	want := []string{
		"conn.opened alice", "conn.opened alice", "conn.opened bob",
		"presence.join chat-1 alice", "presence.join chat-1 bob",
		"room.occupied chat-1",
		"user.online alice", "user.online bob",
	}
	waitSummary(t, r, want)
	a1.send(`{"type":"leave","room":"chat-1"}`)
	f := a1.next()
	for f["type"] == "presence" { // bob's arrival, maybe
		f = a1.next()
	}
	if f["type"] != "left" {
		t.Fatalf("got %v, want left", f)
	}
	a1.conn.Close()
	a2.conn.Close()
	b.conn.Close()
	want = append(want,
		"conn.closed alice", "conn.closed alice", "conn.closed bob",
		"presence.leave chat-1 alice", "presence.leave chat-1 bob",
		"room.vacated chat-1",
		"user.offline alice", "user.offline bob")
	sort.Strings(want)
	waitSummary(t, r, want)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == "conn.closed" && (e.Data["code"] == nil || e.Data["conn"] == nil || e.Data["node"] == nil) {
			t.Errorf("conn.closed without code, conn or node: %v", e.Data)
		}
		if e.Timestamp.IsZero() {
			t.Errorf("%s without timestamp", e.Type)
		}
	}
}

func waitSummary(t *testing.T, r *hookReceiver, want []string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(3 * wait)
	for {
		got := r.summary()
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMessageWebhooks: an endpoint that lists message.delivered and
// message.acked gets them, with the message's id, the user and the seq,
// for a stored message replayed on connect and for one delivered live,
// and then for the client's ack; an endpoint with the default list gets
// no message event.
func TestMessageWebhooks(t *testing.T) {
	msgs, msgsURL := newHookReceiver(t)
	dflt, dfltURL := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.DevWebhooks = []config.Webhook{
			{URL: msgsURL, Secret: hookSecret, Events: []string{"message.delivered", "message.acked"}},
			{URL: dfltURL, Secret: hookSecret},
		}
	})
	id1 := n.offline("", "one", "alice")
	c, err := n.tryDial("app=demo&user=alice", dialOpt{})
	if err != nil {
		t.Fatal(err)
	}
	c.expect("welcome")
	c.expectStored(1, "one") // replayed
	c.expect("resumed")
	want := []string{"message.delivered " + id1 + " alice 1"}
	waitMessageEvents(t, msgs, want)

	id2 := n.offline("", "two", "alice")
	c.expectStored(2, "two") // live
	want = append(want, "message.delivered "+id2+" alice 2")
	waitMessageEvents(t, msgs, want)

	c.send(`{"type":"ack","seq":2}`)
	want = append(want, "message.acked "+id2+" alice 2")
	waitMessageEvents(t, msgs, want)

	c.conn.Close()
	waitSummary(t, dflt, []string{"conn.closed alice", "conn.opened alice", "user.offline alice", "user.online alice"})
}

// waitMessageEvents waits until r holds exactly want ("type id user seq",
// in order of arrival; sorted if sorted).
func waitMessageEvents(t *testing.T, r *hookReceiver, want []string, sorted ...bool) {
	t.Helper()
	deadline := time.Now().Add(3 * wait)
	for {
		r.mu.Lock()
		var got []string
		for _, e := range r.events {
			got = append(got, fmt.Sprintf("%s %v %v %v", e.Type, e.Data["id"], e.Data["user"], e.Data["seq"]))
		}
		r.mu.Unlock()
		if len(sorted) > 0 && sorted[0] {
			slices.Sort(got)
		}
		if strings.Join(got, "\n") == strings.Join(want, "\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a synchronisation
	}
}

// TestMessageExpiredWebhook: an endpoint that lists message.expired gets
// it, stamped with the expiry time, for each copy of a stored message
// whose TTL ended unacked — one pushed alone and one in a batch — and not
// for a copy that was acked or a message that was recalled.
func TestMessageExpiredWebhook(t *testing.T) {
	r, url := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.DevWebhooks = []config.Webhook{{URL: url, Secret: hookSecret, Events: []string{"message.expired"}}}
	})
	const ttl = 2 * time.Second // long enough for the ack to be stored first
	push := func(data string, users ...string) string {
		return n.push("", map[string]any{"to": map[string]any{"users": users}, "data": data, "offline": true, "ttl": ttl.Seconds()})
	}
	start := time.Now().Add(-time.Millisecond) // a message's creation time is in milliseconds
	push("acked", "alice")                     // alice 1
	recalled := push("recalled", "alice")      // alice 2
	kept := push("kept", "alice", "bob")       // alice 3, bob 1
	status, out := n.call("POST", "/v1/push/batch", "", map[string]any{"items": []any{
		map[string]any{"to": map[string]any{"users": []string{"carol"}}, "data": "batched", "offline": true, "ttl": ttl.Seconds()}}})
	if status != 200 {
		t.Fatalf("batch: %d %v", status, out)
	}
	batched := out["results"].([]any)[0].(map[string]any)["id"].(string) // carol 1
	pushed := time.Now()
	if status, out := n.call("DELETE", "/v1/messages/"+recalled, "", nil); status != 204 {
		t.Fatalf("recall: %d %v", status, out)
	}
	c, err := n.tryDial("app=demo&user=alice", dialOpt{})
	if err != nil {
		t.Fatal(err)
	}
	c.expect("welcome")
	if msgs := c.expectMsgs(2); msgs[0]["seq"] != float64(1) || msgs[1]["seq"] != float64(3) { // 2 was recalled
		t.Fatalf("replayed %v", msgs)
	}
	c.expect("resumed")
	c.send(`{"type":"ack","seq":1}`)
	want := []string{
		"message.expired " + kept + " alice 3",
		"message.expired " + kept + " bob 1",
		"message.expired " + batched + " carol 1",
	}
	waitMessageEvents(t, r, want, true) // not for acked or recalled
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Timestamp.Before(start.Add(ttl)) || e.Timestamp.After(pushed.Add(ttl)) {
			t.Errorf("%s stamped %v: not the expiry time (pushed from %v to %v, ttl %v)", e.Type, e.Timestamp, start, pushed, ttl)
		}
	}
}
