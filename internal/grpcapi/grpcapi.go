package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/lifecycle"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/push"
)

// Config holds the API's limits, the same as the HTTP API's.
type Config struct {
	MaxPayload    int // bytes of one push's data
	MaxBatch      int // items in one batch
	EngineTimeout time.Duration
	MaxBody       int64 // caps any one request message (0: no cap), as over HTTP
	// Lifecycle answers the presence query.
	Lifecycle *lifecycle.Lifecycle
}

// API serves herald.v1.HeraldService.
type API struct {
	cfg     Config
	keys    *apikey.Keys
	svc     *push.Service
	ops     *cluster.Ops
	metrics *metrics.Metrics
	log     *slog.Logger
}

var _ heraldv1connect.HeraldServiceHandler = (*API)(nil)

// New builds the API over the push service (pushes, batches, message
// status and recall) and the cluster operations (everything else).
func New(cfg Config, keys *apikey.Keys, svc *push.Service, o *cluster.Ops, m *metrics.Metrics, log *slog.Logger) (*API, error) {
	if keys == nil || svc == nil || o == nil || m == nil {
		return nil, errors.New("grpcapi: missing dependency")
	}
	if cfg.MaxPayload <= 0 || cfg.MaxBatch <= 0 || cfg.EngineTimeout <= 0 {
		return nil, errors.New("grpcapi: limits must be positive")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{cfg: cfg, keys: keys, svc: svc, ops: o, metrics: m, log: log}, nil
}

// Routes registers the service and gRPC server reflection (v1 and
// v1alpha, so grpcurl needs no .proto file) on mux.
func (a *API) Routes(mux *http.ServeMux) {
	path, h := heraldv1connect.NewHeraldServiceHandler(a,
		connect.WithRequestGate(a.authenticate),
		connect.WithInterceptors(connect.UnaryInterceptorFunc(a.mapErrors)),
		connect.WithConditionalHandlerOptions(func(s connect.Spec) []connect.HandlerOption {
			return []connect.HandlerOption{connect.WithReadMaxBytes(a.readLimit(s.Procedure))}
		}),
		// The API's answers are small: compressing them (a gzip writer
		// reset per message) cost more CPU than the push itself.
		connect.WithCompressMinBytes(1024),
	)
	mux.Handle(path, holdFlushes(h))
	reflector := grpcreflect.NewStaticReflector(heraldv1connect.HeraldServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
}

// readLimit is the largest request message of a procedure: the HTTP API's
// body limits. A larger one is refused with ResourceExhausted before it is
// read whole.
func (a *API) readLimit(procedure string) int {
	switch procedure {
	case heraldv1connect.HeraldServicePushProcedure, heraldv1connect.HeraldServicePushStreamProcedure:
		return a.cfg.MaxPayload + 64<<10 // per message of a stream
	case heraldv1connect.HeraldServicePushBatchProcedure:
		n := int64(a.cfg.MaxBatch) * (int64(a.cfg.MaxPayload) + 4<<10)
		if a.cfg.MaxBody > 0 {
			n = min(n, a.cfg.MaxBody)
		}
		return int(n)
	}
	return 1 << 20 // room join/leave, as over HTTP; the other requests are small
}

type callerKey struct{}

// authenticate checks the call's API key (authorization metadata) before
// its request message is read, and puts the caller in the context.
func (a *API) authenticate(ctx context.Context, spec connect.Spec, _ connect.Peer, h http.Header) (context.Context, error) {
	c, err := a.keys.Authenticate(h.Get("Authorization"))
	if err != nil {
		cerr := a.status(spec.Procedure, err)
		a.metrics.RPCRequest(cerr.Code().String(), 0)
		return nil, cerr
	}
	return context.WithValue(ctx, callerKey{}, c), nil
}

// callerOf returns the caller authenticate put in ctx.
func callerOf(ctx context.Context) apikey.Caller {
	c, _ := ctx.Value(callerKey{}).(apikey.Caller)
	return c
}

// mapErrors turns a handler's error into a gRPC status, and counts the
// call.
func (a *API) mapErrors(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		code := "ok"
		if err != nil {
			cerr := a.status(req.Spec().Procedure, err)
			code, err = cerr.Code().String(), cerr
		}
		a.metrics.RPCRequest(code, time.Since(start).Seconds())
		return resp, err
	}
}

// status turns err into the gRPC status its code has in the catalogue
// (package apierr), with an ErrorInfo detail carrying the stable code, and
// logs it as the HTTP API does.
func (a *API) status(procedure string, err error) *connect.Error {
	info := errorInfo(err)
	code := apierr.Of(info.Code).GRPC
	if code == connect.CodeInternal || code == connect.CodeUnavailable {
		a.log.Error("grpc request failed", "procedure", procedure, "code", info.Code, "err", err)
	} else {
		a.log.Debug("grpc request refused", "procedure", procedure, "code", info.Code, "msg", info.Message)
	}
	ce := connect.NewError(code, errors.New(info.Message))
	if d, err := connect.NewErrorDetail(info); err == nil {
		ce.AddDetail(d)
	}
	return ce
}

// errorInfo is the code and message of err; an error from outside the
// catalogue is internal.
func errorInfo(err error) *heraldv1.ErrorInfo {
	pe := apierr.From(err)
	return &heraldv1.ErrorInfo{Code: pe.Code, Message: pe.Message}
}

// scoped resolves the app a call acts on (named, for admins) and bounds
// the call's engine work; the caller must call cancel unless err is set.
func (a *API) scoped(ctx context.Context, named string) (context.Context, context.CancelFunc, string, error) {
	app, err := a.keys.AppFor(callerOf(ctx), named)
	if err != nil {
		return nil, nil, "", err
	}
	ctx, cancel := a.engineCtx(ctx)
	return ctx, cancel, app, nil
}

// engineCtx bounds the engine work of one call.
func (a *API) engineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.EngineTimeout)
}
