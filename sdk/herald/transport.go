package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// transport carries the server API's operations to the server and their
// answers back, one typed method per operation. The HTTP transport maps
// each to its v1 endpoint; the gRPC one to its HeraldService method. app
// is the app an admin key acts on ("" for the key's own).
type transport interface {
	push(ctx context.Context, b *pushBody) (string, error)
	batch(ctx context.Context, items []*pushBody) ([]batchResult, error)
	joinRoom(ctx context.Context, app, room string, m Members) error
	leaveRoom(ctx context.Context, app, room string, m Members) error
	room(ctx context.Context, app, room, cursor string) (*RoomInfo, error)
	presence(ctx context.Context, app, room, cursor string) (*PresencePage, error)
	user(ctx context.Context, app, user, cursor string, limit int) (*UserInfo, error)
	kickConn(ctx context.Context, app, id string) error
	kickUser(ctx context.Context, app, user string) error
	message(ctx context.Context, app, id string) (*messageAnswer, error)
	recall(ctx context.Context, app, id string) error
	stats(ctx context.Context) (*Stats, error)
	nodes(ctx context.Context) ([]Node, error)
	route(ctx context.Context) (*Route, error)
	drain(ctx context.Context, over time.Duration) (*drainAnswer, error)
	recent(ctx context.Context, app, cursor string, limit int) (*RecentPage, error)
	history(ctx context.Context, app string, since int64) (*StatsHistory, error)
	deadWebhooks(ctx context.Context, app, cursor string) (*DeadWebhookPage, error)
	replayDeadWebhooks(ctx context.Context, app string, ids []string) (int, error)
}

// Operations of the server API, as named in the HTTP transport's errors.
const (
	opPush          = "push"
	opBatch         = "batch"
	opJoinRoom      = "join_room"
	opLeaveRoom     = "leave_room"
	opRoom          = "room"
	opUser          = "user"
	opKickConn      = "kick_conn"
	opKickUser      = "kick_user"
	opMessageStatus = "message_status"
	opRecall        = "recall"
	opStats         = "stats"
	opNodes         = "nodes"
	opRoute         = "route"
	opDrain         = "drain"
	opPresence      = "presence"
	// The dead-letter list of webhooks.
	opDeadWebhooks       = "dead_webhooks"
	opReplayDeadWebhooks = "replay_dead_webhooks"
)

// httpTransport is the v1 HTTP/JSON API.
type httpTransport struct {
	hc   *http.Client
	base string // scheme://host[:port][/prefix], no trailing slash
	key  string
}

var _ transport = (*httpTransport)(nil)

// appQuery is the query naming app; nil for the key's own.
func appQuery(app string) url.Values {
	if app == "" {
		return nil
	}
	return url.Values{"app": {app}}
}

// membersBody is the body of a join or leave.
type membersBody struct {
	App   string   `json:"app,omitempty"`
	Users []string `json:"users,omitempty"`
	Conns []string `json:"conns,omitempty"`
}

func (t *httpTransport) push(ctx context.Context, b *pushBody) (string, error) {
	var out pushAnswer
	if err := t.call(ctx, opPush, "POST", "/v1/push", nil, b, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

func (t *httpTransport) batch(ctx context.Context, items []*pushBody) ([]batchResult, error) {
	var out batchAnswer
	in := struct {
		Items []*pushBody `json:"items"`
	}{items}
	if err := t.call(ctx, opBatch, "POST", "/v1/push/batch", nil, in, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

func (t *httpTransport) joinRoom(ctx context.Context, app, room string, m Members) error {
	return t.call(ctx, opJoinRoom, "POST", "/v1/rooms/"+url.PathEscape(room)+"/join", nil, membersBody{app, m.Users, m.Conns}, nil)
}

func (t *httpTransport) leaveRoom(ctx context.Context, app, room string, m Members) error {
	return t.call(ctx, opLeaveRoom, "POST", "/v1/rooms/"+url.PathEscape(room)+"/leave", nil, membersBody{app, m.Users, m.Conns}, nil)
}

func (t *httpTransport) room(ctx context.Context, app, room, cursor string) (*RoomInfo, error) {
	var out RoomInfo
	if err := t.call(ctx, opRoom, "GET", "/v1/rooms/"+url.PathEscape(room), pageQuery(app, cursor), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *httpTransport) presence(ctx context.Context, app, room, cursor string) (*PresencePage, error) {
	var out PresencePage
	if err := t.call(ctx, opPresence, "GET", "/v1/rooms/"+url.PathEscape(room)+"/presence", pageQuery(app, cursor), nil, &out); err != nil {
		return nil, err
	}
	if out.Users == nil {
		out.Users = []string{}
	}
	return &out, nil
}

// pageQuery is the query of a paged read: the app an admin key acts on
// and the cursor, each when set.
func pageQuery(app, cursor string) url.Values {
	q := appQuery(app)
	if cursor != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("cursor", cursor)
	}
	return q
}

func (t *httpTransport) user(ctx context.Context, app, user, cursor string, limit int) (*UserInfo, error) {
	q := appQuery(app)
	if cursor != "" || limit != 0 {
		if q == nil {
			q = url.Values{}
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if limit != 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
	}
	var out UserInfo
	if err := t.call(ctx, opUser, "GET", "/v1/users/"+url.PathEscape(user), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *httpTransport) kickConn(ctx context.Context, app, id string) error {
	return t.call(ctx, opKickConn, "DELETE", "/v1/conns/"+url.PathEscape(id), appQuery(app), nil, nil)
}

func (t *httpTransport) kickUser(ctx context.Context, app, user string) error {
	return t.call(ctx, opKickUser, "DELETE", "/v1/users/"+url.PathEscape(user)+"/conns", appQuery(app), nil, nil)
}

func (t *httpTransport) message(ctx context.Context, app, id string) (*messageAnswer, error) {
	var out messageAnswer
	if err := t.call(ctx, opMessageStatus, "GET", "/v1/messages/"+url.PathEscape(id), appQuery(app), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *httpTransport) recall(ctx context.Context, app, id string) error {
	return t.call(ctx, opRecall, "DELETE", "/v1/messages/"+url.PathEscape(id), appQuery(app), nil, nil)
}

func (t *httpTransport) stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := t.call(ctx, opStats, "GET", "/v1/stats", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *httpTransport) nodes(ctx context.Context) ([]Node, error) {
	var out nodesAnswer
	if err := t.call(ctx, opNodes, "GET", "/v1/nodes", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

func (t *httpTransport) route(ctx context.Context) (*Route, error) {
	var out Route
	if err := t.call(ctx, opRoute, "GET", "/v1/route", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (t *httpTransport) drain(ctx context.Context, over time.Duration) (*drainAnswer, error) {
	in := map[string]string{}
	if over != 0 {
		in["drain_time"] = over.String()
	}
	var out drainAnswer
	if err := t.call(ctx, opDrain, "POST", "/v1/admin/drain", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// call sends one request of operation op (its name in errors) with the
// JSON body in (nil: none) and decodes the answer into out (nil: the
// answer is not read).
func (t *httpTransport) call(ctx context.Context, op, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("herald: encoding %s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	u := t.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("herald: %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return fmt.Errorf("herald: %s: %w", op, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp.StatusCode, resp.Body)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("herald: reading the answer of %s: %w", op, err)
	}
	return nil
}
