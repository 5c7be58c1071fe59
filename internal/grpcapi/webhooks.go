package grpcapi

import (
	"context"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/push"
)

// ListDeadWebhooks returns one page of the app's dead-lettered webhook
// events.
func (a *API) ListDeadWebhooks(ctx context.Context, req *connect.Request[heraldv1.ListDeadWebhooksRequest]) (*connect.Response[heraldv1.ListDeadWebhooksResponse], error) {
	var after uint64
	if c := req.Msg.GetCursor(); c != "" {
		var err error
		if after, err = strconv.ParseUint(c, 10, 64); err != nil {
			return nil, push.Errorf(push.CodeInvalidArgument, "cursor must be the next value of a previous page")
		}
	}
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	evs, next, err := a.cfg.Lifecycle.DeadPage(ctx, app, after)
	if err != nil {
		return nil, err
	}
	out := &heraldv1.ListDeadWebhooksResponse{Events: make([]*heraldv1.DeadWebhook, len(evs))}
	for i, e := range evs {
		out.Events[i] = &heraldv1.DeadWebhook{Seq: e.Seq, Id: e.ID, Type: e.Type, Endpoint: e.Endpoint,
			Error: e.Error, Attempts: int32(e.Attempts), Failed: timestamppb.New(e.Failed), Event: string(e.Event)}
	}
	if next != 0 {
		out.Next = strconv.FormatUint(next, 10)
	}
	return connect.NewResponse(out), nil
}

// ReplayDeadWebhooks sends dead-lettered events again.
func (a *API) ReplayDeadWebhooks(ctx context.Context, req *connect.Request[heraldv1.ReplayDeadWebhooksRequest]) (*connect.Response[heraldv1.ReplayDeadWebhooksResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	n, err := a.cfg.Lifecycle.ReplayDead(ctx, app, req.Msg.GetIds())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.ReplayDeadWebhooksResponse{Replayed: int32(n)}), nil
}
