package herald

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/apierr"
)

// grpcTransport is the server API over gRPC (the HeraldService of
// api/herald/v1), with the same operations, arguments and answers as HTTP.
type grpcTransport struct {
	c   heraldv1connect.HeraldServiceClient
	key string
}

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
	return &grpcTransport{c: heraldv1connect.NewHeraldServiceClient(hc, base, connect.WithGRPC()), key: key}
}

// unary makes one call with the API key in the metadata.
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

func (t *grpcTransport) do(ctx context.Context, r *request) error {
	switch r.op {
	case opPush:
		m, err := unary(ctx, t.key, t.c.Push, pushProto(r.push))
		if err == nil {
			r.out.(*pushAnswer).ID = m.GetId()
		}
		return err
	case opBatch:
		in := &heraldv1.PushBatchRequest{Items: make([]*heraldv1.PushRequest, len(r.batch))}
		for i, b := range r.batch {
			in.Items[i] = pushProto(b)
		}
		m, err := unary(ctx, t.key, t.c.PushBatch, in)
		if err != nil {
			return err
		}
		out := r.out.(*batchAnswer)
		out.Results = make([]batchResult, len(m.GetResults()))
		for i, res := range m.GetResults() {
			out.Results[i].ID = res.GetId()
			if e := res.GetError(); e != nil {
				out.Results[i].Error = &errorItem{Code: e.GetCode(), Message: e.GetMessage()}
			}
		}
		return nil
	case opJoinRoom:
		_, err := unary(ctx, t.key, t.c.JoinRoom, &heraldv1.JoinRoomRequest{Room: r.name, Users: r.members.Users, Conns: r.members.Conns, App: r.app})
		return err
	case opLeaveRoom:
		_, err := unary(ctx, t.key, t.c.LeaveRoom, &heraldv1.LeaveRoomRequest{Room: r.name, Users: r.members.Users, Conns: r.members.Conns, App: r.app})
		return err
	case opRoom:
		m, err := unary(ctx, t.key, t.c.GetRoom, &heraldv1.GetRoomRequest{Room: r.name, Cursor: r.cursor, App: r.app})
		if err != nil {
			return err
		}
		out := r.out.(*RoomInfo)
		*out = RoomInfo{Room: m.GetRoom(), Conns: int(m.GetConns()), Users: int(m.GetUsers()), Next: m.GetNext(), Members: make([]Member, len(m.GetMembers()))}
		for i, mb := range m.GetMembers() {
			out.Members[i] = Member{Conn: mb.GetConn(), User: mb.GetUser()}
		}
		return nil
	case opPresence:
		m, err := unary(ctx, t.key, t.c.GetPresence, &heraldv1.GetPresenceRequest{Room: r.name, Cursor: r.cursor, App: r.app})
		if err != nil {
			return err
		}
		*r.out.(*PresencePage) = PresencePage{Room: m.GetRoom(), Users: m.GetUsers(), Next: m.GetNext()}
		if r.out.(*PresencePage).Users == nil {
			r.out.(*PresencePage).Users = []string{}
		}
		return nil
	case opUser:
		m, err := unary(ctx, t.key, t.c.GetUser, &heraldv1.GetUserRequest{User: r.name, App: r.app, Cursor: r.cursor, Limit: int32(r.limit)})
		if err != nil {
			return err
		}
		out := r.out.(*UserInfo)
		*out = UserInfo{User: m.GetUser(), Online: m.GetOnline(), Count: int(m.GetCount()), Next: m.GetNext(),
			Conns: make([]ConnInfo, len(m.GetConns()))}
		for i, c := range m.GetConns() {
			out.Conns[i] = ConnInfo{ID: c.GetId(), Node: c.GetNode(), Device: c.GetDevice(), Addr: c.GetAddr(),
				Since: c.GetSince().AsTime(), Rooms: c.GetRooms()}
		}
		return nil
	case opKickConn:
		_, err := unary(ctx, t.key, t.c.KickConn, &heraldv1.KickConnRequest{Id: r.name, App: r.app})
		return err
	case opKickUser:
		_, err := unary(ctx, t.key, t.c.KickUser, &heraldv1.KickUserRequest{User: r.name, App: r.app})
		return err
	case opMessageStatus:
		m, err := unary(ctx, t.key, t.c.GetMessage, &heraldv1.GetMessageRequest{Id: r.name, App: r.app})
		if err != nil {
			return err
		}
		out := r.out.(*messageAnswer)
		*out = messageAnswer{ID: m.GetId(), Created: m.GetCreated().AsTime(), TTL: m.GetTtl(), Targeted: int(m.GetTargeted()),
			Delivered: int(m.GetDelivered()), Acked: int(m.GetAcked()), Expired: int(m.GetExpired()), Dropped: int(m.GetDropped()),
			Recalled: m.GetRecalled()}
		for _, u := range m.GetUsers() {
			out.Users = append(out.Users, UserStatus{User: u.GetUser(), Seq: u.GetSeq(), Delivered: u.GetDelivered(), Acked: u.GetAcked()})
		}
		return nil
	case opRecall:
		_, err := unary(ctx, t.key, t.c.RecallMessage, &heraldv1.RecallMessageRequest{Id: r.name, App: r.app})
		return err
	case opStats:
		m, err := unary(ctx, t.key, t.c.GetStats, &heraldv1.GetStatsRequest{})
		if err == nil {
			*r.out.(*Stats) = Stats{Nodes: int(m.GetNodes()), Conns: int(m.GetConns()), Users: int(m.GetUsers()), Rooms: int(m.GetRooms()),
				Pushes: int64(m.GetPushes()), Deliveries: int64(m.GetDeliveries())}
		}
		return err
	case opNodes:
		m, err := unary(ctx, t.key, t.c.ListNodes, &heraldv1.ListNodesRequest{})
		if err != nil {
			return err
		}
		out := r.out.(*nodesAnswer)
		for _, n := range m.GetNodes() {
			out.Nodes = append(out.Nodes, Node{ID: n.GetId(), Addr: n.GetAddr(), Conns: int(n.GetConns()), Load: n.GetLoad(),
				Version: n.GetVersion(), Heartbeat: n.GetHeartbeat().AsTime()})
		}
		return nil
	case opRoute:
		m, err := unary(ctx, t.key, t.c.GetRoute, &heraldv1.GetRouteRequest{})
		if err == nil {
			*r.out.(*Route) = Route{Node: m.GetNode(), URL: m.GetUrl(), Load: m.GetLoad()}
		}
		return err
	case opDrain:
		in := &heraldv1.DrainRequest{}
		if r.drainTime != 0 {
			in.DrainTime = durationpb.New(r.drainTime)
		}
		m, err := unary(ctx, t.key, t.c.Drain, in)
		if err != nil {
			return err
		}
		out := r.out.(*drainAnswer)
		*out = drainAnswer{Node: m.GetNode(), Conns: int(m.GetConns()), Already: m.GetAlready()}
		if d := m.GetDrainTime(); d != nil {
			out.DrainTime = d.AsDuration().String()
		}
		return nil
	}
	return fmt.Errorf("herald: no gRPC method for operation %q", r.op)
}

// pushProto is a push as a protobuf message.
func pushProto(b *pushBody) *heraldv1.PushRequest {
	p := &heraldv1.PushRequest{To: &heraldv1.Target{Users: b.To.Users, Conns: b.To.Conns, Rooms: b.To.Rooms, App: b.To.App, All: b.To.All},
		Data: string(b.Data), Offline: b.Offline, Id: b.ID, App: b.App}
	if b.TTL != 0 {
		ttl := b.TTL
		p.Ttl = &ttl
	}
	return p
}
