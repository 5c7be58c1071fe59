package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Target names a push's recipients; set at least one.
type Target struct {
	Users []string `json:"users,omitempty"` // every connection of these users
	Conns []string `json:"conns,omitempty"` // these connections
	Rooms []string `json:"rooms,omitempty"` // every connection in these rooms
	App   bool     `json:"app,omitempty"`   // every connection of the app
	All   bool     `json:"all,omitempty"`   // every connection of every app (admin keys)
}

// PushRequest is one push (docs/api.md#post-v1push).
type PushRequest struct {
	To Target
	// Data is the payload: any value encoding/json encodes; a
	// json.RawMessage is sent as it is.
	Data any
	// Offline stores the message in the inbox of each of To.Users, with
	// the user's next sequence number, before the push is answered.
	Offline bool
	// TTL is how long a stored message lives, in whole seconds (a fraction
	// counts as a second); 0 means the app default.
	TTL time.Duration
	// ID is the message id and idempotency key. Empty: the Client makes
	// one (see WithAutoID), or else the server does.
	ID string
	// App is the app to push to, for admin keys; empty: the Client's
	// (WithApp).
	App string
	// Event names the message: the event name Pusher clients (pusher-js,
	// Laravel Echo) receive it as, also carried to Herald clients as
	// Message.Event. Empty: "message".
	Event string
}

// pushBody is a push on the wire.
type pushBody struct {
	App     string          `json:"app,omitempty"`
	To      Target          `json:"to"`
	Data    json.RawMessage `json:"data"`
	TTL     int64           `json:"ttl,omitempty"`
	Offline bool            `json:"offline,omitempty"`
	ID      string          `json:"id,omitempty"`
	Event   string          `json:"event,omitempty"`
}

func (c *Client) pushBody(p *PushRequest) (*pushBody, error) {
	data, ok := p.Data.(json.RawMessage)
	if !ok {
		var err error
		if data, err = json.Marshal(p.Data); err != nil {
			return nil, fmt.Errorf("herald: encoding push data: %w", err)
		}
	}
	b := &pushBody{App: p.App, To: p.To, Data: data, Offline: p.Offline, ID: p.ID, Event: p.Event}
	if b.App == "" {
		b.App = c.cfg.app
	}
	if b.ID == "" && c.cfg.autoID {
		b.ID = newID()
	}
	if p.TTL > 0 {
		b.TTL = int64((p.TTL + time.Second - 1) / time.Second)
	} else if p.TTL < 0 {
		b.TTL = min(-1, int64(p.TTL/time.Second)) // refused by the server, as it should be
	}
	return b, nil
}

// Push pushes one message and returns its id. A push with an id (the
// Client gives one by default) is retried on network errors and 503.
func (c *Client) Push(ctx context.Context, p PushRequest) (string, error) {
	b, err := c.pushBody(&p)
	if err != nil {
		return "", err
	}
	return retry(ctx, c, b.ID != "", func() (string, error) { return c.t.push(ctx, b) })
}

type pushAnswer struct {
	ID string `json:"id"`
}

// BatchResult is the outcome of one item of a batch: its id, or why it
// was refused (an *Error with Status 0).
type BatchResult struct {
	ID  string
	Err *Error
}

// Batch pushes up to the server's max_batch (1,000) items in one request
// and returns one result per item, in order. The error is for the request
// as a whole. A batch whose items all carry ids is retried like a push.
func (c *Client) Batch(ctx context.Context, items []PushRequest) ([]BatchResult, error) {
	batch, idempotent := make([]*pushBody, len(items)), true
	for i := range items {
		b, err := c.pushBody(&items[i])
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		batch[i] = b
		idempotent = idempotent && b.ID != ""
	}
	out, err := retry(ctx, c, idempotent, func() ([]batchResult, error) { return c.t.batch(ctx, batch) })
	if err != nil {
		return nil, err
	}
	if len(out) != len(items) {
		return nil, fmt.Errorf("herald: batch of %d items answered with %d results", len(items), len(out))
	}
	res := make([]BatchResult, len(items))
	for i, r := range out {
		res[i].ID = r.ID
		if r.Error != nil {
			res[i].Err = &Error{Code: r.Error.Code, Message: r.Error.Message}
		}
	}
	return res, nil
}

type batchAnswer struct {
	Results []batchResult `json:"results"`
}

