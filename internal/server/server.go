// Package server wires Herald's parts into one node: it builds every
// component from a validated config (New has no side effects), starts them
// in dependency order (Run) and stops them in reverse order when the
// context ends: stop accepting, tell clients to reconnect elsewhere, flush,
// close the engine.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/connlimit"
	"github.com/heraldpush/herald/internal/datadir"
	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/fastlane"
	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/grpcapi"
	"github.com/heraldpush/herald/internal/history"
	"github.com/heraldpush/herald/internal/httpapi"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/lifecycle"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natsinbox"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/pusherinfo"
)

// Version is the server version reported by /v1/nodes and `herald version`.
var Version = "0.1.0-dev"

// Server is one Herald node.
type Server struct {
	cfg       config.Config
	log       *slog.Logger
	hub       *hub.Hub
	metrics   *metrics.Metrics
	engine    *natsengine.Engine
	admin     *admin.Admin
	inbox     *natsinbox.Inbox
	service   *push.Service
	gateway   *gateway.Gateway
	http      *http.Server
	adminHTTP *http.Server   // the admin listener's server (nil without admin_addr)
	lane      *fastlane.Lane // keep-alive push connections served without net/http's per-request work
	httpBack  *http.Server   // the connections the lane hands back (HTTP/1 only)
	api       *httpapi.API
	ops       *cluster.Ops
	nodes     *natsengine.Nodes
	lifecycle *lifecycle.Lifecycle // presence and lifecycle webhooks
	history   *history.Sampler     // the overview's last 15 minutes
	// lifecycleConns: the gateway reports every connection to lifecycle
	// (webhooks or presence rooms), not only Pusher presence members.
	lifecycleConns bool
	pusherInfo     *pusherinfo.Store // Pusher presence members' info; nil without Pusher apps
	budget         connlimit.Budget  // the open-file budget; Max 0 when unknown
	// refusedWarned is when (Unix seconds) refused last logged a warning.
	refusedWarned atomic.Int64
	// Ready is closed once the node listens; Addr is then its address,
	// and AdminAddr that of the admin listener (admin_addr; else empty).
	Ready     chan struct{}
	Addr      string
	AdminAddr string
}

