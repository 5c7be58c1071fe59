package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/jsonscan"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/push"
)

// pushBody is the JSON of one push.
type pushBody struct {
	App     string          `json:"app"`
	To      push.Target     `json:"to"`
	Data    json.RawMessage `json:"data"`
	TTL     *int64          `json:"ttl"`
	Offline bool            `json:"offline"`
	ID      string          `json:"id"`
	Event   string          `json:"event"` // Pusher event name; default "message"
}

func (a *API) request(p principal, b *pushBody) (*push.Request, error) {
	app, err := a.keys.PushApp(p, b.App, b.To.All)
	if err != nil {
		return nil, err
	}
	return &push.Request{App: app, Admin: p.Admin, To: b.To, Data: b.Data, TTL: b.TTL, Offline: b.Offline, ID: b.ID, Event: b.Event}, nil
}

func (a *API) engineCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.EngineTimeout)
}

func (a *API) push(w http.ResponseWriter, r *http.Request, p principal) error {
	bp, err := readPooled(w, r, a.cfg.pushBodyLimit())
	if err != nil {
		return err
	}
	defer putPooled(bp) // the push service copies what it keeps
	body := *bp
	var b pushBody
	if !jsonscan.Valid(body) || !scanPush(body, &b) {
		b = pushBody{}
		if err := strictUnmarshal(body, &b); err != nil {
			return err
		}
	}
	req, err := a.request(p, &b)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if b.Offline || len(b.To.Rooms) > 0 {
		// Storing (offline, or a room that keeps history) waits for the
		// engine; a live push only hands its message over.
		var cancel context.CancelFunc
		ctx, cancel = a.engineCtx(r)
		defer cancel()
	}
	id, err := a.svc.Push(ctx, req)
	if err != nil {
		return err
	}
	writeID(w, id)
	return nil
}

// scanPush decodes the common push body without reflection: valid JSON
// (checked by the caller), known keys only, plain strings. false: the body
// needs encoding/json (which then words any error).
func scanPush(body []byte, b *pushBody) bool {
	s := jsonscan.New(body)
	for {
		k, ok := s.Key()
		if !ok {
			break
		}
		switch string(k) {
		case "to":
			s.Object()
			for {
				k, ok := s.Key()
				if !ok {
					break
				}
				switch string(k) {
				case "users":
					b.To.Users = s.Strings()
				case "conns":
					b.To.Conns = s.Strings()
				case "rooms":
					b.To.Rooms = s.Strings()
				case "app":
					b.To.App = s.Bool()
				case "all":
					b.To.All = s.Bool()
				default:
					s.Fail()
				}
			}
		case "data":
			b.Data = s.Raw()
		case "ttl":
			ttl := int64(s.Uint())
			b.TTL = &ttl
		case "offline":
			b.Offline = s.Bool()
		case "id":
			b.ID = s.String()
		case "app":
			b.App = s.String()
		case "event":
			b.Event = s.String()
		default:
			s.Fail()
		}
	}
	return s.Done()
}

// jsonType is the Content-Type of the API's answers, shared (net/http only
// reads a header's values).
var jsonType = []string{"application/json"}

// writeID answers {"id":…} as writeJSON would, without reflection.
func writeID(w http.ResponseWriter, id string) {
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(200)
	buf := make([]byte, 0, 16+len(id))
	buf = append(buf, `{"id":`...)
	buf = protocol.AppendString(buf, id)
	_, _ = w.Write(append(buf, '}', '\n'))
}

type batchResult struct {
	ID    string            `json:"id,omitempty"`
	Error map[string]string `json:"error,omitempty"`
}

func (a *API) batch(w http.ResponseWriter, r *http.Request, p principal) error {
	body, err := readBody(w, r, a.cfg.batchBodyLimit())
	if err != nil {
		return err
	}
	// Most batches are valid: one pass decodes them. A batch with a bad
	// item is decoded again item by item, so that only that item fails.
	var fast struct {
		Items []pushBody `json:"items"`
	}
	var slow struct {
		Items []json.RawMessage `json:"items"`
	}
	n := 0
	if strictUnmarshal(body, &fast) == nil {
		n = len(fast.Items)
	} else if err := strictUnmarshal(body, &slow); err != nil {
		return err
	} else {
		n = len(slow.Items)
	}
	if n > a.cfg.MaxBatch {
		return push.Errorf(push.CodeInvalidArgument, "batch has %d items; the limit is %d", n, a.cfg.MaxBatch)
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	reqs := make([]*push.Request, n)
	errs := make([]error, n)
	for i := range n {
		if slow.Items == nil {
			reqs[i], errs[i] = a.request(p, &fast.Items[i])
		} else {
			reqs[i], errs[i] = a.batchItem(p, slow.Items[i])
		}
	}
	ids := a.svc.PushMany(ctx, reqs, errs)
	out := make([]batchResult, n)
	for i, err := range errs {
		if err != nil {
			pe := apierr.From(err)
			out[i].Error = map[string]string{"code": pe.Code, "message": pe.Message}
			continue
		}
		out[i].ID = ids[i]
	}
	writeJSON(w, 200, map[string]any{"results": out})
	return nil
}

func (a *API) batchItem(p principal, raw json.RawMessage) (*push.Request, error) {
	var b pushBody
	if err := strictUnmarshal(raw, &b); err != nil {
		return nil, err
	}
	return a.request(p, &b)
}

func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON body")
	}
	return decodeError(err)
}

// members is the body of room join and leave.
type members struct {
	App   string   `json:"app"`
	Users []string `json:"users"`
	Conns []string `json:"conns"`
}

