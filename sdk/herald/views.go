package herald

import (
	"context"
	"net/url"
	"strconv"
	"time"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
)

// RecentPage is one page of an app's recent pushes, newest first.
type RecentPage struct {
	Messages []RecentMessage
	// Next is the cursor of the next page; empty on the last.
	Next string
}

// RecentMessage is a push a live node accepted lately.
type RecentMessage struct {
	ID      string
	At      time.Time // when the node accepted it
	Node    string    // the node that accepted it
	Offline bool      // a stored push: MessageStatus reports it
	To      RecentTargets
}

// RecentTargets summarises a recent push's targets.
type RecentTargets struct {
	Users, Conns, Rooms int    // how many of each it named
	App, All            bool   // to the whole app, to every app
	First               string // the first it named: a user, else a conn, else a room
}

// RecentMessages returns the page after cursor ("" for the first; pass
// RecentPage.Next for the next) of the pushes the live nodes accepted
// lately and hold in memory (the last 200 per app and node; a node's
// restart empties its part), newest first, at most limit (0: 100; at
// most MaxPageSize).
func (c *Client) RecentMessages(ctx context.Context, cursor string, limit int) (*RecentPage, error) {
	return retry(ctx, c, true, func() (*RecentPage, error) { return c.t.recent(ctx, c.cfg.app, cursor, limit) })
}

// StatsHistory is the last 15 minutes of the cluster's counts.
type StatsHistory struct {
	Interval time.Duration // the width of a slot
	Points   []StatsPoint  // oldest first
}

// StatsPoint is one slot, summed over the live nodes: the counts at its
// end and the rates (per second) over it.
type StatsPoint struct {
	At                               time.Time
	Conns, Users                     int
	Pushes, Deliveries, Stored, Acks float64
	WebhookBacklog                   uint64 // webhook events not yet delivered
}

// StatsHistory returns the points after since (the zero time: all 15
// minutes): the app's for an app key, every app's for an admin key (or
// the WithApp app's).
func (c *Client) StatsHistory(ctx context.Context, since time.Time) (*StatsHistory, error) {
	var ms int64
	if !since.IsZero() {
		ms = since.UnixMilli()
	}
	return retry(ctx, c, true, func() (*StatsHistory, error) { return c.t.history(ctx, c.cfg.app, ms) })
}

// Operations of the views, as named in the HTTP transport's errors.
const (
	opRecent  = "recent_messages"
	opHistory = "stats_history"
)

type recentAnswer struct {
	Messages []struct {
		ID      string    `json:"id"`
		At      time.Time `json:"at"`
		Node    string    `json:"node"`
		Offline bool      `json:"offline"`
		To      struct {
			Users, Conns, Rooms int
			App, All            bool
			First               string
		} `json:"to"`
	} `json:"messages"`
	Next string `json:"next"`
}

func (t *httpTransport) recent(ctx context.Context, app, cursor string, limit int) (*RecentPage, error) {
	q := pageQuery(app, cursor)
	if limit != 0 {
		if q == nil {
			q = url.Values{}
		}
		q.Set("limit", strconv.Itoa(limit))
	}
	var in recentAnswer
	if err := t.call(ctx, opRecent, "GET", "/v1/messages", q, nil, &in); err != nil {
		return nil, err
	}
	out := &RecentPage{Next: in.Next, Messages: make([]RecentMessage, len(in.Messages))}
	for i, m := range in.Messages {
		out.Messages[i] = RecentMessage{ID: m.ID, At: m.At, Node: m.Node, Offline: m.Offline, To: RecentTargets(m.To)}
	}
	return out, nil
}

type historyAnswer struct {
	Interval int `json:"interval"`
	Points   []struct {
		At                               int64 `json:"at"`
		Conns, Users                     int
		Pushes, Deliveries, Stored, Acks float64
		Backlog                          uint64 `json:"webhook_backlog"`
	} `json:"points"`
}

func (t *httpTransport) history(ctx context.Context, app string, since int64) (*StatsHistory, error) {
	q := appQuery(app)
	if since != 0 {
		if q == nil {
			q = url.Values{}
		}
		q.Set("since", strconv.FormatInt(since, 10))
	}
	var in historyAnswer
	if err := t.call(ctx, opHistory, "GET", "/v1/stats/history", q, nil, &in); err != nil {
		return nil, err
	}
	out := &StatsHistory{Interval: time.Duration(in.Interval) * time.Second, Points: make([]StatsPoint, len(in.Points))}
	for i, p := range in.Points {
		out.Points[i] = StatsPoint{At: time.UnixMilli(p.At), Conns: p.Conns, Users: p.Users, Pushes: p.Pushes,
			Deliveries: p.Deliveries, Stored: p.Stored, Acks: p.Acks, WebhookBacklog: p.Backlog}
	}
	return out, nil
}

func (t *grpcTransport) recent(ctx context.Context, app, cursor string, limit int) (*RecentPage, error) {
	m, err := unary(ctx, t.key, t.c.ListRecentMessages, &heraldv1.ListRecentMessagesRequest{App: app, Cursor: cursor, Limit: int32(limit)})
	if err != nil {
		return nil, err
	}
	out := &RecentPage{Next: m.GetNext(), Messages: make([]RecentMessage, len(m.GetMessages()))}
	for i, r := range m.GetMessages() {
		out.Messages[i] = RecentMessage{ID: r.GetId(), At: r.GetAt().AsTime(), Node: r.GetNode(), Offline: r.GetOffline(),
			To: RecentTargets{Users: int(r.GetUsers()), Conns: int(r.GetConns()), Rooms: int(r.GetRooms()),
				App: r.GetToApp(), All: r.GetToAll(), First: r.GetFirst()}}
	}
	return out, nil
}

func (t *grpcTransport) history(ctx context.Context, app string, since int64) (*StatsHistory, error) {
	m, err := unary(ctx, t.key, t.c.GetStatsHistory, &heraldv1.GetStatsHistoryRequest{App: app, SinceMs: since})
	if err != nil {
		return nil, err
	}
	out := &StatsHistory{Interval: time.Duration(m.GetIntervalSeconds()) * time.Second, Points: make([]StatsPoint, len(m.GetPoints()))}
	for i, p := range m.GetPoints() {
		out.Points[i] = StatsPoint{At: p.GetAt().AsTime(), Conns: int(p.GetConns()), Users: int(p.GetUsers()), Pushes: p.GetPushes(),
			Deliveries: p.GetDeliveries(), Stored: p.GetStored(), Acks: p.GetAcks(), WebhookBacklog: p.GetWebhookBacklog()}
	}
	return out, nil
}
