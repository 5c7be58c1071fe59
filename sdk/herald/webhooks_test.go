package herald_test

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
	"github.com/heraldpush/herald/sdk/herald"
)

// TestDeadWebhooks: over each API transport, an event its receiver refused
// past retry_for is listed by DeadWebhooks and, once the receiver answers,
// ReplayDeadWebhooks sends it again with its webhook-id and takes it off
// the list.
func TestDeadWebhooks(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			var up atomic.Bool
			var mu sync.Mutex
			var got []string // webhook-ids accepted
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if !up.Load() {
					w.WriteHeader(500)
					return
				}
				mu.Lock()
				got = append(got, r.Header.Get("webhook-id"))
				mu.Unlock()
				w.WriteHeader(204)
			}))
			t.Cleanup(srv.Close)
			n := startNode(t, func(c *config.Config) {
				c.AllowPrivateWebhooks = true
				c.Apps[0].Webhooks = []config.Webhook{{URL: srv.URL, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
					Events: []string{"user.online"}}}
				c.Limits.WebhookRetryFor = 500 * time.Millisecond
			})
			n.via = tr
			cl := n.client(apiKey)
			n.dial("alice")
			var page *herald.DeadWebhookPage
			waitFor(t, "a dead letter", func() bool {
				var err error
				if page, err = cl.DeadWebhooks(ctx(t), ""); err != nil {
					t.Fatal(err)
				}
				return len(page.Events) == 1
			})
			ev := page.Events[0]
			if ev.Type != "user.online" || ev.Endpoint != srv.URL || !strings.Contains(ev.Error, "500") || ev.Attempts < 1 ||
				ev.Failed.IsZero() || !strings.Contains(string(ev.Event), `"user":"alice"`) || page.Next != "" {
				t.Fatalf("dead letter %+v (next %q)", ev, page.Next)
			}
			if _, err := cl.DeadWebhooks(ctx(t), "x"); apiError(t, err).Code != herald.CodeInvalidArgument {
				t.Fatalf("bad cursor: %v", err)
			}
			up.Store(true)
			replayed, err := cl.ReplayDeadWebhooks(ctx(t), []string{ev.ID, "evt_unknown"})
			if err != nil || replayed != 1 {
				t.Fatalf("replay: %d, %v", replayed, err)
			}
			waitFor(t, "the replayed event", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) == 1
			})
			if got[0] != ev.ID {
				t.Fatalf("replayed with webhook-id %q, want %q", got[0], ev.ID)
			}
			if page, err := cl.DeadWebhooks(ctx(t), ""); err != nil || len(page.Events) != 0 {
				t.Fatalf("after the replay: %+v, %v", page, err)
			}
		})
	}
}