// New builds a node from cfg. It opens no socket and starts nothing.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NodeID == "" {
		cfg.NodeID = randomID()
	} else if err := validNodeID(cfg.NodeID); err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("server: tls: %w", err)
		}
	}
	keys, err := keyring(cfg.Apps)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, hub: hub.New(64), Ready: make(chan struct{})}
	if s.budget, err = connlimit.FromRlimit(cfg.Limits.FDReserve); err != nil {
		log.Warn("no connection cap from the open-file limit", "err", err)
	}
	s.metrics = metrics.New(func() (int, int, int) {
		n := s.hub.Counts()
		return n.Conns, n.Users, n.Rooms
	})
	// An embedded, unclustered node is the whole cluster: it takes every
	// topic at once and is the only writer of its inboxes.
	alone := cfg.NATSURL == "" && cfg.ClusterName == ""
	var natsCluster *natsengine.Cluster
	if cfg.ClusterName != "" {
		natsCluster = &natsengine.Cluster{Name: cfg.ClusterName, Listen: cfg.ClusterListen, Peers: cfg.ClusterPeers}
	}
	s.engine, err = natsengine.New(natsengine.Config{
		URL: cfg.NATSURL, DataDir: cfg.Data, NodeID: cfg.NodeID, Logger: log, Cluster: natsCluster, Replicas: cfg.Replicas,
		Broad:  alone,
		OnDrop: s.metrics.EngineDropped,
		// Stored messages published while the connection was down are
		// fetched from the inboxes.
		OnReconnect:    func() { s.gateway.CatchUp() },
		OnStoreFailure: s.metrics.StoreFailed,
		OnStoreHealed:  s.metrics.StoreHealed,
		SyncInterval:   cfg.SyncInterval,
	}, func(p [][]byte) { s.service.Deliver(p) })
	if err != nil {
		return nil, err
	}
	l := cfg.Limits
	if s.inbox, err = natsinbox.New(s.engine, natsinbox.Config{Cap: l.InboxCap, Timeout: l.EngineTimeout,
		Exclusive: alone, Replicas: s.engine.Replicas()}); err != nil {
		return nil, err
	}
	records := s.engine.Records(l.MaxTTL + 24*time.Hour)
	roomHistory := make([]push.RoomHistory, len(cfg.RoomHistory))
	for i, h := range cfg.RoomHistory {
		roomHistory[i] = push.RoomHistory{Rooms: h.Rooms, Size: h.Size, TTL: h.TTL}
	}
	s.service, err = push.New(push.Limits{MaxPayload: l.MaxPayload, MaxTargets: l.MaxTargets, DefaultTTL: l.DefaultTTL,
		MaxTTL: l.MaxTTL, IdempotencyTTL: l.IdempotencyTTL, IdempotencyMax: l.IdempotencyMax, RoomHistory: roomHistory, Alone: alone,
		EngineTimeout: l.EngineTimeout}, s.engine, s.inbox, records, s.hub, s.metrics, log)
	if err != nil {
		return nil, err
	}
	if err := s.newLifecycle(cfg, s.engine.Replicas()); err != nil {
		return nil, err
	}
	s.gateway, err = gateway.New(gateway.Config{
		NodeID: cfg.NodeID, Dev: cfg.Dev, Heartbeat: l.Heartbeat, HeartbeatTimeout: l.HeartbeatLimit,
		AuthTimeout: l.AuthTimeout, WriteTimeout: l.WriteTimeout, EngineTimeout: l.EngineTimeout, MaxFrame: l.MaxFrame,
		QueueBytes: l.QueueBytes, MaxRooms: l.MaxRooms, SendRate: l.SendRate, AllowedOrigins: cfg.AllowedOrigins,
		MaxConnsPerUser: l.MaxConnsPerUser, AppMaxConnsPerUser: appUserLimits(cfg.Apps), Lifecycle: s.gatewayLifecycle(),
		Presence: s.gatewayPresence(), PresenceMembers: l.PresenceMembers, Pusher: gatewayPusher(cfg),
		PusherInfo: s.gatewayPusherInfo(), PusherPresence: s.gatewayPusherPresence(),
	}, s.hub, s.engine, s.inbox, keys, s.service, s.metrics, log)
	if err != nil {
		return nil, err
	}
	apiKeys := &apikey.Keys{Apps: map[string]string{}, Admin: cfg.AdminKeys, Dev: cfg.Dev}
	for _, a := range cfg.Apps {
		for _, k := range a.APIKeys {
			apiKeys.Apps[k] = a.Name
		}
	}
	s.nodes = s.engine.Nodes(3 * announceEvery)
	s.ops, err = cluster.New(cluster.Config{NodeID: cfg.NodeID, Addr: cfg.Addr, Version: Version, MaxConn: s.maxConns(), Alone: alone,
		DrainTime: cfg.DrainTime, EngineTimeout: l.EngineTimeout, Log: log},
		s.hub, s.gateway, s.service, s.nodes, s.engine)
	if err != nil {
		return nil, err
	}
	s.gateway.SetFrameRouter(s.ops)
	if s.history, err = history.New(s.readings); err != nil {
		return nil, err
	}
	s.ops.SetHistory(s.history)
	s.ops.SetWebhooks(s.lifecycle)
	api, err := httpapi.New(httpapi.Config{MaxPayload: l.MaxPayload, MaxBatch: l.MaxBatch, EngineTimeout: l.EngineTimeout, Version: Version,
		MaxBody: l.MaxBodyBytesInFlight, Lifecycle: s.lifecycle},
		apiKeys, s.service, s.ops, s.gateway, s.engine, s.metrics, log)
	if err != nil {
		return nil, err
	}
	s.api = api
	rpc, err := grpcapi.New(grpcapi.Config{MaxPayload: l.MaxPayload, MaxBatch: l.MaxBatch, EngineTimeout: l.EngineTimeout, MaxBody: l.MaxBodyBytesInFlight,
		Lifecycle: s.lifecycle}, apiKeys, s.service, s.ops, s.metrics, log)
	if err != nil {
		return nil, err
	}
	if s.admin, err = admin.New(apiKeys, admin.NATSTap{Conn: s.engine.Conn, Local: s.service.Taps()}, s.metrics.Admin(), log); err != nil {
		return nil, err
	}
	s.metrics.AdminSessions(s.admin.Sessions)
	api.SetAuthenticator(s.admin.Authenticate)
	pusherAPI, err := httpapi.NewPusherAPI(pusherApps(cfg), s.service, s.ops, s.pusherMembers(), l.MaxPayload, l.EngineTimeout, log)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	api.Routes(mux)
	s.admin.APIRoutes(mux)
	mux.HandleFunc("GET /app/{key}", s.gateway.ServePusher)
	pusherAPI.Routes(mux)
	rpc.Routes(mux)
	if cfg.Pprof {
		api.Pprof(mux)
	}
	budget, err := httpapi.NewBodyBudget(l.MaxBodyBytesInFlight, s.metrics)
	if err != nil {
		return nil, err
	}
	var main http.Handler = mux
	if cfg.AdminAddr == "" {
		s.admin.UIRoutes(mux)
	} else {
		// The UI and its sessions live on the admin listener only.
		main = admin.WithoutSessions(mux)
		amux := http.NewServeMux()
		api.Routes(amux)
		s.admin.Routes(amux)
		s.adminHTTP = s.newHTTP(streamsApart(s.guard(amux), bodyDeadline(s.guard(budget.Wrap(amux)), l.BodyTimeout)))
	}
	s.lane = fastlane.New(fastPath, l.IdleTimeout, l.HeaderTimeout)
	s.http = s.newHTTP(s.lane.Wrap(streamsApart(s.guard(main), bodyDeadline(s.guard(budget.Wrap(main)), l.BodyTimeout))))
	s.http.RegisterOnShutdown(s.lane.Close)
	// The connections the lane hands back are HTTP/1.1 ones: served by
	// the same handler without HTTP/2 (no h2c preface in mid-connection).
	s.httpBack = s.newHTTP(s.http.Handler)
	s.httpBack.Protocols = new(http.Protocols)
	s.httpBack.Protocols.SetHTTP1(true)
	// Shutdown waits for running handlers: SSE streams end first (1001).
	s.http.RegisterOnShutdown(func() { s.gateway.CloseStreams(protocol.CloseGoingAway) })
	s.http.RegisterOnShutdown(s.admin.Close)
	if s.adminHTTP != nil {
		s.adminHTTP.RegisterOnShutdown(func() { s.gateway.CloseStreams(protocol.CloseGoingAway) })
		s.adminHTTP.RegisterOnShutdown(s.admin.Close)
	}
	return s, nil
}

