package herald

import (
	"context"
	"encoding/json"
	"time"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
)

// DeadWebhook is a webhook event that ran out of retries
// (docs/webhooks.md#delivery-retries-dead-letters).
type DeadWebhook struct {
	Seq      uint64          `json:"seq"`      // its position in the list
	ID       string          `json:"id"`       // its webhook-id
	Type     string          `json:"type"`     // e.g. "user.online"
	Endpoint string          `json:"endpoint"` // the URL
	Error    string          `json:"error"`    // the last attempt's outcome
	Attempts int             `json:"attempts"` // by the last node that tried
	Failed   time.Time       `json:"failed"`
	Event    json.RawMessage `json:"event"` // the body that was posted
}

// DeadWebhookPage is one page of the dead-letter list.
type DeadWebhookPage struct {
	Events []DeadWebhook `json:"events"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next"`
}

// DeadWebhooks returns the page of the app's dead-lettered webhook events
// after cursor ("" for the first page; pass DeadWebhookPage.Next for the
// next), oldest first.
func (c *Client) DeadWebhooks(ctx context.Context, cursor string) (*DeadWebhookPage, error) {
	return retry(ctx, c, true, func() (*DeadWebhookPage, error) { return c.t.deadWebhooks(ctx, c.cfg.app, cursor) })
}

// ReplayDeadWebhooks sends the app's dead-lettered events with these
// webhook-ids (every one if ids is empty) to their endpoints again and
// removes them from the list; it returns how many it sent. Ids not in the
// list are skipped, so a retried call sends nothing twice.
func (c *Client) ReplayDeadWebhooks(ctx context.Context, ids []string) (int, error) {
	return retry(ctx, c, len(ids) > 0, func() (int, error) { return c.t.replayDeadWebhooks(ctx, c.cfg.app, ids) })
}

func (t *httpTransport) deadWebhooks(ctx context.Context, app, cursor string) (*DeadWebhookPage, error) {
	var out DeadWebhookPage
	if err := t.call(ctx, opDeadWebhooks, "GET", "/v1/webhooks/dead", pageQuery(app, cursor), nil, &out); err != nil {
		return nil, err
	}
	if out.Events == nil {
		out.Events = []DeadWebhook{}
	}
	return &out, nil
}

func (t *httpTransport) replayDeadWebhooks(ctx context.Context, app string, ids []string) (int, error) {
	in := struct {
		App string   `json:"app,omitempty"`
		IDs []string `json:"ids"`
	}{app, ids}
	var out struct {
		Replayed int `json:"replayed"`
	}
	if err := t.call(ctx, opReplayDeadWebhooks, "POST", "/v1/webhooks/dead/replay", nil, in, &out); err != nil {
		return 0, err
	}
	return out.Replayed, nil
}

func (t *grpcTransport) deadWebhooks(ctx context.Context, app, cursor string) (*DeadWebhookPage, error) {
	m, err := unary(ctx, t.key, t.c.ListDeadWebhooks, &heraldv1.ListDeadWebhooksRequest{Cursor: cursor, App: app})
	if err != nil {
		return nil, err
	}
	out := &DeadWebhookPage{Next: m.GetNext(), Events: make([]DeadWebhook, len(m.GetEvents()))}
	for i, e := range m.GetEvents() {
		out.Events[i] = DeadWebhook{Seq: e.GetSeq(), ID: e.GetId(), Type: e.GetType(), Endpoint: e.GetEndpoint(),
			Error: e.GetError(), Attempts: int(e.GetAttempts()), Failed: e.GetFailed().AsTime(), Event: json.RawMessage(e.GetEvent())}
	}
	return out, nil
}

func (t *grpcTransport) replayDeadWebhooks(ctx context.Context, app string, ids []string) (int, error) {
	m, err := unary(ctx, t.key, t.c.ReplayDeadWebhooks, &heraldv1.ReplayDeadWebhooksRequest{Ids: ids, App: app})
	if err != nil {
		return 0, err
	}
	return int(m.GetReplayed()), nil
}
