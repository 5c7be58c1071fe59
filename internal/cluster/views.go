package cluster

import (
	"context"
	"slices"
	"strings"

	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/recent"
	"github.com/heraldpush/herald/internal/webhook"
)

// The admin overview's cluster-wide views: the recent pushes each node
// holds in memory (package recent) and each node's last 15 minutes of
// counts (package history), merged by the node taking the call.
const (
	opRecent   = "recent"   // a page of the node's recent pushes of an app
	opHistory  = "history"  // the node's history points of an app
	opWebhooks = "webhooks" // the node's counts per webhook endpoint of an app
)

// Histories is what the history query needs of this node's sampler
// (*history.Sampler).
type Histories interface {
	Points(app string, since int64) []history.Point
}

var _ Histories = (*history.Sampler)(nil)

// SetHistory gives the operations this node's sampler; without one, a
// node answers no history. Call it before Start.
func (o *Ops) SetHistory(h Histories) { o.hist = h }

// RecentPage is one page of an app's recent pushes, newest first.
type RecentPage struct {
	Msgs []recent.Entry
	Next string // cursor of the next page; "" when this is the last
	// Missing names the listed nodes that did not answer in time: their
	// pushes are not listed.
	Missing []string
}

// Recent returns one page (at most limit: 0 is PageSize, above
// MaxPageSize CodeInvalidArgument) of the pushes of app that the live
// nodes accepted lately and hold in memory (recent.Size per app and
// node), newest first, after cursor.
func (o *Ops) Recent(ctx context.Context, app, cursor string, limit int) (RecentPage, error) {
	switch {
	case limit == 0:
		limit = PageSize
	case limit < 0 || limit > MaxPageSize:
		return RecentPage{}, push.Errorf(push.CodeInvalidArgument, "limit must be from 1 to %d", MaxPageSize)
	}
	key, err := recent.ParseCursor(cursor)
	if err != nil {
		return RecentPage{}, push.Errorf(push.CodeInvalidArgument, "cursor is not one a page of recent messages named")
	}
	answers, missing, err := o.queryAll(ctx, &request{Op: opRecent, App: app, Cursor: cursor, Limit: limit})
	if err != nil {
		return RecentPage{}, err
	}
	var all []recent.Entry
	more := false
	for _, a := range answers {
		all = append(all, a.Recent...)
		more = more || a.More
	}
	p := RecentPage{Missing: missing}
	p.Msgs, p.Next = recent.Merge(all, more, key, limit)
	if p.Msgs == nil {
		p.Msgs = []recent.Entry{}
	}
	return p, nil
}

func (o *Ops) localRecent(r *request) answer {
	key, err := recent.ParseCursor(r.Cursor)
	if err != nil {
		return answer{Err: "recent: bad cursor"}
	}
	list, more := o.svc.Recent(r.App, key, min(max(r.Limit, 1), MaxPageSize))
	for i := range list {
		list[i].Node = o.cfg.NodeID
	}
	return answer{Recent: list, More: more}
}

// History is the cluster's last 15 minutes of counts.
type History struct {
	Points []history.Point // summed over the nodes slot by slot, oldest first
	// Missing names the listed nodes that did not answer in time: their
	// counts are not in the sums.
	Missing []string
}

// History returns the live nodes' points of app ("": every app) after
// since (Unix milliseconds; 0: the whole window), summed per slot. A user
// connected to several nodes counts on each.
func (o *Ops) History(ctx context.Context, app string, since int64) (History, error) {
	answers, missing, err := o.queryAll(ctx, &request{Op: opHistory, App: app, Since: since})
	if err != nil {
		return History{}, err
	}
	lists := make([][]history.Point, len(answers))
	for i, a := range answers {
		lists[i] = a.History
	}
	return History{Points: history.Merge(lists...), Missing: missing}, nil
}

func (o *Ops) localHistory(r *request) answer {
	if o.hist == nil {
		return answer{}
	}
	return answer{History: o.hist.Points(r.App, r.Since)}
}

// Webhooks is what the webhook query needs of this node's lifecycle
// (*lifecycle.Lifecycle): its outbox's counts per endpoint.
type Webhooks interface {
	EndpointStats(ctx context.Context, app string) []webhook.EndpointStats
}

// SetWebhooks gives the operations this node's webhook counts; without
// them, a node answers none. Call it before Start.
func (o *Ops) SetWebhooks(w Webhooks) { o.hooks = w }

// WebhookStats are an app's webhook endpoints with the live nodes' counts.
type WebhookStats struct {
	// Endpoints, ordered by URL: queued, delivered, retried and dead are
	// summed over the nodes (each counts what it did since it started);
	// pending (read from the cluster-wide outbox) is the largest reading,
	// disabled true if any node saw it.
	Endpoints []webhook.EndpointStats
	// Missing names the listed nodes that did not answer in time.
	Missing []string
}

// Webhooks returns app's webhook endpoints ("": every app's) with their
// counts summed over the live nodes.
func (o *Ops) Webhooks(ctx context.Context, app string) (WebhookStats, error) {
	answers, missing, err := o.queryAll(ctx, &request{Op: opWebhooks, App: app})
	if err != nil {
		return WebhookStats{}, err
	}
	byID := map[string]*webhook.EndpointStats{}
	for _, a := range answers {
		for _, e := range a.Webhooks {
			m, ok := byID[e.ID]
			if !ok {
				m = &webhook.EndpointStats{ID: e.ID, App: e.App, URL: e.URL, Format: e.Format}
				byID[e.ID] = m
			}
			m.Queued += e.Queued
			m.Delivered += e.Delivered
			m.Retried += e.Retried
			m.Dead += e.Dead
			m.Pending = max(m.Pending, e.Pending)
			m.Disabled = m.Disabled || e.Disabled
		}
	}
	s := WebhookStats{Endpoints: make([]webhook.EndpointStats, 0, len(byID)), Missing: missing}
	for _, e := range byID {
		s.Endpoints = append(s.Endpoints, *e)
	}
	slices.SortFunc(s.Endpoints, func(a, b webhook.EndpointStats) int { return strings.Compare(a.URL+a.ID, b.URL+b.ID) })
	return s, nil
}

func (o *Ops) localWebhooks(r *request) answer {
	if o.hooks == nil {
		return answer{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.EngineTimeout)
	defer cancel()
	return answer{Webhooks: o.hooks.EndpointStats(ctx, r.App)}
}
