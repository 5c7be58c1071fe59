package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// The Standard Webhooks specification's test vector.
func TestSignSpecVector(t *testing.T) {
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, s := range []string{"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="} {
		if _, err := ParseSecret(s); !errors.Is(err, ErrBadSecret) {
			t.Errorf("ParseSecret(%q) = %v, want ErrBadSecret", s, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://backend.example.com/herald", false, true},
		{"https://93.184.216.34/h", false, true},
		{"http://backend.example.com/herald", false, false},
		{"https://127.0.0.1/h", false, false},
		{"https://[::1]/h", false, false},
		{"https://10.1.2.3/h", false, false},
		{"https://192.168.0.1/h", false, false},
		{"https://169.254.169.254/latest", false, false},
		{"https://localhost:8443/h", false, false},
		{"https://[::ffff:127.0.0.1]/h", false, false},
		{"http://127.0.0.1:9000/h", true, true},
		{"ftp://example.com/", true, false},
		{"not a url", true, false},
	} {
		if err := CheckURL(c.url, c.allowPrivate); (err == nil) != c.ok {
			t.Errorf("CheckURL(%q, %v) = %v, want ok=%v", c.url, c.allowPrivate, err, c.ok)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	key, _ := ParseSecret(testSecret)
	for _, ep := range []Endpoint{
		{App: "shop", URL: "http://127.0.0.1/h", Key: key},
		{App: "shop", URL: "https://example.com/h", Key: key, Events: []string{"user.sneezed"}},
		{App: "shop", URL: "https://example.com/h"},
	} {
		if _, err := New(Config{NodeID: "n", Endpoints: []Endpoint{ep}}); err == nil {
			t.Errorf("New(%+v) accepted", ep)
		} else if !strings.Contains(err.Error(), `app "shop"`) {
			t.Errorf("New(%+v) = %v: the error does not name the app", ep, err)
		}
	}
}

// receiver is a real HTTP endpoint on loopback that verifies every
// request with the Standard Webhooks reference library.
type receiver struct {
	t      *testing.T
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	status func(n int) int // the answer to the n-th request (from 0)
	n      int
	got    []string          // webhook-ids in arrival order (all attempts)
	ok     []string          // webhook-ids answered 2xx
	bodies map[string][]byte // by webhook-id
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{t: t, wh: wh, status: status, bodies: map[string][]byte{}}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading body: %v", err)
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("reference library refuses the signature: %v", err)
		w.WriteHeader(400)
		return
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	code := 200
	if r.status != nil {
		code = r.status(r.n)
	}
	r.n++
	r.got = append(r.got, id)
	if prev, ok := r.bodies[id]; ok && string(prev) != string(body) {
		r.t.Errorf("webhook-id %s: body changed between attempts", id)
	}
	r.bodies[id] = body
	if code/100 == 2 {
		r.ok = append(r.ok, id)
	}
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *receiver) counts() (got, ok []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got), slices.Clone(r.ok)
}

func runNATS(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return srv.ClientURL()
}

// startOutbox starts an outbox on natsURL; closed when t ends.
func startOutbox(t *testing.T, natsURL string, cfg Config) *Outbox {
	t.Helper()
	o, _ := startNode(t, natsURL, cfg)
	return o
}

// startNode starts an outbox on natsURL and returns its connection too
// (closing it is the node dying); closed when t ends.
func startNode(t *testing.T, natsURL string, cfg Config) (*Outbox, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	cfg.AllowPrivate = true
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = 10 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 200 * time.Millisecond
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := o.Start(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o, nc
}

func endpoint(url string, events ...string) Endpoint {
	key, _ := ParseSecret(testSecret)
	return Endpoint{App: "shop", URL: url, Key: key, Events: events}
}

func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func emit(t *testing.T, o *Outbox, typ string, i int) {
	t.Helper()
	err := o.Emit(context.Background(), "shop", typ, time.Now(), map[string]any{"user": fmt.Sprintf("u%d", i)})
	if err != nil {
		t.Fatal(err)
	}
}

// Every event type arrives, verified by the reference library, in order,
// with the documented body.
func TestDeliverAllTypes(t *testing.T) {
	r := newReceiver(t, nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint(srv.URL, Types...)}})
	for i, typ := range Types {
		emit(t, o, typ, i)
	}
	waitFor(t, "all types", 20*time.Second, func() bool { _, ok := r.counts(); return len(ok) == len(Types) })
	_, ok := r.counts()
	for i, id := range ok {
		var b struct {
			Type      string         `json:"type"`
			Timestamp time.Time      `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.bodies[id], &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != Types[i] || b.Data["app"] != "shop" || b.Data["user"] != fmt.Sprintf("u%d", i) || b.Timestamp.IsZero() {
			t.Fatalf("event %d = %s", i, r.bodies[id])
		}
	}
}

// The default selection is every type but message.*.
func TestDefaultTypes(t *testing.T) {
	r := newReceiver(t, nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint(srv.URL)}})
	emit(t, o, MessageAcked, 0)
	emit(t, o, UserOnline, 1)
	waitFor(t, "user.online", 20*time.Second, func() bool { _, ok := r.counts(); return len(ok) == 1 })
	if o.Wants("shop", MessageAcked) || !o.Wants("shop", UserOnline) {
		t.Fatal("Wants disagrees with the default selection")
	}
	got, _ := r.counts()
	if b := r.bodies[got[0]]; !strings.Contains(string(b), `"user.online"`) {
		t.Fatalf("got %s", b)
	}
}

// A receiver answering 500 for a while, then 200: every event arrives
// exactly as many times as it failed, plus one, with one webhook-id.
func TestRetryExactlyFailuresPlusOne(t *testing.T) {
	const failures, events = 6, 20
	r := newReceiver(t, func(n int) int {
		if n < failures {
			return 500
		}
		return 200
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint(srv.URL)}})
	for i := range events {
		emit(t, o, UserOnline, i)
	}
	waitFor(t, "all delivered", 30*time.Second, func() bool { _, ok := r.counts(); return len(ok) == events })
	got, ok := r.counts()
	if len(got) != events+failures {
		t.Fatalf("%d attempts, want %d", len(got), events+failures)
	}
	failed := map[string]int{}
	for _, id := range got[:failures] {
		failed[id]++
	}
	for _, id := range ok {
		n := 0
		for _, g := range got {
			if g == id {
				n++
			}
		}
		if n != failed[id]+1 {
			t.Fatalf("event %s arrived %d times, failed %d", id, n, failed[id])
		}
	}
	// In order: the stream's order, one at a time.
	for i, id := range ok {
		if want := fmt.Sprintf(`"user":"u%d"`, i); !strings.Contains(string(r.bodies[id]), want) {
			t.Fatalf("delivery %d is %s", i, r.bodies[id])
		}
	}
	if s := o.Stats(context.Background(), "shop")[0]; s.Delivered != events || s.Retried != failures {
		t.Fatalf("stats = %+v", s)
	}
}

// A receiver that is down (connection refused) while events happen gets
// them all once it is back.
func TestReceiverDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint("http://" + addr + "/hook")}})
	const events = 200
	for i := range events {
		emit(t, o, ConnOpened, i)
	}
	waitFor(t, "failed attempts", 20*time.Second, func() bool { return o.Stats(context.Background(), "")[0].Retried >= 3 })
	r := newReceiver(t, nil)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	defer srv.Close()
	waitFor(t, "backlog delivered", 60*time.Second, func() bool { _, ok := r.counts(); return len(ok) == events })
	_, ok := r.counts()
	seen := map[string]bool{}
	for _, id := range ok {
		if seen[id] {
			t.Fatalf("event %s delivered twice after a 2xx", id)
		}
		seen[id] = true
	}
}

// Events out of retries go to the dead-letter list; a replay delivers
// them with their webhook-id.
func TestDeadLetterReplay(t *testing.T) {
	var mu sync.Mutex
	up := false
	r := newReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return 204
		}
		return 503
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint(srv.URL)}, RetryFor: 300 * time.Millisecond})
	for i := range 3 {
		emit(t, o, UserOffline, i)
	}
	var dead []DeadEvent
	waitFor(t, "3 dead letters", 30*time.Second, func() bool {
		d, _, err := o.Dead(context.Background(), "shop", 0, 10)
		dead = d
		return err == nil && len(d) == 3
	})
	if page, next, _ := o.Dead(context.Background(), "shop", 0, 2); len(page) != 2 || next != page[1].Seq {
		t.Fatalf("page of 2: %d, next %d", len(page), next)
	}
	if d, _, _ := o.Dead(context.Background(), "other", 0, 10); len(d) != 0 {
		t.Fatalf("another app sees %d dead letters", len(d))
	}
	mu.Lock()
	up = true
	mu.Unlock()
	n, err := o.Replay(context.Background(), "shop", []string{dead[0].ID, dead[2].ID})
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	waitFor(t, "replayed", 20*time.Second, func() bool { _, ok := r.counts(); return len(ok) == 2 })
	_, ok := r.counts()
	if ok[0] != dead[0].ID || ok[1] != dead[2].ID {
		t.Fatalf("delivered %v, want ids %s %s", ok, dead[0].ID, dead[2].ID)
	}
	if d, _, _ := o.Dead(context.Background(), "shop", 0, 10); len(d) != 1 || d[0].ID != dead[1].ID {
		t.Fatalf("left in the list: %+v", d)
	}
}

// 410 Gone disables the endpoint cluster-wide.
func TestGoneDisables(t *testing.T) {
	r := newReceiver(t, func(int) int { return 410 })
	srv := httptest.NewServer(r)
	defer srv.Close()
	o := startOutbox(t, runNATS(t), Config{Endpoints: []Endpoint{endpoint(srv.URL)}})
	emit(t, o, UserOnline, 0)
	emit(t, o, UserOnline, 1)
	waitFor(t, "disabled", 20*time.Second, func() bool { return o.Stats(context.Background(), "shop")[0].Disabled })
	if got, _ := r.counts(); len(got) != 1 {
		t.Fatalf("%d attempts after a 410, want 1", len(got))
	}
	if s := o.Stats(context.Background(), "shop")[0]; s.Pending != 2 {
		t.Fatalf("pending = %d, want 2 (kept for when the endpoint is enabled again)", s.Pending)
	}
}

// A node that dies holding an event leaves it to another node.
func TestNodeDiesMidDelivery(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	first := make(chan struct{})
	r := newReceiver(t, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hold := false
		once.Do(func() { hold = true; close(first) })
		if hold {
			<-release // the first attempt hangs until its node is gone
			w.WriteHeader(500)
			return
		}
		r.ServeHTTP(w, req)
	}))
	defer srv.Close()
	defer close(release)
	url := runNATS(t)
	ncA, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeID: "a", Endpoints: []Endpoint{endpoint(srv.URL)}, AllowPrivate: true, AckWait: time.Second,
		BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Timeout: time.Minute}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Start(ctx, ncA); err != nil {
		t.Fatal(err)
	}
	emit(t, a, UserOnline, 0)
	<-first
	ncA.Close() // node a is gone: its ack can never come
	cfg.NodeID = "b"
	startOutbox(t, url, cfg)
	waitFor(t, "delivered by b", 30*time.Second, func() bool { _, ok := r.counts(); return len(ok) == 1 })
	go a.Close()
}
