package cluster

import (
	"context"

	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/recent"
)

// The admin overview's cluster-wide views: the recent pushes each node
// holds in memory (package recent) and each node's last 15 minutes of
// counts (package history), merged by the node taking the call.
const (
	opRecent  = "recent"  // a page of the node's recent pushes of an app
	opHistory = "history" // the node's history points of an app
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
