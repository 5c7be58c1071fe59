package grpcapi

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/push"
)

// ListRecentMessages returns one page of an app's recent pushes, newest
// first (GET /v1/messages).
func (a *API) ListRecentMessages(ctx context.Context, req *connect.Request[heraldv1.ListRecentMessagesRequest]) (*connect.Response[heraldv1.ListRecentMessagesResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	page, err := a.ops.Recent(ctx, app, req.Msg.GetCursor(), int(req.Msg.GetLimit()))
	if err != nil {
		return nil, err
	}
	msgs := make([]*heraldv1.RecentMessage, len(page.Msgs))
	for i, e := range page.Msgs {
		msgs[i] = &heraldv1.RecentMessage{Id: e.ID, At: timestamppb.New(time.Unix(0, e.At)), Node: e.Node, Offline: e.Offline,
			Users: e.Users, Conns: e.Conns, Rooms: e.Rooms, ToApp: e.App, ToAll: e.All, First: e.First}
	}
	return connect.NewResponse(&heraldv1.ListRecentMessagesResponse{Messages: msgs, Next: page.Next}), nil
}

// GetStatsHistory returns the last 15 minutes of the counts: an app key's
// own app's, an admin's of every app or of the one named
// (GET /v1/stats/history).
func (a *API) GetStatsHistory(ctx context.Context, req *connect.Request[heraldv1.GetStatsHistoryRequest]) (*connect.Response[heraldv1.GetStatsHistoryResponse], error) {
	app := callerOf(ctx).App
	if named := req.Msg.GetApp(); named != "" {
		var err error
		if app, err = a.keys.AppFor(callerOf(ctx), named); err != nil {
			return nil, err
		}
	}
	if req.Msg.GetSinceMs() < 0 {
		return nil, push.Errorf(push.CodeInvalidArgument, "since_ms must be a time in Unix milliseconds")
	}
	ctx, cancel := a.engineCtx(ctx)
	defer cancel()
	h, err := a.ops.History(ctx, app, req.Msg.GetSinceMs())
	if err != nil {
		return nil, err
	}
	pts := make([]*heraldv1.StatsPoint, len(h.Points))
	for i, p := range h.Points {
		pts[i] = &heraldv1.StatsPoint{At: timestamppb.New(time.UnixMilli(p.At)), Conns: int32(p.Conns), Users: int32(p.Users),
			Pushes: p.Pushes, Deliveries: p.Deliveries, Stored: p.Stored, Acks: p.Acks, WebhookBacklog: p.Backlog}
	}
	return connect.NewResponse(&heraldv1.GetStatsHistoryResponse{IntervalSeconds: int32(history.Interval / time.Second), Points: pts}), nil
}
