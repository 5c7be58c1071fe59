package herald

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/apierr"
)

// grpcTransport is the server API over gRPC (the HeraldService of
// api/herald/v1), with the same operations, arguments and answers as HTTP.
type grpcTransport struct {
	c      heraldv1connect.HeraldServiceClient
	stream heraldv1connect.HeraldServiceClient // c without the client's overall timeout, for PushStream
	key    string
}

var _ transport = (*grpcTransport)(nil)

// newGRPCTransport speaks gRPC to base: HTTP/2 over TLS for https://,
// cleartext HTTP/2 (h2c) for http://. hc nil: a client of its own.
func newGRPCTransport(hc *http.Client, base, key string) *grpcTransport {
	if hc == nil {
		var p http.Protocols
		p.SetHTTP2(true)
		p.SetUnencryptedHTTP2(true)
		tr := http.DefaultTransport.(*http.Transport).Clone() // its dial, proxy and idle timeouts
		tr.Protocols = &p
		hc = &http.Client{Timeout: defaultTimeout, Transport: tr}
	}
	own := *hc // not the caller's: its transport is wrapped
	if own.Transport == nil {
		own.Transport = http.DefaultTransport
	}
	own.Transport = coalescing{own.Transport}
	long := own // a stream lives as long as its context: http.Client.Timeout would cut it
	long.Timeout = 0
	return &grpcTransport{c: heraldv1connect.NewHeraldServiceClient(&own, base, connect.WithGRPC()),
		stream: heraldv1connect.NewHeraldServiceClient(&long, base, connect.WithGRPC()), key: key}
}

// unary makes one call with the API key in the metadata: the one call
// helper every operation below shares.
func unary[Req, Resp any](ctx context.Context, key string, f func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error), in *Req) (*Resp, error) {
	req := connect.NewRequest(in)
	if key != "" {
		req.Header().Set("Authorization", "Bearer "+key)
	}
	resp, err := f(ctx, req)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp.Msg, nil
}

// grpcError turns an error answer (one with the ErrorInfo detail every
// HeraldService error carries) into an *Error; others, such as a network
// failure, stay as they are.
func grpcError(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*heraldv1.ErrorInfo); ok {
				return &Error{Status: statusOfCode(info.GetCode()), Code: info.GetCode(), Message: info.GetMessage()}
			}
		}
	}
	return err
}

// statusOfCode is the HTTP status of a stable code, from the server's own
// catalogue (docs/api.md#errors); 0 for a code it does not know.
func statusOfCode(code string) int {
	row, _ := apierr.Lookup(code)
	return row.Status
}

func (t *grpcTransport) push(ctx context.Context, b *pushBody) (string, error) {
	m, err := unary(ctx, t.key, t.c.Push, pushProto(b))
	if err != nil {
		return "", err
	}
	return m.GetId(), nil
}

func (t *grpcTransport) batch(ctx context.Context, items []*pushBody) ([]batchResult, error) {
	in := &heraldv1.PushBatchRequest{Items: make([]*heraldv1.PushRequest, len(items))}
	for i, b := range items {
		in.Items[i] = pushProto(b)
	}
	m, err := unary(ctx, t.key, t.c.PushBatch, in)
	if err != nil {
		return nil, err
	}
	out := make([]batchResult, len(m.GetResults()))
	for i, res := range m.GetResults() {
		out[i].ID = res.GetId()
		if e := res.GetError(); e != nil {
			out[i].Error = &errorItem{Code: e.GetCode(), Message: e.GetMessage()}
		}
	}
	return out, nil
}

func (t *grpcTransport) joinRoom(ctx context.Context, app, room string, m Members) error {
	_, err := unary(ctx, t.key, t.c.JoinRoom, &heraldv1.JoinRoomRequest{Room: room, Users: m.Users, Conns: m.Conns, App: app})
	return err
}

func (t *grpcTransport) leaveRoom(ctx context.Context, app, room string, m Members) error {
	_, err := unary(ctx, t.key, t.c.LeaveRoom, &heraldv1.LeaveRoomRequest{Room: room, Users: m.Users, Conns: m.Conns, App: app})
	return err
}

func (t *grpcTransport) room(ctx context.Context, app, room, cursor string) (*RoomInfo, error) {
	m, err := unary(ctx, t.key, t.c.GetRoom, &heraldv1.GetRoomRequest{Room: room, Cursor: cursor, App: app})
	if err != nil {
		return nil, err
	}
	out := &RoomInfo{Room: m.GetRoom(), Conns: int(m.GetConns()), Users: int(m.GetUsers()), Next: m.GetNext(), Members: make([]Member, len(m.GetMembers()))}
	for i, mb := range m.GetMembers() {
		out.Members[i] = Member{Conn: mb.GetConn(), User: mb.GetUser()}
	}
	return out, nil
}

func (t *grpcTransport) presence(ctx context.Context, app, room, cursor string) (*PresencePage, error) {
	m, err := unary(ctx, t.key, t.c.GetPresence, &heraldv1.GetPresenceRequest{Room: room, Cursor: cursor, App: app})
	if err != nil {
		return nil, err
	}
	out := &PresencePage{Room: m.GetRoom(), Users: m.GetUsers(), Next: m.GetNext()}
	if out.Users == nil {
		out.Users = []string{}
	}
	return out, nil
}

