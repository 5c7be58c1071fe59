package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	pusherKey    = "shop-pusher-key"
	pusherSecret = "shop-pusher-secret"
)

// pusherReceiver checks each request as Pusher's server SDKs do (exact
// content type, key, hex HMAC-SHA256 of the body) and keeps the bodies
// answered 2xx.
type pusherReceiver struct {
	t      *testing.T
	mu     sync.Mutex
	status func(n int) int // the n-th request's (from 0); r.bodies ends with its body
	n      int
	bodies [][]byte // every request's body
	ok     []pusherWebhook
}

type pusherWebhook struct {
	TimeMS int64         `json:"time_ms"`
	Events []pusherEvent `json:"events"`
}

func (r *pusherReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	m := hmac.New(sha256.New, []byte(pusherSecret))
	m.Write(body)
	if req.Header.Get("Content-Type") != "application/json" || req.Header.Get("X-Pusher-Key") != pusherKey ||
		req.Header.Get("X-Pusher-Signature") != hex.EncodeToString(m.Sum(nil)) {
		r.t.Errorf("request not as Pusher signs: %v %s", req.Header, body)
		w.WriteHeader(400)
		return
	}
	var wh pusherWebhook
	if err := json.Unmarshal(body, &wh); err != nil || wh.TimeMS == 0 || len(wh.Events) == 0 {
		r.t.Errorf("body %s: %v", body, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, body)
	code := 200
	if r.status != nil {
		code = r.status(r.n)
	}
	r.n++
	if code/100 == 2 {
		r.ok = append(r.ok, wh)
	}
	w.WriteHeader(code)
}

func (r *pusherReceiver) delivered() (events []pusherEvent, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, wh := range r.ok {
		events = append(events, wh.Events...)
	}
	return events, len(r.bodies)
}

func pusherEndpoint(url string) Endpoint {
	return Endpoint{App: "shop", URL: url, Key: []byte(pusherSecret), PusherKey: pusherKey}
}

// The Pusher names and fields of every type (a client_event's data even
// when empty); events come in batches of at most 20, and a Herald
// endpoint of the same app is untouched.
func TestPusherFormatAndBatches(t *testing.T) {
	r := &pusherReceiver{t: t}
	srv := httptest.NewServer(r)
	defer srv.Close()
	herald := newReceiver(t, nil)
	hsrv := httptest.NewServer(herald)
	defer hsrv.Close()
	ep := pusherEndpoint(srv.URL)
	ep.PusherClientEvents = true
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{ep, endpoint(hsrv.URL, RoomOccupied)}})
	ctx := context.Background()
	emitData := func(typ string, d map[string]any) {
		t.Helper()
		if err := o.Emit(ctx, "shop", typ, time.Now(), d); err != nil {
			t.Fatal(err)
		}
	}
	if o.Wants("shop", UserOnline) || !o.Wants("shop", ClientEvent) || o.Wants("other", ClientEvent) {
		t.Fatal("Wants disagrees with the Pusher endpoint's types")
	}
	if o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}}); o.Wants("shop", ClientEvent) || !o.Wants("shop", RoomOccupied) {
		t.Fatal("a Pusher endpoint wants client events without PusherClientEvents")
	}
	emitData(RoomOccupied, map[string]any{"room": "news"})
	emitData(PresenceJoin, map[string]any{"room": "presence-lobby", "user": "alice"})
	emitData(ClientEvent, map[string]any{"room": "private-chat", "event": "client-typing", "data": `{"who":"a"}`, "socket_id": "1.2"})
	emitData(ClientEvent, map[string]any{"room": "private-chat", "event": "client-empty", "data": "", "socket_id": "1.2"})
	emitData(PresenceLeave, map[string]any{"room": "presence-lobby", "user": "alice"})
	emitData(RoomVacated, map[string]any{"room": "news"})
	const more = 40
	for i := range more {
		emitData(RoomOccupied, map[string]any{"room": fmt.Sprintf("r%d", i)})
	}
	waitFor(t, "all events", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 6+more })
	ev, _ := r.delivered()
	want := []string{
		`{"name":"channel_occupied","channel":"news"}`,
		`{"name":"member_added","channel":"presence-lobby","user_id":"alice"}`,
		`{"name":"client_event","channel":"private-chat","event":"client-typing","data":"{\"who\":\"a\"}","socket_id":"1.2"}`,
		`{"name":"client_event","channel":"private-chat","event":"client-empty","data":"","socket_id":"1.2"}`,
		`{"name":"member_removed","channel":"presence-lobby","user_id":"alice"}`,
		`{"name":"channel_vacated","channel":"news"}`,
	}
	for i, w := range want {
		if got, _ := json.Marshal(ev[i]); string(got) != w {
			t.Fatalf("event %d = %s, want %s", i, got, w)
		}
	}
	r.mu.Lock()
	for _, wh := range r.ok {
		if len(wh.Events) > pusherBatch {
			t.Errorf("a request of %d events", len(wh.Events))
		}
	}
	if len(r.ok) >= 6+more {
		t.Errorf("%d requests for %d events: not batched", len(r.ok), 6+more)
	}
	r.mu.Unlock()
	waitFor(t, "the Herald endpoint's event", 20*time.Second, func() bool { _, ok := herald.counts(); return len(ok) == 1+more })
}

