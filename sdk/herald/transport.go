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

// transport carries one API operation to the server and its answer back.
// The HTTP transport maps each operation to its v1 endpoint; another
// (gRPC) maps the same requests to its methods and fills the same answers.
type transport interface {
	do(ctx context.Context, r *request) error
}

// Operations of the server API.
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
)

// request is one API operation with its arguments, whatever the transport.
type request struct {
	op      string
	app     string      // the app an admin key acts on; "" for the key's own
	name    string      // the room, user, connection or message id acted on
	cursor  string      // opRoom, opUser, opPresence: the page
	limit   int         // opUser: the page size (0: the server's)
	push    *pushBody   // opPush
	batch   []*pushBody // opBatch
	members *Members    // opJoinRoom, opLeaveRoom
	// drainTime is opDrain's time to close the clients over; 0: the node's.
	drainTime time.Duration
	// out receives the answer: *pushAnswer, *batchAnswer, *RoomInfo,
	// *UserInfo, *messageAnswer, *Stats, *nodesAnswer, *Route,
	// *drainAnswer or *PresencePage; nil for operations without one.
	out        any
	idempotent bool // may be sent again after a failure
}

// httpTransport is the v1 HTTP/JSON API.
type httpTransport struct {
	hc   *http.Client
	base string // scheme://host[:port][/prefix], no trailing slash
	key  string
}

// endpoint maps a request to its HTTP method, path, query and body (no
// method: an unknown operation).
func endpoint(r *request) (method, path string, q url.Values, body any) {
	name := url.PathEscape(r.name)
	if r.app != "" {
		q = url.Values{"app": {r.app}}
	}
	members := func() any {
		return struct {
			App   string   `json:"app,omitempty"`
			Users []string `json:"users,omitempty"`
			Conns []string `json:"conns,omitempty"`
		}{r.app, r.members.Users, r.members.Conns}
	}
	switch r.op {
	case opPush:
		return "POST", "/v1/push", nil, r.push
	case opBatch:
		return "POST", "/v1/push/batch", nil, struct {
			Items []*pushBody `json:"items"`
		}{r.batch}
	case opJoinRoom:
		return "POST", "/v1/rooms/" + name + "/join", nil, members()
	case opLeaveRoom:
		return "POST", "/v1/rooms/" + name + "/leave", nil, members()
	case opRoom:
		if r.cursor != "" {
			if q == nil {
				q = url.Values{}
			}
			q.Set("cursor", r.cursor)
		}
		return "GET", "/v1/rooms/" + name, q, nil
	case opPresence:
		if r.cursor != "" {
			if q == nil {
				q = url.Values{}
			}
			q.Set("cursor", r.cursor)
		}
		return "GET", "/v1/rooms/" + name + "/presence", q, nil
	case opUser:
		if r.cursor != "" || r.limit != 0 {
			if q == nil {
				q = url.Values{}
			}
			if r.cursor != "" {
				q.Set("cursor", r.cursor)
			}
			if r.limit != 0 {
				q.Set("limit", strconv.Itoa(r.limit))
			}
		}
		return "GET", "/v1/users/" + name, q, nil
	case opKickConn:
		return "DELETE", "/v1/conns/" + name, q, nil
	case opKickUser:
		return "DELETE", "/v1/users/" + name + "/conns", q, nil
	case opMessageStatus:
		return "GET", "/v1/messages/" + name, q, nil
	case opRecall:
		return "DELETE", "/v1/messages/" + name, q, nil
	case opStats:
		return "GET", "/v1/stats", nil, nil
	case opNodes:
		return "GET", "/v1/nodes", nil, nil
	case opRoute:
		return "GET", "/v1/route", nil, nil
	case opDrain:
		body := map[string]string{}
		if r.drainTime != 0 {
			body["drain_time"] = r.drainTime.String()
		}
		return "POST", "/v1/admin/drain", nil, body
	}
	return "", "", nil, nil
}

func (t *httpTransport) do(ctx context.Context, r *request) error {
	method, path, q, in := endpoint(r)
	if method == "" {
		return fmt.Errorf("herald: no HTTP endpoint for operation %q", r.op)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("herald: encoding %s: %w", r.op, err)
		}
		body = bytes.NewReader(b)
	}
	u := t.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("herald: %s: %w", r.op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.key != "" {
		req.Header.Set("Authorization", "Bearer "+t.key)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return fmt.Errorf("herald: %s: %w", r.op, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp.StatusCode, resp.Body)
	}
	if r.out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(r.out); err != nil {
		return fmt.Errorf("herald: reading the answer of %s: %w", r.op, err)
	}
	return nil
}
