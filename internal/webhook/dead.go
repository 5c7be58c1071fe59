package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeadEvent is an event that ran out of retries.
type DeadEvent struct {
	Seq      uint64          `json:"seq"` // its position in the dead-letter list
	ID       string          `json:"id"`  // the webhook-id
	Type     string          `json:"type"`
	Endpoint string          `json:"endpoint"` // the URL
	Error    string          `json:"error"`    // the last attempt's outcome
	Attempts int             `json:"attempts"` // by the last node that tried
	Failed   time.Time       `json:"failed"`
	Event    json.RawMessage `json:"event"` // the body that was posted
}

// Dead lists app's dead-lettered events after seq (0: from the first), at
// most limit, and the seq to continue from (0 on the last page).
func (o *Outbox) Dead(ctx context.Context, app string, after uint64, limit int) ([]DeadEvent, uint64, error) {
	if o.deadStream == nil {
		return nil, 0, ErrNotStarted
	}
	out := []DeadEvent{}
	seq := after + 1
	for {
		m, err := o.deadStream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("hrl.wh.d."+tok(app)+".*"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("webhook: reading dead letters: %w", err)
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		n, _ := strconv.Atoi(m.Header.Get(hdrAttempts))
		out = append(out, DeadEvent{Seq: m.Sequence, ID: m.Header.Get(hdrEventID), Type: m.Header.Get(hdrType),
			Endpoint: m.Header.Get(hdrEndpoint), Error: m.Header.Get(hdrError), Attempts: n,
			Failed: m.Time, Event: json.RawMessage(m.Data)})
		seq = m.Sequence + 1
	}
}

// Replay sends app's dead-lettered events (those with the given ids; all
// if ids is empty) to their endpoints again, with the same webhook-id, and
// removes them from the list. It returns how many were replayed.
func (o *Outbox) Replay(ctx context.Context, app string, ids []string) (int, error) {
	if o.deadStream == nil {
		return 0, ErrNotStarted
	}
	n := 0
	var after uint64
	for {
		page, next, err := o.Dead(ctx, app, after, 100)
		if err != nil {
			return n, err
		}
		for _, d := range page {
			if len(ids) > 0 && !slices.Contains(ids, d.ID) {
				continue
			}
			m, err := o.deadStream.GetMsg(ctx, d.Seq)
			if err != nil {
				return n, fmt.Errorf("webhook: reading dead letter %d: %w", d.Seq, err)
			}
			epID := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
			if o.byID[epID] == nil {
				continue // the endpoint is no longer configured
			}
			r := &nats.Msg{Subject: replaySubject(epID), Data: m.Data, Header: nats.Header{}}
			r.Header.Set(hdrEventID, d.ID)
			r.Header.Set(hdrType, d.Type)
			if _, err := o.js.PublishMsg(ctx, r, jetstream.WithMsgID(d.ID+".replay."+strconv.FormatUint(d.Seq, 10))); err != nil {
				return n, fmt.Errorf("webhook: replaying %s: %w", d.ID, err)
			}
			if err := o.deadStream.DeleteMsg(ctx, d.Seq); err != nil {
				return n, fmt.Errorf("webhook: removing dead letter %d: %w", d.Seq, err)
			}
			n++
		}
		if next == 0 {
			return n, nil
		}
		after = next
	}
}

// EndpointStats is what the outbox did for one endpoint since this node
// started (Disabled is cluster-wide).
type EndpointStats struct {
	ID        string `json:"id"`
	App       string `json:"app"`
	URL       string `json:"url"`
	Format    string `json:"format"` // "pusher" (Pusher-format) or "standard"
	Queued    uint64 `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Retried   uint64 `json:"retried"` // failed attempts followed by a retry; Pusher-format: of batches
	Dead      uint64 `json:"dead"`
	Pending   uint64 `json:"pending"` // in the outbox, not yet delivered (cluster-wide)
	Disabled  bool   `json:"disabled"`
}

// Stats reports the endpoints of app ("" for all).
func (o *Outbox) Stats(ctx context.Context, app string) []EndpointStats {
	var out []EndpointStats
	for _, s := range o.senders {
		if app != "" && s.ep.App != app {
			continue
		}
		st := EndpointStats{ID: s.id, App: s.ep.App, URL: s.ep.URL, Format: "standard", Queued: s.queued.Load(),
			Delivered: s.delivered.Load(), Retried: s.retried.Load(), Dead: s.dead.Load(), Disabled: s.disabled.Load()}
		if s.ep.Pusher() {
			st.Format = "pusher"
		}
		if s.cons != nil {
			if info, err := s.cons.Info(ctx); err == nil {
				st.Pending = info.NumPending + uint64(info.NumAckPending)
				st.Disabled = st.Disabled || info.Paused
			}
		}
		out = append(out, st)
	}
	return out
}