// newHTTP is an HTTP server of the node's limits serving h.
func (s *Server) newHTTP(h http.Handler) *http.Server {
	l := s.cfg.Limits
	srv := &http.Server{Handler: h, ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout: l.IdleTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug), Protocols: new(http.Protocols),
		ConnContext: connContext, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: h2MaxStreams}}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)            // gRPC over TLS
	srv.Protocols.SetUnencryptedHTTP2(true) // gRPC without TLS (h2c, prior knowledge)
	return srv
}

// pusherApps lists the apps' Pusher identities (app "demo"'s from the
// --pusher-* flags in dev mode).
func pusherApps(cfg config.Config) []httpapi.PusherApp {
	var out []httpapi.PusherApp
	add := func(app string, p *config.Pusher) {
		if p != nil {
			out = append(out, httpapi.PusherApp{App: app, ID: p.AppID, Key: p.Key, Secret: p.Secret})
		}
	}
	for _, a := range cfg.Apps {
		add(a.Name, a.Pusher)
	}
	if cfg.Dev {
		add("demo", cfg.DevPusher)
	}
	return out
}

// gatewayPusher maps the apps' Pusher keys to what the gateway needs.
func gatewayPusher(cfg config.Config) map[string]*gateway.PusherApp {
	out := map[string]*gateway.PusherApp{}
	add := func(app string, p *config.Pusher) {
		if p != nil {
			out[p.Key] = &gateway.PusherApp{App: app, Key: p.Key, Secret: p.Secret, ClientEvents: p.ClientEvents}
		}
	}
	for _, a := range cfg.Apps {
		add(a.Name, a.Pusher)
	}
	if cfg.Dev {
		add("demo", cfg.DevPusher)
	}
	return out
}