type batchResult struct {
	ID    string     `json:"id"`
	Error *errorItem `json:"error"`
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Members names the connections a room call acts on: every connection of
// Users, and Conns.
type Members struct {
	Users []string
	Conns []string
}

// JoinRoom puts connections in a room; each one that was not in it gets a
// joined frame. Unknown users and connections are skipped.
func (c *Client) JoinRoom(ctx context.Context, room string, m Members) error {
	return c.do(ctx, true, func() error { return c.t.joinRoom(ctx, c.cfg.app, room, m) })
}

// LeaveRoom takes connections out of a room; each one that was in it gets
// a left frame.
func (c *Client) LeaveRoom(ctx context.Context, room string, m Members) error {
	return c.do(ctx, true, func() error { return c.t.leaveRoom(ctx, c.cfg.app, room, m) })
}

// RoomInfo is one page of a room's members, with the room's totals.
type RoomInfo struct {
	Room    string   `json:"room"`
	Conns   int      `json:"conns"`
	Users   int      `json:"users"`
	Members []Member `json:"members"`
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next"`
}

// Member is one connection in a room.
type Member struct {
	Conn string `json:"conn"`
	User string `json:"user"`
}

// Room returns a room's totals and the page of its members after cursor
// ("" for the first page; pass RoomInfo.Next for the next). An unknown room
// is an empty one.
func (c *Client) Room(ctx context.Context, room, cursor string) (*RoomInfo, error) {
	return retry(ctx, c, true, func() (*RoomInfo, error) { return c.t.room(ctx, c.cfg.app, room, cursor) })
}

// PresencePage is one page of the users present in a presence room,
// cluster-wide.
type PresencePage struct {
	Room  string   `json:"room"`
	Users []string `json:"users"` // sorted
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next"`
}

// Presence returns the page of the users present in a presence room (one
// matching the server's presence_rooms) after cursor ("" for the first
// page; pass PresencePage.Next for the next). A room that is not a
// presence room is an *Error with code invalid_argument.
func (c *Client) Presence(ctx context.Context, room, cursor string) (*PresencePage, error) {
	return retry(ctx, c, true, func() (*PresencePage, error) { return c.t.presence(ctx, c.cfg.app, room, cursor) })
}

// UserInfo is a user's live connections on every node: all of them from
// User, one page from UserPage.
type UserInfo struct {
	User   string `json:"user"`
	Online bool   `json:"online"`
	// Count is how many connections the user has, cluster-wide.
	Count int        `json:"count"`
	Conns []ConnInfo `json:"conns"` // ordered by ID
	// Next is the cursor of the next page; empty on the last.
	Next string `json:"next"`
}

// ConnInfo is one live connection.
type ConnInfo struct {
	ID     string    `json:"id"`
	Node   string    `json:"node"`
	Device string    `json:"device"`
	Addr   string    `json:"addr"`
	Since  time.Time `json:"since"`
	Rooms  []string  `json:"rooms"`
}

// MaxPageSize is the largest limit UserPage accepts.
const MaxPageSize = 1000

// User returns every connection of a user, reading page after page of
// MaxPageSize; an unknown or offline user is not an error (Online is
// false). Connections made or closed while it reads may be missed or
// included; none is listed twice.
func (c *Client) User(ctx context.Context, user string) (*UserInfo, error) {
	all, err := c.UserPage(ctx, user, "", MaxPageSize)
	for err == nil && all.Next != "" {
		var page *UserInfo
		if page, err = c.UserPage(ctx, user, all.Next, MaxPageSize); err == nil {
			if page.Next != "" && page.Next <= all.Next {
				return nil, fmt.Errorf("herald: user %q: page cursor %q does not advance", user, page.Next)
			}
			all.Conns = append(all.Conns, page.Conns...)
			all.Online, all.Count, all.Next = page.Online || len(all.Conns) > 0, page.Count, page.Next
		}
	}
	if err != nil {
		return nil, err
	}
	return all, nil
}

// UserPage returns the page of a user's connections after cursor ("" for
// the first page; pass UserInfo.Next for the next), at most limit of them
// (0: the server's default, 100; at most MaxPageSize), with the user's
// total in Count.
func (c *Client) UserPage(ctx context.Context, user, cursor string, limit int) (*UserInfo, error) {
	return retry(ctx, c, true, func() (*UserInfo, error) { return c.t.user(ctx, c.cfg.app, user, cursor, limit) })
}

// KickConn closes one connection (the client gets close code 4002). An
// unknown connection is an *Error with code not_found. Kicks are not
// retried: a repeat would answer not_found.
func (c *Client) KickConn(ctx context.Context, id string) error {
	return c.do(ctx, false, func() error { return c.t.kickConn(ctx, c.cfg.app, id) })
}

// KickUser closes every connection of a user; a user with none is an
// *Error with code not_found.
func (c *Client) KickUser(ctx context.Context, user string) error {
	return c.do(ctx, false, func() error { return c.t.kickUser(ctx, c.cfg.app, user) })
}

// MessageStatus is where a stored push is (docs/api.md#get-v1messagesid).
type MessageStatus struct {
	ID        string
	Created   time.Time
	TTL       time.Duration
	Targeted  int  // users it was stored for
	Delivered int  // users whose live connection got it
	Acked     int  // users who acked it
	Expired   int  // users who had not acked it when it expired
	Dropped   int  // users whose inbox dropped it unacked (the per-user cap)
	Recalled  bool // recalled with Recall
	// Users is the per-user detail, for up to 100 targeted users.
	Users []UserStatus
}

// UserStatus is one targeted user's view of a stored message.
type UserStatus struct {
	User      string `json:"user"`
	Seq       uint64 `json:"seq"`
	Delivered bool   `json:"delivered"`
	Acked     bool   `json:"acked"`
}

// MessageStatus returns the status of a stored (offline) push. An unknown
// id, or a live push, is an *Error with code not_found.
func (c *Client) MessageStatus(ctx context.Context, id string) (*MessageStatus, error) {
	w, err := retry(ctx, c, true, func() (*messageAnswer, error) { return c.t.message(ctx, c.cfg.app, id) })
	if err != nil {
		return nil, err
	}
	return &MessageStatus{ID: w.ID, Created: w.Created, TTL: time.Duration(w.TTL) * time.Second, Targeted: w.Targeted,
		Delivered: w.Delivered, Acked: w.Acked, Expired: w.Expired, Dropped: w.Dropped, Recalled: w.Recalled, Users: w.Users}, nil
}

type messageAnswer struct {
	ID        string       `json:"id"`
	Created   time.Time    `json:"created"`
	TTL       int64        `json:"ttl"` // seconds
	Targeted  int          `json:"targeted"`
	Delivered int          `json:"delivered"`
	Acked     int          `json:"acked"`
	Expired   int          `json:"expired"`
	Dropped   int          `json:"dropped"`
	Recalled  bool         `json:"recalled"`
	Users     []UserStatus `json:"users"`
}

// Recall withdraws a stored message from every inbox it is in; online
// connections of its users get a recall frame. Recalling again is allowed,
// so Recall is retried like a query.
func (c *Client) Recall(ctx context.Context, id string) error {
	return c.do(ctx, true, func() error { return c.t.recall(ctx, c.cfg.app, id) })
}

// Stats are the live counts of the cluster's nodes and their counters
// since they started, summed: the app's for an app key, every app's for
// an admin key.
type Stats struct {
	Nodes      int   `json:"nodes"` // the live nodes that answered, whose counts are summed
	Conns      int   `json:"conns"`
	Users      int   `json:"users"`
	Rooms      int   `json:"rooms"`
	Pushes     int64 `json:"pushes"`
	Deliveries int64 `json:"deliveries"`
}

// Stats returns the cluster's counts.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	return retry(ctx, c, true, func() (*Stats, error) { return c.t.stats(ctx) })
}

