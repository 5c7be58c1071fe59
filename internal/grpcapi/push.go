package grpcapi

import (
	"context"
	"encoding/json"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/push"
)

// request turns a PushRequest of caller c into the push service's
// request, resolving its app as the HTTP API does.
func (a *API) request(c apikey.Caller, m *heraldv1.PushRequest) (push.Request, error) {
	to := m.GetTo()
	app, err := a.keys.PushApp(c, m.GetApp(), to.GetAll())
	if err != nil {
		return push.Request{}, err
	}
	return push.Request{
		App:   app,
		Admin: c.Admin,
		To: push.Target{Users: to.GetUsers(), Conns: to.GetConns(), Rooms: to.GetRooms(),
			App: to.GetApp(), All: to.GetAll()},
		Data:    json.RawMessage(m.GetData()),
		TTL:     m.Ttl,
		Offline: m.GetOffline(),
		ID:      m.GetId(),
		Event:   m.GetEvent(),
	}, nil
}

// Push pushes one message.
func (a *API) Push(ctx context.Context, req *connect.Request[heraldv1.PushRequest]) (*connect.Response[heraldv1.PushResponse], error) {
	r, err := a.request(callerOf(ctx), req.Msg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.engineCtx(ctx)
	defer cancel()
	id, err := a.svc.Push(ctx, &r)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.PushResponse{Id: id}), nil
}

// PushBatch pushes many messages with one result per item.
func (a *API) PushBatch(ctx context.Context, req *connect.Request[heraldv1.PushBatchRequest]) (*connect.Response[heraldv1.PushBatchResponse], error) {
	items := req.Msg.GetItems()
	if len(items) > a.cfg.MaxBatch {
		return nil, push.Errorf(push.CodeInvalidArgument, "batch has %d items; the limit is %d", len(items), a.cfg.MaxBatch)
	}
	c := callerOf(ctx)
	all := make([]push.Request, len(items))
	reqs := make([]*push.Request, len(items))
	errs := make([]error, len(items))
	for i, m := range items {
		all[i], errs[i] = a.request(c, m)
		reqs[i] = &all[i]
	}
	ectx, cancel := a.engineCtx(ctx)
	defer cancel()
	ids := a.svc.PushMany(ectx, reqs, errs)
	out := make([]*heraldv1.PushResult, len(items))
	for i, err := range errs {
		if err != nil {
			out[i] = &heraldv1.PushResult{Result: &heraldv1.PushResult_Error{Error: errorInfo(err)}}
			continue
		}
		out[i] = &heraldv1.PushResult{Result: &heraldv1.PushResult_Id{Id: ids[i]}}
	}
	return connect.NewResponse(&heraldv1.PushBatchResponse{Results: out}), nil
}

// GetMessage reports a stored message's status.
func (a *API) GetMessage(ctx context.Context, req *connect.Request[heraldv1.GetMessageRequest]) (*connect.Response[heraldv1.GetMessageResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	st, err := a.svc.Status(ctx, app, req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	users := make([]*heraldv1.UserStatus, len(st.Users))
	for i, u := range st.Users {
		users[i] = &heraldv1.UserStatus{User: u.User, Seq: u.Seq, Delivered: u.Delivered, Acked: u.Acked}
	}
	return connect.NewResponse(&heraldv1.GetMessageResponse{
		Id: st.ID, Created: timestamppb.New(st.Created), Ttl: st.TTL,
		Targeted: int32(st.Targeted), Delivered: int32(st.Delivered), Acked: int32(st.Acked),
		Expired: int32(st.Expired), Dropped: int32(st.Dropped), Recalled: st.Recalled, Users: users,
	}), nil
}

// RecallMessage withdraws a stored message.
func (a *API) RecallMessage(ctx context.Context, req *connect.Request[heraldv1.RecallMessageRequest]) (*connect.Response[heraldv1.RecallMessageResponse], error) {
	ctx, cancel, app, err := a.scoped(ctx, req.Msg.GetApp())
	if err != nil {
		return nil, err
	}
	defer cancel()
	if err := a.svc.Recall(ctx, app, req.Msg.GetId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&heraldv1.RecallMessageResponse{}), nil
}