// appUserLimits returns the apps' own max_conns_per_user values.
func appUserLimits(apps []config.App) map[string]int {
	out := map[string]int{}
	for _, a := range apps {
		if a.MaxConnsPerUser > 0 {
			out[a.Name] = a.MaxConnsPerUser
		}
	}
	return out
}

// keyring builds client-token verification for every app.
func keyring(apps []config.App) (*auth.Keyring, error) {
	if len(apps) == 0 {
		return nil, nil
	}
	specs := map[string]auth.KeySpec{}
	for _, a := range apps {
		spec := auth.KeySpec{Alg: strings.ToUpper(a.TokenAlg), Secret: []byte(a.TokenSecret), PublicKey: []byte(a.TokenPublicKey),
			MaxLifetime: a.MaxTokenLifetime}
		if a.TokenPublicKeyFile != "" {
			pem, err := os.ReadFile(a.TokenPublicKeyFile)
			if err != nil {
				return nil, fmt.Errorf("app %q: %w", a.Name, err)
			}
			spec.PublicKey = pem
		}
		if len(spec.Secret) == 0 {
			spec.Secret = nil
		}
		if len(spec.PublicKey) == 0 {
			spec.PublicKey = nil
		}
		specs[a.Name] = spec
	}
	return auth.NewKeyring(specs)
}

// Run starts the node and serves until ctx ends, then shuts down
// gracefully within grace.
//
// The node's lifetime is a context of its own (life), not ctx: the
// background work and the engine calls made without a caller (the
// gateway's replays and acks, the registry, the delivery flush, API
// calls) derive from it, so they outlive ctx through the graceful phase
// and are canceled when it is over: once it has finished, or when grace
// runs out.
func (s *Server) Run(ctx context.Context, grace time.Duration) error {
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	var lock *datadir.Lock
	if s.cfg.NATSURL == "" {
		var err error
		if lock, err = datadir.Acquire(s.cfg.Data); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		defer lock.Unlock()
	}
	raw, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	var adminLn net.Listener
	if s.adminHTTP != nil {
		if adminLn, err = s.listenAdmin(); err != nil {
			raw.Close()
			return err
		}
		defer adminLn.Close() // on an early return; Shutdown closes it too
	}
	ln := connlimit.New(raw, connlimit.Config{Max: s.maxConns(), PerIP: s.cfg.ConnsPerIP(), OnRefuse: s.refused})
	s.metrics.Gauge("herald_listener_connections", "Connections open on the listener (API and clients, before and after auth).",
		func() float64 { return float64(ln.Open()) })
	s.metrics.Gauge("herald_http_fastlane_connections", "Keep-alive HTTP/1.1 connections whose push calls the fast lane serves.",
		func() float64 { return float64(s.lane.Open()) })
	if err := s.engine.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	if err := s.startInbox(ctx); err != nil {
		ln.Close()
		s.engine.Close()
		return err
	}
	if err := s.startOps(ctx); err != nil {
		ln.Close()
		s.engine.Close()
		return err
	}
	if err := s.startLifecycle(life); err != nil {
		ln.Close()
		s.engine.Close()
		return err
	}
	if err := s.gateway.Start(life); err != nil {
		ln.Close()
		s.closeLifecycle()
		s.engine.Close()
		return err
	}
	s.http.BaseContext = func(net.Listener) context.Context { return life }
	stopBackground := make(chan struct{}) // the flush and the announcements: their last round
	flushed := make(chan struct{})
	go func() { s.service.Run(life, stopBackground, 250*time.Millisecond); close(flushed) }()
	sampled := make(chan struct{})
	go func() { s.history.Run(life, stopBackground, s.cfg.Limits.EngineTimeout); close(sampled) }()
	s.Addr = ln.Addr().String()
	serveErr := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener) {
		if s.cfg.TLSCert != "" {
			serveErr <- srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}
	go serve(s.http, ln)
	s.httpBack.BaseContext = s.http.BaseContext
	go func() { _ = s.httpBack.Serve(s.lane.Listener()) }()
	uiAddr := s.Addr
	if adminLn != nil {
		s.AdminAddr = adminLn.Addr().String()
		uiAddr = s.AdminAddr
		s.adminHTTP.BaseContext = s.http.BaseContext
		go serve(s.adminHTTP, adminLn)
	}
	s.log.Info("herald serving", "addr", s.Addr, "node", s.cfg.NodeID, "engine", s.engineName(), "version", Version,
		"max_conns", s.maxConns(), "max_conns_per_ip", s.cfg.ConnsPerIP(), "open_file_limit", s.budget.Limit)
	s.log.Info("admin UI", "url", adminURL(s.cfg.TLSCert != "", uiAddr))
	close(s.Ready)
	announced := make(chan struct{})
	go func() {
		s.ops.Announce(life, stopBackground, advertised(s.cfg.Advertise, s.Addr), announceEvery)
		close(announced)
	}()

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case over := <-s.ops.Drains():
		s.drain(ctx, over)
	}
	s.log.Info("herald shutting down")
	sctx, cancel := context.WithTimeout(life, grace)
	defer cancel()
	context.AfterFunc(sctx, endLife) // grace is over: cancel what still waits on the engine
	errs := []error{err}
	if s.adminHTTP != nil {
		errs = append(errs, s.adminHTTP.Shutdown(sctx))
	}
	errs = append(errs, s.http.Shutdown(sctx)) // stop accepting; API calls in flight finish
	errs = append(errs, s.lane.Shutdown(sctx), s.httpBack.Shutdown(sctx))
	errs = append(errs, s.gateway.Shutdown(sctx, protocol.CloseGoingAway))
	close(stopBackground)
	<-announced // and this node left the registry
	<-flushed   // the last delivered positions are recorded
	<-sampled
	errs = append(errs, s.closeLifecycle())
	endLife() // the graceful phase is over
	errs = append(errs, s.engine.Close())
	if err := errors.Join(errs...); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) engineName() string {
	if s.cfg.NATSURL != "" {
		return "nats " + s.cfg.NATSURL
	}
	return "embedded nats, data in " + s.cfg.Data
}

var nodeEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return nodeEncoding.EncodeToString(b[:])
}

func validNodeID(id string) error {
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("server: node id %q may hold only a-z, 0-9 and '-'", id)
		}
	}
	return nil
}

// maxConns is the listener's connection cap: the configured one, else
// what the open-file limit leaves after the engine's reserve (0: none).
func (s *Server) maxConns() int {
	if n := s.cfg.Limits.MaxConns; n > 0 {
		return n
	}
	return s.budget.Max
}

// refused counts a connection closed on accept; the first of a minute is
// a warning (a node at its caps refuses clients: too small a limit, a
// flood, or everyone arriving through one load balancer's address).
func (s *Server) refused(reason string) {
	s.metrics.Refused(reason)
	now := time.Now().Unix()
	if last := s.refusedWarned.Load(); now-last < 60 || !s.refusedWarned.CompareAndSwap(last, now) {
		return
	}
	msg := "connections refused: the node holds max_conns connections"
	if reason == connlimit.ReasonPerIP {
		msg = "connections refused: an address holds max_conns_per_ip connections (clients behind one load balancer or NAT? set max_conns_per_ip: -1)"
	}
	s.log.Warn(msg, "max_conns", s.maxConns(), "max_conns_per_ip", s.cfg.ConnsPerIP(), "more", "herald_listener_refused_total")
}

// bodyDeadline bounds how long a request's body may take to arrive: a
// client that announces a body and sends it slowly, or never, holds its
// connection (HTTP/1) or stream (HTTP/2) and its place in the body budget
// for at most d. The deadline ends once the body is read to its end, so a
// handler that takes its time is not cut off. (A refusal that never reads
// the body ends the wait at once: see httpapi's keyless endpoints and 401s
// and the gateway's refusals.)
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(d))
		orig := r.Body
		r.Body = &trackedBody{ReadCloser: orig, rc: rc, left: r.ContentLength}
		h.ServeHTTP(w, r)
		// Go's server looks at the body's type after the handler to decide
		// whether to read what is left of it or to close the connection.
		r.Body = orig
	})
}

