package server

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNoAckWithoutRecord: an offline push whose status record cannot be
// written is not acknowledged (503), and nothing of it stays stored: its
// status is not found and the user never receives it. Single pushes and
// batches alike. The records' stream is made to refuse writes (a real
// NATS server with a message limit), then allowed again.
func TestNoAckWithoutRecord(t *testing.T) {
	ns, _ := natsOnFreePort(t)
	n := startNode(t, func(c *config.Config) {
		c.NATSURL = ns.ClientURL()
		c.Limits.EngineTimeout = time.Second // how long a refused record is retried
	})
	first := n.offline("", "recorded", "rita")

	js := jetStreamAt(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	records := recordsStream(ctx, t, js)
	limit := func(max int64) {
		t.Helper()
		cfg := records.CachedInfo().Config
		cfg.MaxMsgs, cfg.Discard = max, jetstream.DiscardNew
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	info, err := records.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	limit(int64(info.State.Msgs)) // full: the next record is refused

	status, out := n.call("POST", "/v1/push", "", map[string]any{"to": map[string]any{"users": []string{"rita"}},
		"data": "unrecorded", "offline": true, "id": "lost-1"})
	if status != 503 || errCode(out) != "unavailable" {
		t.Fatalf("single push without its record: %d %v, want 503 unavailable", status, out)
	}
	status, out = n.call("POST", "/v1/push/batch", "", map[string]any{"items": []any{
		map[string]any{"to": map[string]any{"users": []string{"rita"}}, "data": "unrecorded", "offline": true, "id": "lost-2"},
		map[string]any{"to": map[string]any{"users": []string{"sam"}}, "data": "unrecorded", "offline": true, "id": "lost-3"},
	}})
	if status != 200 {
		t.Fatalf("batch: %d %v", status, out)
	}
	for i, r := range out["results"].([]any) {
		if e, _ := r.(map[string]any)["error"].(map[string]any); e == nil || e["code"] != "unavailable" {
			t.Errorf("batch item %d without its record: %v, want an unavailable error", i, r)
		}
	}
	for _, id := range []string{"lost-1", "lost-2", "lost-3"} {
		if status, _ := n.call("GET", "/v1/messages/"+id, "", nil); status != 404 {
			t.Errorf("status of unacknowledged %s: %d, want 404", id, status)
		}
	}

	limit(-1)
	again := n.offline("", "recorded again", "rita")
	for _, id := range []string{first, again} {
		if status, out := n.call("GET", "/v1/messages/"+id, "", nil); status != 200 || out["targeted"] != float64(1) {
			t.Errorf("status of %s: %d %v", id, status, out)
		}
	}
	// rita gets exactly the two acknowledged messages.
	c := n.dial("user=rita&since=0", dialOpt{noAuto: true})
	c.expect("welcome")
	var got []string
	for len(got) < 2 {
		for _, m := range c.expect("push")["msgs"].([]any) {
			got = append(got, mustJSON(m.(map[string]any)["data"]))
		}
	}
	if len(got) != 2 || got[0] != `"recorded"` || got[1] != `"recorded again"` {
		t.Fatalf("rita's stored messages: %v", got)
	}
	c.expect("resumed")
}

// jetStreamAt connects to the NATS server at url until the test ends.
func jetStreamAt(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// recordsStream finds the stream of the message-status bucket.
func recordsStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(ctx, "KV_HERALD_MSG")
	if err != nil {
		t.Fatalf("records stream: %v", err)
	}
	return s
}
