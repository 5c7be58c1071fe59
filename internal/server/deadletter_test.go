package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// TestWebhookDeadLetters: an event a receiver refuses for longer than
// webhook_retry_for is listed by GET /v1/webhooks/dead and, once the
// receiver is back, POST /v1/webhooks/dead/replay delivers it with the
// same webhook-id; GET /v1/webhooks and the herald_webhook_* metrics
// count each step.
func TestWebhookDeadLetters(t *testing.T) {
	var up atomic.Bool
	var mu sync.Mutex
	var ids []string // webhook-ids accepted
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if !up.Load() {
			w.WriteHeader(500)
			return
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	n := startNode(t, func(c *config.Config) {
		c.DevWebhooks = []config.Webhook{{URL: srv.URL, Secret: hookSecret, Events: []string{"user.online"}}}
		c.Limits.WebhookRetryFor = 500 * time.Millisecond
	})
	n.dial("app=demo&user=alice", dialOpt{})
	var dead []any
	waitFor(t, func() bool {
		status, out := n.call("GET", "/v1/webhooks/dead", "", nil)
		if status != 200 {
			t.Fatalf("GET /v1/webhooks/dead: %d %v", status, out)
		}
		dead, _ = out["events"].([]any)
		return len(dead) == 1
	})
	ev := dead[0].(map[string]any)
	if ev["type"] != "user.online" || ev["endpoint"] != srv.URL || !strings.Contains(ev["error"].(string), "500") ||
		!strings.Contains(mustJSON(ev["event"]), `"user":"alice"`) {
		t.Fatalf("dead letter %v", ev)
	}
	endpoint := func() map[string]any {
		status, out := n.call("GET", "/v1/webhooks", "", nil)
		eps, _ := out["endpoints"].([]any)
		if status != 200 || len(eps) != 1 {
			t.Fatalf("GET /v1/webhooks: %d %v", status, out)
		}
		return eps[0].(map[string]any)
	}
	// The dead letter is listed once stored; the endpoint's count follows.
	waitFor(t, func() bool { return endpoint()["dead"] == 1.0 })
	if ep := endpoint(); ep["url"] != srv.URL || ep["dead"] != 1.0 || ep["retried"].(float64) < 1 || ep["delivered"] != 0.0 {
		t.Fatalf("endpoint after the dead letter: %v", ep)
	}
	if status, out := n.call("GET", "/v1/webhooks/dead?cursor=x", "", nil); status != 400 {
		t.Fatalf("bad cursor: %d %v", status, out)
	}
	up.Store(true)
	status, out := n.call("POST", "/v1/webhooks/dead/replay", "", map[string]any{"ids": []string{ev["id"].(string)}})
	if status != 200 || out["replayed"] != 1.0 {
		t.Fatalf("replay: %d %v", status, out)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ids) == 1
	})
	if ids[0] != ev["id"] {
		t.Fatalf("replayed with webhook-id %q, want %q", ids[0], ev["id"])
	}
	waitFor(t, func() bool { return endpoint()["delivered"] == 1.0 })
	if _, out := n.call("GET", "/v1/webhooks/dead", "", nil); len(out["events"].([]any)) != 0 {
		t.Fatalf("still listed after the replay: %v", out)
	}
	// The sender counts a delivery once the receiver's answer is back,
	// which may be just after the receiver saw the event.
	wants := []string{"herald_webhook_events_queued_total{endpoint=", "herald_webhook_events_dead_total{endpoint=",
		"herald_webhook_events_delivered_total{endpoint=", "herald_webhook_retries_total{endpoint=",
		"herald_webhook_first_attempt_delay_seconds_count{endpoint="}
	counted := func(m, want string) bool {
		i := strings.Index(m, want)
		if i < 0 {
			return false
		}
		line := m[i : i+strings.IndexByte(m[i:], '\n')]
		return !strings.HasSuffix(line, " 0")
	}
	waitFor(t, func() bool {
		m := n.metrics()
		for _, want := range wants {
			if !counted(m, want) {
				return false
			}
		}
		return true
	})
}