// Node is one live node of the cluster.
type Node struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr"`
	Conns     int       `json:"conns"`
	Load      float64   `json:"load"` // connections ÷ the connections it can hold
	Version   string    `json:"version"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Nodes lists the live nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	return retry(ctx, c, true, func() ([]Node, error) { return c.t.nodes(ctx) })
}

type nodesAnswer struct {
	Nodes []Node `json:"nodes"`
}

// Route is where a client should connect: the least-loaded live node.
type Route struct {
	Node string  `json:"node"`
	URL  string  `json:"url"` // its WebSocket URL
	Load float64 `json:"load"`
}

// Route returns the least-loaded live node's WebSocket URL.
func (c *Client) Route(ctx context.Context) (*Route, error) {
	return retry(ctx, c, true, func() (*Route, error) { return c.t.route(ctx) })
}

// DrainResult answers a drain.
type DrainResult struct {
	Node  string        // the node that drains
	Conns int           // the connections it is about to close
	Time  time.Duration // over how long; 0 when it was draining already
	// Already is true when the node was draining already: nothing changed.
	Already bool
}

type drainAnswer struct {
	Node      string `json:"node"`
	Conns     int    `json:"conns"`
	DrainTime string `json:"drain_time"`
	Already   bool   `json:"already"`
}

// Drain drains the node that takes the call (admin keys only): it refuses
// new connections, leaves the node list and route, closes its clients with
// 4000 (they reconnect elsewhere) spread over the time over (0: the
// node's drain_time), then exits (docs/api.md#post-v1admindrain).
func (c *Client) Drain(ctx context.Context, over time.Duration) (*DrainResult, error) {
	w, err := retry(ctx, c, true, func() (*drainAnswer, error) { return c.t.drain(ctx, over) })
	if err != nil {
		return nil, err
	}
	res := &DrainResult{Node: w.Node, Conns: w.Conns, Already: w.Already}
	if w.DrainTime != "" {
		if res.Time, err = time.ParseDuration(w.DrainTime); err != nil {
			return nil, fmt.Errorf("herald: the drain answer's drain_time: %w", err)
		}
	}
	return res, nil
}