func (t *grpcTransport) user(ctx context.Context, app, user, cursor string, limit int) (*UserInfo, error) {
	m, err := unary(ctx, t.key, t.c.GetUser, &heraldv1.GetUserRequest{User: user, App: app, Cursor: cursor, Limit: int32(limit)})
	if err != nil {
		return nil, err
	}
	out := &UserInfo{User: m.GetUser(), Online: m.GetOnline(), Count: int(m.GetCount()), Next: m.GetNext(),
		Conns: make([]ConnInfo, len(m.GetConns()))}
	for i, c := range m.GetConns() {
		out.Conns[i] = ConnInfo{ID: c.GetId(), Node: c.GetNode(), Device: c.GetDevice(), Addr: c.GetAddr(),
			Since: c.GetSince().AsTime(), Rooms: c.GetRooms()}
	}
	return out, nil
}

func (t *grpcTransport) kickConn(ctx context.Context, app, id string) error {
	_, err := unary(ctx, t.key, t.c.KickConn, &heraldv1.KickConnRequest{Id: id, App: app})
	return err
}

func (t *grpcTransport) kickUser(ctx context.Context, app, user string) error {
	_, err := unary(ctx, t.key, t.c.KickUser, &heraldv1.KickUserRequest{User: user, App: app})
	return err
}

func (t *grpcTransport) message(ctx context.Context, app, id string) (*messageAnswer, error) {
	m, err := unary(ctx, t.key, t.c.GetMessage, &heraldv1.GetMessageRequest{Id: id, App: app})
	if err != nil {
		return nil, err
	}
	out := &messageAnswer{ID: m.GetId(), Created: m.GetCreated().AsTime(), TTL: m.GetTtl(), Targeted: int(m.GetTargeted()),
		Delivered: int(m.GetDelivered()), Acked: int(m.GetAcked()), Expired: int(m.GetExpired()), Dropped: int(m.GetDropped()),
		Recalled: m.GetRecalled()}
	for _, u := range m.GetUsers() {
		out.Users = append(out.Users, UserStatus{User: u.GetUser(), Seq: u.GetSeq(), Delivered: u.GetDelivered(), Acked: u.GetAcked()})
	}
	return out, nil
}

func (t *grpcTransport) recall(ctx context.Context, app, id string) error {
	_, err := unary(ctx, t.key, t.c.RecallMessage, &heraldv1.RecallMessageRequest{Id: id, App: app})
	return err
}

func (t *grpcTransport) stats(ctx context.Context) (*Stats, error) {
	m, err := unary(ctx, t.key, t.c.GetStats, &heraldv1.GetStatsRequest{})
	if err != nil {
		return nil, err
	}
	return &Stats{Nodes: int(m.GetNodes()), Conns: int(m.GetConns()), Users: int(m.GetUsers()), Rooms: int(m.GetRooms()),
		Pushes: int64(m.GetPushes()), Deliveries: int64(m.GetDeliveries())}, nil
}

func (t *grpcTransport) nodes(ctx context.Context) ([]Node, error) {
	m, err := unary(ctx, t.key, t.c.ListNodes, &heraldv1.ListNodesRequest{})
	if err != nil {
		return nil, err
	}
	var out []Node
	for _, n := range m.GetNodes() {
		out = append(out, Node{ID: n.GetId(), Addr: n.GetAddr(), Conns: int(n.GetConns()), Load: n.GetLoad(),
			Version: n.GetVersion(), Heartbeat: n.GetHeartbeat().AsTime()})
	}
	return out, nil
}

func (t *grpcTransport) route(ctx context.Context) (*Route, error) {
	m, err := unary(ctx, t.key, t.c.GetRoute, &heraldv1.GetRouteRequest{})
	if err != nil {
		return nil, err
	}
	return &Route{Node: m.GetNode(), URL: m.GetUrl(), Load: m.GetLoad()}, nil
}

func (t *grpcTransport) drain(ctx context.Context, over time.Duration) (*drainAnswer, error) {
	in := &heraldv1.DrainRequest{}
	if over != 0 {
		in.DrainTime = durationpb.New(over)
	}
	m, err := unary(ctx, t.key, t.c.Drain, in)
	if err != nil {
		return nil, err
	}
	out := &drainAnswer{Node: m.GetNode(), Conns: int(m.GetConns()), Already: m.GetAlready()}
	if d := m.GetDrainTime(); d != nil {
		out.DrainTime = d.AsDuration().String()
	}
	return out, nil
}

// pushProto is a push as a protobuf message.
func pushProto(b *pushBody) *heraldv1.PushRequest {
	p := &heraldv1.PushRequest{To: &heraldv1.Target{Users: b.To.Users, Conns: b.To.Conns, Rooms: b.To.Rooms, App: b.To.App, All: b.To.All},
		Data: string(b.Data), Offline: b.Offline, Id: b.ID, App: b.App, Event: b.Event}
	if b.TTL != 0 {
		ttl := b.TTL
		p.Ttl = &ttl
	}
	return p
}
