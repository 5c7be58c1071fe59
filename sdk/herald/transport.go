package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// transport carries one API operation to the server and its answer back.
// The HTTP transport maps a request to its v1 endpoint; another transport
// (gRPC) would dispatch on the operation name and convert the same
// request and answer types.
type transport interface {
	do(ctx context.Context, r *request) error
}

// Operation names, one per API operation.
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
)

// request is one API operation, independent of the transport.
type request struct {
	op         string
	method     string     // HTTP method
	path       string     // HTTP path, escaped
	query      url.Values // HTTP query
	in         any        // request body (JSON), nil for none
	out        any        // where the answer goes, nil when there is none
	idempotent bool       // may be sent again after a failure
}

// httpTransport is the v1 HTTP/JSON API.
type httpTransport struct {
	hc   *http.Client
	base string // scheme://host[:port][/prefix], no trailing slash
	key  string
}

func (t *httpTransport) do(ctx context.Context, r *request) error {
	var body io.Reader
	if r.in != nil {
		b, err := json.Marshal(r.in)
		if err != nil {
			return fmt.Errorf("herald: encoding %s: %w", r.op, err)
		}
		body = bytes.NewReader(b)
	}
	u := t.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
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
