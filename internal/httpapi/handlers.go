package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/hub"
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
}

func (a *API) request(p principal, b *pushBody) (*push.Request, error) {
	if p.admin && b.To.All && b.App == "" {
		b.App = "*" // a push to everyone belongs to no one app
	}
	app, err := a.appFor(p, b.App)
	if err != nil {
		return nil, err
	}
	return &push.Request{App: app, Admin: p.admin, To: b.To, Data: b.Data, TTL: b.TTL, Offline: b.Offline, ID: b.ID}, nil
}

func (a *API) engineCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.cfg.EngineTimeout)
}

func (a *API) push(w http.ResponseWriter, r *http.Request, p principal) error {
	var b pushBody
	if err := decode(w, r, int64(a.cfg.MaxPayload)+64<<10, &b); err != nil {
		return err
	}
	req, err := a.request(p, &b)
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	id, err := a.svc.Push(ctx, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]string{"id": id})
	return nil
}

type batchResult struct {
	ID    string            `json:"id,omitempty"`
	Error map[string]string `json:"error,omitempty"`
}

func (a *API) batch(w http.ResponseWriter, r *http.Request, p principal) error {
	limit := int64(a.cfg.MaxBatch) * (int64(a.cfg.MaxPayload) + 4<<10)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeError(err)
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
			pe, ok := err.(*push.Error)
			if !ok {
				pe = &push.Error{Code: push.CodeInternal, Message: "internal error"}
			}
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

// roomConns resolves a room call's users and connections to local
// connections of the app.
func (a *API) roomConns(w http.ResponseWriter, r *http.Request, p principal) (string, string, []*hub.Conn, error) {
	room := r.PathValue("room")
	if err := protocol.ValidName("room", room); err != nil {
		return "", "", nil, push.Errorf(push.CodeInvalidArgument, "%v", err)
	}
	var b members
	if err := decode(w, r, 1<<20, &b); err != nil {
		return "", "", nil, err
	}
	app, err := a.appFor(p, b.App)
	if err != nil {
		return "", "", nil, err
	}
	if len(b.Users)+len(b.Conns) == 0 {
		return "", "", nil, push.Errorf(push.CodeInvalidTarget, "name users or conns")
	}
	var conns []*hub.Conn
	for _, u := range b.Users {
		conns = append(conns, a.hub.UserConns(app, u)...)
	}
	for _, id := range b.Conns {
		if c := a.hub.Conn(id); c != nil && c.App == app {
			conns = append(conns, c)
		}
	}
	return app, room, conns, nil
}

// membership returns the handler of room join or leave: op applied to every
// named user's and connection's local connections.
func (a *API) membership(op func(*hub.Conn, string) bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p principal) error {
		_, room, conns, err := a.roomConns(w, r, p)
		if err != nil {
			return err
		}
		for _, c := range conns {
			op(c, room)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

const pageSize = 100

func (a *API) room(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	room := r.PathValue("room")
	all := a.hub.RoomMembers(app, room)
	conns, users := a.hub.RoomCount(app, room)
	cursor := r.URL.Query().Get("cursor")
	start := sort.Search(len(all), func(i int) bool { return all[i].ID > cursor })
	page := all[start:min(len(all), start+pageSize)]
	list := make([]map[string]string, len(page))
	for i, c := range page {
		list[i] = map[string]string{"conn": c.ID, "user": c.User}
	}
	body := map[string]any{"room": room, "conns": conns, "users": users, "members": list}
	if start+pageSize < len(all) {
		body["next"] = page[len(page)-1].ID
	}
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
	user := r.PathValue("user")
	conns := a.hub.UserConns(app, user)
	sort.Slice(conns, func(i, j int) bool { return conns[i].ID < conns[j].ID })
	list := make([]connInfo, len(conns))
	for i, c := range conns {
		list[i] = connInfo{ID: c.ID, Node: a.cfg.Node.ID, Device: c.Device, Addr: c.Addr,
			Since: time.UnixMilli(c.Since).UTC().Format(time.RFC3339Nano), Rooms: a.hub.Rooms(c)}
	}
	writeJSON(w, 200, map[string]any{"user": user, "online": len(list) > 0, "conns": list})
	return nil
}

func (a *API) kickConn(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	c := a.hub.Conn(r.PathValue("id"))
	if c == nil || c.App != app {
		return push.Errorf(push.CodeNotFound, "no such connection")
	}
	a.gw.Kick(c)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) kickUser(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	conns := a.hub.UserConns(app, r.PathValue("user"))
	if len(conns) == 0 {
		return push.Errorf(push.CodeNotFound, "user has no connection")
	}
	for _, c := range conns {
		a.gw.Kick(c)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stats reports the node's counts; an app key sees its own app's only.
func (a *API) stats(w http.ResponseWriter, _ *http.Request, p principal) error {
	n := a.hub.Counts()
	if !p.admin {
		n = a.hub.AppCounts(p.app)
	}
	pushes, deliveries := a.svc.Counters(p.app)
	writeJSON(w, 200, map[string]any{"conns": n.Conns, "users": n.Users, "rooms": n.Rooms, "pushes": pushes, "deliveries": deliveries})
	return nil
}

// nodes lists the live nodes from the registry.
func (a *API) nodes(w http.ResponseWriter, r *http.Request, _ principal) error {
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	list, err := a.liveNodes(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]any{"nodes": list})
	return nil
}

// liveNodes lists the registry with this node's own entry brought up to
// date (the registry holds what it last announced).
func (a *API) liveNodes(ctx context.Context) ([]engine.NodeInfo, error) {
	list, err := a.registry.List(ctx)
	if err != nil {
		return nil, &push.Error{Code: push.CodeUnavailable, Message: "node registry unavailable", Err: err}
	}
	self := a.NodeInfo()
	for i, n := range list {
		if n.ID == self.ID {
			self.Addr = n.Addr
			list[i] = self
			return list, nil
		}
	}
	return append(list, self), nil // not announced yet
}

// route answers the WebSocket URL of the least-loaded live node, so that
// clients or a gateway can spread connections.
func (a *API) route(w http.ResponseWriter, r *http.Request, _ principal) error {
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	list, err := a.liveNodes(ctx)
	if err != nil {
		return err
	}
	best := list[0]
	for _, n := range list[1:] {
		if n.Load < best.Load {
			best = n
		}
	}
	writeJSON(w, 200, map[string]any{"node": best.ID, "url": "ws://" + best.Addr + "/v1/ws", "load": best.Load})
	return nil
}

// NodeInfo reports this node for the registry.
func (a *API) NodeInfo() engine.NodeInfo {
	n := a.hub.Counts()
	load := 0.0
	if a.cfg.Node.MaxConn > 0 {
		load = math.Round(float64(n.Conns)/float64(a.cfg.Node.MaxConn)*1e4) / 1e4
	}
	return engine.NodeInfo{ID: a.cfg.Node.ID, Addr: a.cfg.Node.Addr, Conns: n.Conns, Load: load,
		Version: a.cfg.Node.Version, Heartbeat: time.Now().UTC()}
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
