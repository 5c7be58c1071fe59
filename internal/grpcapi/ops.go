package grpcapi

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/push"
)

// JoinRoom puts connections into a room.
func (a *API) JoinRoom(ctx context.Context, req *connect.Request[heraldv1.JoinRoomRequest]) (*connect.Response[heraldv1.JoinRoomResponse], error) {
	if err := a.membership(ctx, a.ops.Join, req.Msg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.JoinRoomResponse{}), nil
}

// LeaveRoom takes connections out of a room.
func (a *API) LeaveRoom(ctx context.Context, req *connect.Request[heraldv1.LeaveRoomRequest]) (*connect.Response[heraldv1.LeaveRoomResponse], error) {
	if err := a.membership(ctx, a.ops.Leave, req.Msg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.LeaveRoomResponse{}), nil
}

// members is a room join or leave request.
type members interface {
	GetApp() string
	GetRoom() string
	GetUsers() []string
	GetConns() []string
}

// membership runs a room join or leave.
func (a *API) membership(ctx context.Context, op func(ctx context.Context, app, room string, users, conns []string) error, m members) error {
	ctx, cancel, app, err := a.scoped(ctx, m.GetApp())
	if err != nil {
		return err
	}
	defer cancel()
	return op(ctx, app, m.GetRoom(), m.GetUsers(), m.GetConns())
}

// GetRoom returns a room's counts and one page of its members.
func (a *API) GetRoom(ctx context.Context, req *connect.Request[heraldv1.GetRoomRequest]) (*connect.Response[heraldv1.GetRoomResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	page, err := a.ops.Room(ctx, app, req.Msg.GetRoom(), req.Msg.GetCursor())
	if err != nil {
		return nil, err
	}
	list := make([]*heraldv1.RoomMember, len(page.Members))
	for i, m := range page.Members {
		list[i] = &heraldv1.RoomMember{Conn: m.Conn, User: m.User, Node: m.Node}
	}
	return connect.NewResponse(&heraldv1.GetRoomResponse{Room: page.Room, Conns: int32(page.Conns),
		Users: int32(page.Users), Members: list, Next: page.Next}), nil
}

// GetPresence returns one page of the users present in a presence room.
func (a *API) GetPresence(ctx context.Context, req *connect.Request[heraldv1.GetPresenceRequest]) (*connect.Response[heraldv1.GetPresenceResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	users, next, err := a.cfg.Lifecycle.PresencePage(ctx, app, req.Msg.GetRoom(), req.Msg.GetCursor())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.GetPresenceResponse{Room: req.Msg.GetRoom(), Users: users, Next: next}), nil
}

// GetUser returns one page of a user's connections.
func (a *API) GetUser(ctx context.Context, req *connect.Request[heraldv1.GetUserRequest]) (*connect.Response[heraldv1.GetUserResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	info, err := a.ops.User(ctx, app, req.Msg.GetUser(), req.Msg.GetCursor(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, err
	}
	conns := make([]*heraldv1.Conn, len(info.Conns))
	for i, c := range info.Conns {
		conns[i] = &heraldv1.Conn{Id: c.ID, Node: c.Node, Device: c.Device, Addr: c.Addr,
			Since: timestamppb.New(c.Since), Rooms: c.Rooms}
	}
	return connect.NewResponse(&heraldv1.GetUserResponse{User: info.User, Online: info.Online, Conns: conns,
		Next: info.Next, Count: int32(info.Count)}), nil
}

// KickConn closes one connection.
func (a *API) KickConn(ctx context.Context, req *connect.Request[heraldv1.KickConnRequest]) (*connect.Response[heraldv1.KickConnResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	if err := a.ops.KickConn(ctx, app, req.Msg.GetId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.KickConnResponse{}), nil
}

// KickUser closes every connection of a user.
func (a *API) KickUser(ctx context.Context, req *connect.Request[heraldv1.KickUserRequest]) (*connect.Response[heraldv1.KickUserResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	n, err := a.ops.KickUser(ctx, app, req.Msg.GetUser())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.KickUserResponse{Kicked: int32(n)}), nil
}

// GetStats returns the counts: an app key's own app's, an admin's of
// every app.
func (a *API) GetStats(ctx context.Context, _ *connect.Request[heraldv1.GetStatsRequest]) (*connect.Response[heraldv1.GetStatsResponse], error) {
	ctx, cancel := a.engineCtx(ctx)
	defer cancel()
	s, err := a.ops.Stats(ctx, callerOf(ctx).App)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.GetStatsResponse{Nodes: int32(s.Nodes), Conns: int32(s.Conns), Users: int32(s.Users),
		Rooms: int32(s.Rooms), Pushes: s.Pushes, Deliveries: s.Deliveries}), nil
}

// ListNodes lists the live nodes.
func (a *API) ListNodes(ctx context.Context, _ *connect.Request[heraldv1.ListNodesRequest]) (*connect.Response[heraldv1.ListNodesResponse], error) {
	ctx, cancel := a.engineCtx(ctx)
	defer cancel()
	list, err := a.ops.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	nodes := make([]*heraldv1.Node, len(list))
	for i, n := range list {
		nodes[i] = &heraldv1.Node{Id: n.ID, Addr: n.Addr, Conns: int32(n.Conns), Load: n.Load, Version: n.Version,
			Heartbeat: timestamppb.New(n.Heartbeat)}
	}
	return connect.NewResponse(&heraldv1.ListNodesResponse{Nodes: nodes}), nil
}

// GetRoute names the least-loaded live node.
func (a *API) GetRoute(ctx context.Context, _ *connect.Request[heraldv1.GetRouteRequest]) (*connect.Response[heraldv1.GetRouteResponse], error) {
	ctx, cancel := a.engineCtx(ctx)
	defer cancel()
	r, err := a.ops.Route(ctx)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.GetRouteResponse{Node: r.Node, Url: r.URL, Load: r.Load}), nil
}

// Drain drains this node (admin keys only).
func (a *API) Drain(ctx context.Context, req *connect.Request[heraldv1.DrainRequest]) (*connect.Response[heraldv1.DrainResponse], error) {
	if !callerOf(ctx).Admin {
		return nil, push.Errorf(push.CodeForbidden, "draining a node needs an admin key")
	}
	var over *time.Duration
	if d := req.Msg.DrainTime; d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, push.Errorf(push.CodeInvalidArgument, "drain_time: %v", err)
		}
		t := d.AsDuration()
		over = &t
	}
	d, err := a.ops.Drain(over)
	if err != nil {
		return nil, err
	}
	resp := &heraldv1.DrainResponse{Node: d.Node, Conns: int32(d.Conns), Already: d.Already}
	if !d.Already {
		resp.DrainTime = durationpb.New(d.Time)
	}
	return connect.NewResponse(resp), nil
}