// membership returns the handler of room join or leave.
func (a *API) membership(op func(ctx context.Context, app, room string, users, conns []string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		var b members
		if err := decode(w, r, 1<<20, &b); err != nil {
			return err
		}
		app, err := a.appFor(p, b.App)
		if err != nil {
			return err
		}
		ctx, cancel := a.engineCtx(r)
		defer cancel()
		if err := op(ctx, app, r.PathValue("room"), b.Users, b.Conns); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type member struct {
	Conn string `json:"conn"`
	User string `json:"user"`
}

func (a *API) room(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	page, err := a.ops.Room(ctx, app, r.PathValue("room"), r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	list := make([]member, len(page.Members))
	for i, m := range page.Members {
		list[i] = member{Conn: m.Conn, User: m.User}
	}
	body := map[string]any{"room": page.Room, "conns": page.Conns, "users": page.Users, "members": list}
	if page.Next != "" {
		body["next"] = page.Next
	}
	addPartial(body, page.Missing)
	writeJSON(w, 200, body)
	return nil
}

type connInfo struct {
	ID     string   `json:"id"`
	Node   string   `json:"node"`
	Device string   `json:"device,omitempty"`
	Addr   string   `json:"addr"`
	Since  string   `json:"since"`
	Rooms  []string `json:"rooms"`
}

func (a *API) user(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return push.Errorf(push.CodeInvalidArgument, "limit must be from 1 to %d", cluster.MaxPageSize)
		}
	}
	info, err := a.ops.User(ctx, app, r.PathValue("user"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	list := make([]connInfo, len(info.Conns))
	for i, c := range info.Conns {
		list[i] = connInfo{ID: c.ID, Node: c.Node, Device: c.Device, Addr: c.Addr,
			Since: c.Since.Format(time.RFC3339Nano), Rooms: append([]string{}, c.Rooms...)}
	}
	body := map[string]any{"user": info.User, "online": info.Online, "count": info.Count, "conns": list}
	if info.Next != "" {
		body["next"] = info.Next
	}
	addPartial(body, info.Missing)
	writeJSON(w, 200, body)
	return nil
}

func (a *API) kickConn(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	if err := a.ops.KickConn(ctx, app, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) kickUser(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	if _, err := a.ops.KickUser(ctx, app, r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stats reports the counts; an app key sees its own app's only (naming
// another with ?app= is forbidden), an admin every app's or the one named.
func (a *API) stats(w http.ResponseWriter, r *http.Request, p principal) error {
	app := p.App
	if named := r.URL.Query().Get("app"); named != "" {
		var err error
		if app, err = a.appFor(p, named); err != nil {
			return err
		}
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	n, err := a.ops.Stats(ctx, app)
	if err != nil {
		return err
	}
	body := map[string]any{"nodes": n.Nodes, "conns": n.Conns, "users": n.Users, "rooms": n.Rooms, "pushes": n.Pushes, "deliveries": n.Deliveries}
	addPartial(body, n.Missing)
	writeJSON(w, 200, body)
	return nil
}

// addPartial marks a cluster query's answer partial: "partial": true and
// "missing": the ids of the nodes that did not answer in time, whose
// connections and counts the answer leaves out. A complete answer has
// neither field.
func addPartial(body map[string]any, missing []string) {
	if len(missing) > 0 {
		body["partial"] = true
		body["missing"] = missing
	}
}

// nodes lists the live nodes.
func (a *API) nodes(w http.ResponseWriter, r *http.Request, _ principal) error {
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	nodes := a.ops.Nodes
	switch r.URL.Query().Get("draining") {
	case "", "0", "false":
	case "1", "true":
		nodes = a.ops.AllNodes
	default:
		return push.Errorf(push.CodeInvalidArgument, "draining must be 1 or 0")
	}
	list, err := nodes(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"nodes": list})
	return nil
}

// route answers the WebSocket URL of the least-loaded live node, so that
// clients or a gateway can spread connections.
func (a *API) route(w http.ResponseWriter, r *http.Request, _ principal) error {
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	rt, err := a.ops.Route(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"node": rt.Node, "url": rt.URL, "load": rt.Load})
	return nil
}

func (a *API) messageStatus(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	st, err := a.svc.Status(ctx, app, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, st)
	return nil
}

func (a *API) recall(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	if err := a.svc.Recall(ctx, app, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// drain starts draining this node (admin keys only): the body may name the
// drain time, {"drain_time":"10s"}; empty, the configured one.
func (a *API) drain(w http.ResponseWriter, r *http.Request, p principal) error {
	if !p.Admin {
		return push.Errorf(push.CodeForbidden, "draining a node needs an admin key")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		return decodeError(err)
	}
	var b struct {
		DrainTime *string `json:"drain_time"`
		Node      string  `json:"node"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := strictUnmarshal(raw, &b); err != nil {
			return err
		}
	}
	var over *time.Duration
	if b.DrainTime != nil {
		d, err := time.ParseDuration(*b.DrainTime)
		if err != nil {
			return push.Errorf(push.CodeInvalidArgument, "drain_time must be a duration such as \"30s\": %v", err)
		}
		over = &d
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	d, err := a.ops.DrainNode(ctx, b.Node, over)
	if err != nil {
		return err
	}
	body := map[string]any{"node": d.Node, "conns": d.Conns, "drain_time": d.Time.String()}
	if d.Already {
		body = map[string]any{"node": d.Node, "conns": d.Conns, "already": true}
	}
	writeJSON(w, http.StatusAccepted, body)
	return nil
}
