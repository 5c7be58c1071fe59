package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// hookEvents is a Pusher webhook receiver keeping every event it got.
type hookEvents struct {
	mu     sync.Mutex
	events []map[string]any
}

func (h *hookEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var wh struct {
		Events []map[string]any `json:"events"`
	}
	json.Unmarshal(body, &wh)
	h.mu.Lock()
	h.events = append(h.events, wh.Events...)
	h.mu.Unlock()
}

// of returns the events named name on channel.
func (h *hookEvents) of(name, channel string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, e := range h.events {
		if e["name"] == name && e["channel"] == channel {
			out = append(out, e)
		}
	}
	return out
}

// startPusherHooks starts a node whose shop app sends Pusher webhooks to
// a receiver, client_event ones with clientEvents, and a connection
// subscribed to private-chat.
func startPusherHooks(t *testing.T, clientEvents bool) (*node, *client, *hookEvents) {
	h := &hookEvents{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	n := startNode(t, func(c *config.Config) {
		sp := shopPusher
		sp.WebhookURL, sp.ClientEventWebhooks = srv.URL, clientEvents
		c.Apps = []config.App{{Name: "shop", APIKeys: []string{shopAPIKey}, TokenSecret: "shop-secret-0123456789", Pusher: &sp}}
	})
	a, aid := n.pusherConnect()
	a.subscribe("private-chat", channelAuth(shopPusher, aid, "private-chat"))
	a.event("pusher_internal:subscription_succeeded")
	return n, a, h
}

// Without pusher.client_event_webhooks a client event sends no webhook
// (and is not stored): the channel events around it arrive, in order.
func TestPusherClientEventWebhooksOff(t *testing.T) {
	_, a, h := startPusherHooks(t, false)
	a.send(`{"event":"client-typing","channel":"private-chat","data":{"who":"a"}}`)
	a.subscribe("later", "")
	a.event("pusher_internal:subscription_succeeded")
	waitFor(t, func() bool { return len(h.of("channel_occupied", "later")) == 1 })
	if len(h.of("channel_occupied", "private-chat")) != 1 || len(h.of("client_event", "private-chat")) != 0 {
		t.Fatalf("webhook events %v", h.events)
	}
}

// With it, client events are sent, data null as "null"; GET /v1/webhooks
// says the endpoint is Pusher-format.
func TestPusherClientEventWebhooksOn(t *testing.T) {
	n, a, h := startPusherHooks(t, true)
	a.send(`{"event":"client-typing","channel":"private-chat","data":null}`)
	waitFor(t, func() bool { return len(h.of("client_event", "private-chat")) == 1 })
	if ev := h.of("client_event", "private-chat")[0]; ev["data"] != "null" || ev["event"] != "client-typing" {
		t.Fatalf("client_event %v", ev)
	}
	status, out := n.call("GET", "/v1/webhooks", shopAPIKey, nil)
	eps, _ := out["endpoints"].([]any)
	if status != 200 || len(eps) != 1 || eps[0].(map[string]any)["format"] != "pusher" {
		t.Fatalf("GET /v1/webhooks: %d %v", status, out)
	}
}
