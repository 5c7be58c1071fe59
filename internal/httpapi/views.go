package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/recent"
)

// recentMsg is one entry of GET /v1/messages.
type recentMsg struct {
	ID      string   `json:"id"`
	At      string   `json:"at"`
	Node    string   `json:"node"`
	Offline bool     `json:"offline"`
	To      recentTo `json:"to"`
}

// recentTo summarises a recent push's targets.
type recentTo struct {
	Users int    `json:"users"`
	Conns int    `json:"conns"`
	Rooms int    `json:"rooms"`
	App   bool   `json:"app,omitempty"`
	All   bool   `json:"all,omitempty"`
	First string `json:"first,omitempty"`
}

// recentJSON is the API's shape of a recent push.
func recentJSON(e recent.Entry) recentMsg {
	return recentMsg{ID: e.ID, At: time.Unix(0, e.At).UTC().Format(time.RFC3339Nano), Node: e.Node, Offline: e.Offline,
		To: recentTo{Users: int(e.Users), Conns: int(e.Conns), Rooms: int(e.Rooms), App: e.App, All: e.All, First: e.First}}
}

// recentMessages answers GET /v1/messages: the app's pushes that the live
// nodes accepted lately (held in memory, recent.Size per node), newest
// first, paged by ?cursor= and ?limit=.
func (a *API) recentMessages(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	app, err := a.appFor(p, q.Get("app"))
	if err != nil {
		return err
	}
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	page, err := a.ops.Recent(ctx, app, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	list := make([]recentMsg, len(page.Msgs))
	for i, e := range page.Msgs {
		list[i] = recentJSON(e)
	}
	body := map[string]any{"messages": list}
	if page.Next != "" {
		body["next"] = page.Next
	}
	addPartial(body, page.Missing)
	writeJSON(w, 200, body)
	return nil
}

// limitParam reads ?limit= (absent: 0, the default page).
func limitParam(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > cluster.MaxPageSize {
		return 0, push.Errorf(push.CodeInvalidArgument, "limit must be from 1 to %d", cluster.MaxPageSize)
	}
	return n, nil
}

// statsHistory answers GET /v1/stats/history: the last 15 minutes of the
// counts, one point per 5-second slot summed over the live nodes, after
// ?since= (Unix milliseconds). Scoped like GET /v1/stats.
func (a *API) statsHistory(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	app := p.App
	if named := q.Get("app"); named != "" {
		var err error
		if app, err = a.appFor(p, named); err != nil {
			return err
		}
	}
	var since int64
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			return push.Errorf(push.CodeInvalidArgument, "since must be a time in Unix milliseconds")
		}
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	h, err := a.ops.History(ctx, app, since)
	if err != nil {
		return err
	}
	if h.Points == nil {
		h.Points = []history.Point{}
	}
	body := map[string]any{"interval": int(history.Interval / time.Second), "points": h.Points}
	addPartial(body, h.Missing)
	writeJSON(w, 200, body)
	return nil
}