// fastPath says which requests move a keep-alive HTTP/1.1 connection onto
// the fast lane: the push calls a backend makes over and over (Herald's
// and Pusher's).
func fastPath(method, path string) bool {
	if method != http.MethodPost {
		return false
	}
	switch path {
	case "/v1/push", "/v1/push/batch":
		return true
	}
	rest, ok := strings.CutPrefix(path, "/apps/")
	if !ok {
		return false
	}
	id, call, ok := strings.Cut(rest, "/")
	return ok && id != "" && (call == "events" || call == "batch_events")
}

// streamsApart sends the streaming calls (PushStream: one long request
// whose body is a stream of messages, each bounded by its own read limit)
// to stream, and every other request to bounded: a whole-body deadline or
// a share of the body budget held for a stream's life would cut it off or
// starve the other calls.
func streamsApart(stream, bounded http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == heraldv1connect.HeraldServicePushStreamProcedure {
			stream.ServeHTTP(w, r)
			return
		}
		bounded.ServeHTTP(w, r)
	})
}

// trackedBody lifts its deadline once a request body was read to its end
// (all of its Content-Length, or io.EOF). (Go's server then reads the
// connection in the background, and a deadline firing there would cancel
// the request.)
type trackedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	left int64 // bytes of the Content-Length not read yet; < 0: unknown
	done bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	if !b.done && (err == io.EOF || b.left == 0) {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// announceEvery is how often a node refreshes its registry entry; an entry
// not refreshed for three periods disappears.
const announceEvery = 5 * time.Second

// drain closes the clients with the reconnect code spread over the given
// time (a SIGTERM meanwhile cuts it short), before the node shuts down.
func (s *Server) drain(ctx context.Context, over time.Duration) {
	s.log.Info("herald draining: no new connections; moving clients away", "conns", s.hub.Counts().Conns, "over", over)
	if err := s.gateway.Drain(ctx, over); err != nil {
		s.log.Warn("drain cut short", "err", err)
	}
}

// advertised is the host:port other nodes and clients should use: the
// configured one, or the bound address with an unspecified host replaced
// by this machine's name.
func advertised(configured, bound string) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// startOps makes this node answer the other nodes' operations, waiting
// (until ctx ends) while the engine is not reachable.
func (s *Server) startOps(ctx context.Context) error {
	return s.waitForEngine(ctx, "the NATS server", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.EngineTimeout)
		defer cancel()
		return s.ops.Start(ctx)
	})
}

// startInbox starts the inbox, waiting (until ctx ends) while the engine is
// not ready yet: a clustered node's JetStream needs its peers and a meta
// leader before it can create or bind the streams, and a node restarted
// while most of its peers are down waits for one of them to come back.
func (s *Server) startInbox(ctx context.Context) error {
	return s.waitForEngine(ctx, "JetStream", s.inbox.Start)
}

// waitLogEvery is how often a node waiting for the engine at start says so.
const waitLogEvery = 5 * time.Second

// waitForEngine calls start until it succeeds, fails with an error other
// than engine.ErrUnavailable, or ctx ends, pausing a second between the
// attempts. While it waits it logs "waiting for <what>" with the last
// reason every waitLogEvery (not every attempt), and once it is over how
// long it waited.
func (s *Server) waitForEngine(ctx context.Context, what string, start func(context.Context) error) error {
	began := time.Now()
	var logged time.Time
	for {
		err := start(ctx)
		if err == nil {
			if !logged.IsZero() {
				s.log.Info(what+" is available", "waited", time.Since(began).Round(time.Millisecond))
			}
			return nil
		}
		if !errors.Is(err, engine.ErrUnavailable) {
			return err
		}
		if logged.IsZero() || time.Since(logged) >= waitLogEvery {
			s.log.Warn("waiting for "+what+" to become available (a clustered node needs a majority of its peers up)",
				"waited", time.Since(began).Round(time.Second), "reason", err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