// A receiver failing, then recovering, gets each event once it answers
// 2xx, every attempt of a batch with the same, validly signed body.
func TestPusherRetried(t *testing.T) {
	const failures = 3
	r := &pusherReceiver{t: t, status: func(n int) int {
		if n < failures {
			return 502
		}
		return 200
	}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}})
	if err := o.Emit(context.Background(), "shop", RoomOccupied, time.Now(), map[string]any{"room": "news"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 1 })
	ev, n := r.delivered()
	if n != failures+1 || ev[0].Name != "channel_occupied" {
		t.Fatalf("%d requests, events %+v", n, ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bodies[1:] {
		if string(b) != string(r.bodies[0]) {
			t.Fatalf("the retried body changed: %s then %s", r.bodies[0], b)
		}
	}
	// Counted once the answer is read, after the receiver kept the body.
	waitFor(t, "delivered counted", 20*time.Second, func() bool { return o.Stats(context.Background(), "shop")[0].Delivered == 1 })
	if s := o.Stats(context.Background(), "shop")[0]; s.Retried != failures {
		t.Fatalf("stats = %+v", s)
	}
}

func TestPusherEndpointRefusesEventList(t *testing.T) {
	ep := pusherEndpoint("https://example.com/h")
	ep.Events = []string{UserOnline}
	if _, err := New(Config{NodeID: "n", Endpoints: []Endpoint{ep}}); err == nil {
		t.Fatal("a Pusher endpoint with an event list was accepted")
	}
	ep.Events, ep.Key = nil, nil
	if _, err := New(Config{NodeID: "n", Endpoints: []Endpoint{ep}}); err == nil || strings.Contains(err.Error(), "whsec_") ||
		!strings.Contains(err.Error(), "Pusher secret") {
		t.Fatalf("a Pusher endpoint without a secret: %v", err)
	}
	if pusherEndpoint("https://example.com/h").ID() == endpoint("https://example.com/h").ID() {
		t.Fatal("a Pusher and a Herald endpoint of one URL share an id")
	}
}

// A Pusher batch out of retries is dead-lettered event by event; a replay
// sends them again in Pusher's form.
func TestPusherDeadLetterReplay(t *testing.T) {
	var mu sync.Mutex
	up := false
	r := &pusherReceiver{t: t, status: func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return 200
		}
		return 503
	}}
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}, RetryFor: 300 * time.Millisecond})
	for _, room := range []string{"a", "b"} {
		if err := o.Emit(context.Background(), "shop", RoomOccupied, time.Now(), map[string]any{"room": room}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "2 dead letters", 30*time.Second, func() bool {
		d, _, err := o.Dead(context.Background(), "shop", 0, 10)
		return err == nil && len(d) == 2
	})
	mu.Lock()
	up = true
	mu.Unlock()
	if n, err := o.Replay(context.Background(), "shop", nil); err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	waitFor(t, "replayed", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 2 })
	ev, _ := r.delivered()
	got := map[string]bool{}
	for _, e := range ev {
		got[e.Name+" "+e.Channel] = true
	}
	if !got["channel_occupied a"] || !got["channel_occupied b"] {
		t.Fatalf("replayed %+v", ev)
	}
}

// lines is an io.Writer handing each write (a log line) to a channel.
type lines chan string

func (l lines) Write(p []byte) (int, error) { l <- string(p); return len(p), nil }

// A stored event with no Pusher form is dropped, logged, and the events
// after it are delivered.
func TestPusherNoFormLogged(t *testing.T) {
	r := &pusherReceiver{t: t}
	srv := httptest.NewServer(r)
	defer srv.Close()
	log := make(lines, 16)
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{pusherEndpoint(srv.URL)}, Logger: slog.New(slog.NewTextHandler(log, nil))})
	for _, d := range []map[string]any{{}, {"room": "news"}} {
		if err := o.Emit(context.Background(), "shop", RoomOccupied, time.Now(), d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the valid event", 20*time.Second, func() bool { ev, _ := r.delivered(); return len(ev) == 1 })
	var logged string
	for len(log) > 0 {
		logged += <-log
	}
	if ev, _ := r.delivered(); ev[0].Channel != "news" || !strings.Contains(logged, "has no Pusher form") {
		t.Fatalf("delivered %+v, logged %q", ev, logged)
	}
}
