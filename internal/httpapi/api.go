package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/lifecycle"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/push"
	heraldjs "github.com/heraldpush/herald/sdk/js"
)

// Config holds the API's limits.
type Config struct {
	MaxPayload    int
	MaxBatch      int
	EngineTimeout time.Duration
	Version       string // reported by GET /
	// MaxBody caps any one request body (limits.max_body_bytes_in_flight:
	// a body over the node's whole budget could never be read); 0: no cap.
	MaxBody int64
	// Lifecycle answers the presence query and the dead-letter routes.
	Lifecycle *lifecycle.Lifecycle
}

// pushBodyLimit is the largest body of one push: its data and room for the
// rest of the push (targets, ttl, id).
func (c *Config) pushBodyLimit() int64 { return int64(c.MaxPayload) + 64<<10 }

// batchBodyLimit is the largest body of a batch: max_batch pushes, but no
// more than MaxBody.
func (c *Config) batchBodyLimit() int64 {
	n := int64(c.MaxBatch) * (int64(c.MaxPayload) + 4<<10)
	if c.MaxBody > 0 {
		n = min(n, c.MaxBody)
	}
	return n
}

// Gateway is what the API serves of this node's gateway
// (*gateway.Gateway): the client endpoints and their CORS handling.
type Gateway interface {
	http.Handler // GET /v1/ws
	ServeSSE(w http.ResponseWriter, r *http.Request)
	ServeSSEFrame(w http.ResponseWriter, r *http.Request)
	Preflight(w http.ResponseWriter, r *http.Request)
	CORS(next http.Handler) http.Handler
}

// Readiness is what GET /readyz asks of the engine (engine.Broker):
// whether it can take work now.
type Readiness interface {
	Ready(ctx context.Context) error
}

// API serves the v1 server API.
type API struct {
	cfg     Config
	keys    *apikey.Keys
	svc     *push.Service
	ops     *cluster.Ops
	gw      Gateway
	broker  Readiness
	metrics *metrics.Metrics
	log     *slog.Logger
	auth    func(*http.Request) (principal, error) // nil: the Authorization header only
}

// New builds the API over the push service and the operations; gw serves
// the WebSocket endpoint and b answers /readyz.
func New(cfg Config, keys *apikey.Keys, svc *push.Service, o *cluster.Ops, gw Gateway, b Readiness, m *metrics.Metrics, log *slog.Logger) (*API, error) {
	if keys == nil || svc == nil || o == nil || gw == nil || b == nil || m == nil {
		return nil, errors.New("httpapi: missing dependency")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{cfg: cfg, keys: keys, svc: svc, ops: o, gw: gw, broker: b, metrics: m, log: log}, nil
}

// Routes registers every route on mux, the WebSocket endpoint included.
func (a *API) Routes(mux *http.ServeMux) {
	mux.Handle("GET /v1/ws", a.gw)
	mux.HandleFunc("GET /v1/sse", a.gw.ServeSSE)
	mux.HandleFunc("POST /v1/sse/{conn}", a.gw.ServeSSEFrame)
	mux.HandleFunc("OPTIONS /v1/sse", a.gw.Preflight)
	mux.HandleFunc("OPTIONS /v1/sse/{conn}", a.gw.Preflight)
	mux.Handle("GET /v1/herald.js", a.gw.CORS(http.HandlerFunc(serveScript)))
	mux.HandleFunc("OPTIONS /v1/herald.js", a.gw.Preflight)
	mux.Handle("GET /healthz", keyless(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }))
	mux.Handle("GET /readyz", keyless(a.readyz))
	mux.Handle("GET /{$}", keyless(a.index))
	mux.Handle("GET /metrics", keyless(a.metrics.Handler().ServeHTTP))
	mux.Handle("/", keyless(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, push.Errorf(push.CodeNotFound, "no such endpoint; see GET /"))
	}))

	mux.Handle("POST /v1/push", a.wrap(a.push))
	mux.Handle("POST /v1/push/batch", a.wrap(a.batch))
	mux.Handle("POST /v1/rooms/{room}/join", a.wrap(a.membership(a.ops.Join)))
	mux.Handle("POST /v1/rooms/{room}/leave", a.wrap(a.membership(a.ops.Leave)))
	mux.Handle("GET /v1/rooms/{room}", a.wrap(a.room))
	mux.Handle("GET /v1/rooms/{room}/presence", a.wrap(a.presence))
	mux.Handle("GET /v1/webhooks", a.wrap(a.webhooks))
	mux.Handle("GET /v1/webhooks/dead", a.wrap(a.deadLetters))
	mux.Handle("POST /v1/webhooks/dead/replay", a.wrap(a.replayDead))
	mux.Handle("GET /v1/users/{user}", a.wrap(a.user))
	mux.Handle("GET /v1/users/{user}/inbox", a.wrap(a.inbox))
	mux.Handle("DELETE /v1/conns/{id}", a.wrap(a.kickConn))
	mux.Handle("DELETE /v1/users/{user}/conns", a.wrap(a.kickUser))
	mux.Handle("GET /v1/messages", a.wrap(a.recentMessages))
	mux.Handle("GET /v1/messages/{id}", a.wrap(a.messageStatus))
	mux.Handle("DELETE /v1/messages/{id}", a.wrap(a.recall))
	mux.Handle("GET /v1/stats", a.wrap(a.stats))
	mux.Handle("GET /v1/stats/history", a.wrap(a.statsHistory))
	mux.Handle("GET /v1/nodes", a.wrap(a.nodes))
	mux.Handle("GET /v1/route", a.wrap(a.route))
	mux.Handle("POST /v1/admin/drain", a.wrap(a.drain))
	mux.Handle("/v1/", a.wrap(func(http.ResponseWriter, *http.Request, principal) error {
		return push.Errorf(push.CodeNotFound, "no such endpoint")
	}))
}

// scriptETag names the embedded SDK build, so that browsers revalidate it
// cheaply and never keep a stale one after an upgrade.
var scriptETag = fmt.Sprintf(`"%x"`, sha256.Sum256(heraldjs.Script))

// serveScript answers GET /v1/herald.js: the JavaScript client SDK's
// browser build (global Herald), embedded in the binary.
func serveScript(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", scriptETag)
	http.ServeContent(w, r, "herald.js", time.Time{}, bytes.NewReader(heraldjs.Script))
}

// keyless wraps an endpoint that needs no key: its HTTP/1 connection
// closes after the answer, so that nobody holds a connection (and a place
// under the node's connection caps) by calling it now and then.
func keyless(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notWaitedFor(w, r)
		h(w, r)
	})
}

// notWaitedFor answers a caller without a key without waiting for it: an
// HTTP/1 connection closes after the answer, and a body it announced is not
// read (Go's server would otherwise read what is left of it before closing).
func notWaitedFor(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 1 {
		return
	}
	w.Header().Set("Connection", "close")
	if r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

// DocsURL is where GET / points people to.
const DocsURL = "https://github.com/heraldpush/herald/tree/main/docs"

// index answers GET / (no key needed) with what this server is and where
// to go next, instead of a bare 404.
func (a *API) index(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]string{
		"name":      "herald",
		"version":   a.cfg.Version,
		"docs":      DocsURL,
		"websocket": "/v1/ws",
		"sse":       "/v1/sse",
		"api":       "/v1/ (Authorization: Bearer <api key>)",
		"health":    "/healthz",
		"ready":     "/readyz",
		"metrics":   "/metrics",
	})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.ops.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "node is draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.EngineTimeout)
	defer cancel()
	if err := a.broker.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "engine unreachable"})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

// principal is who is calling.
type principal = apikey.Caller

type handlerFunc func(w http.ResponseWriter, r *http.Request, p principal) error

// wrap authenticates the call, runs h and turns its error into the JSON
// error shape, a log line and a metric.
func (a *API) wrap(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		p, err := a.authenticate(r)
		if err == nil {
			err = h(rec, r, p)
		}
		if err != nil {
			a.writeError(rec, r, err)
		}
		a.metrics.APIRequest(rec.status, time.Since(start).Seconds())
	})
}

// SetAuthenticator makes f decide who each call comes from (the admin
// UI's sessions: package admin), instead of the Authorization header
// alone. Call it before serving.
func (a *API) SetAuthenticator(f func(*http.Request) (principal, error)) { a.auth = f }

func (a *API) authenticate(r *http.Request) (principal, error) {
	if a.auth != nil {
		return a.auth(r)
	}
	return a.keys.Authenticate(r.Header.Get("Authorization"))
}

// appFor resolves the app a call acts on.
func (a *API) appFor(p principal, named string) (string, error) { return a.keys.AppFor(p, named) }

// writeError answers err in the API's error shape, with the status its
// code has in the catalogue (package apierr); an error outside the
// catalogue is internal.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	pe := apierr.From(err)
	status := apierr.Of(pe.Code).Status
	if status == http.StatusUnauthorized {
		notWaitedFor(w, r)
	}
	if status >= 500 {
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "code", pe.Code, "err", err)
	} else {
		a.log.Debug("api request refused", "method", r.Method, "path", r.URL.Path, "code", pe.Code, "msg", pe.Message)
	}
	writeJSON(w, status, errorBody(pe))
}

func errorBody(pe *apierr.Error) map[string]any {
	return map[string]any{"error": map[string]string{"code": pe.Code, "message": pe.Message}}
}

// writeJSON answers v as JSON, written for humans too: "<", ">" and "&"
// stay as they are (no \u003c escapes; no body is ever served as HTML).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decode reads a JSON body of at most limit bytes into v.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON body")
	}
	return decodeError(err)
}

// readBody reads a body of at most limit bytes whole, in one allocation
// when its length is declared.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, decodeError(err)
	}
	return buf.Bytes(), nil
}

// bodyPool holds request bodies read by readPooled.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readPooled is readBody into a pooled buffer; give it back with
// putPooled once nothing refers to the body any more.
func readPooled(w http.ResponseWriter, r *http.Request, limit int64) (*[]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	bp := bodyPool.Get().(*[]byte)
	b := (*bp)[:0]
	if r.ContentLength > 0 {
		b = slices.Grow(b, int(r.ContentLength)+1) // +1: room to see io.EOF
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, bytes.MinRead)
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b
			putPooled(bp)
			return nil, decodeError(err)
		}
	}
	*bp = b
	return bp, nil
}

// putPooled returns a body of readPooled to the pool (not the big ones).
func putPooled(bp *[]byte) {
	if cap(*bp) <= 16<<10 {
		bodyPool.Put(bp)
	}
}

func tooLarge(limit int64) error {
	return push.Errorf(push.CodeTooLarge, "request body is over %d bytes", limit)
}

func decodeError(err error) error {
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var pe *push.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe // the body budget's refusal
	case errors.As(err, &tooBig):
		return tooLarge(tooBig.Limit)
	case errors.As(err, &typeErr):
		return push.Errorf(push.CodeInvalidArgument, "field %s must be %s", typeErr.Field, typeErr.Type)
	case errors.Is(err, io.EOF):
		return push.Errorf(push.CodeInvalidJSON, "empty request body")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return push.Errorf(push.CodeInvalidArgument, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return push.Errorf(push.CodeInvalidJSON, "request body is not valid JSON: %v", err)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Pprof serves Go's profiles under /debug/pprof/ to admin keys (anyone in
// dev mode).
func (a *API) Pprof(mux *http.ServeMux) {
	admin := func(h http.HandlerFunc) http.Handler {
		return a.wrap(func(w http.ResponseWriter, r *http.Request, p principal) error {
			if !p.Admin {
				return push.Errorf(push.CodeForbidden, "profiles need an admin key")
			}
			h(w, r)
			return nil
		})
	}
	mux.Handle("GET /debug/pprof/", admin(pprof.Index))
	mux.Handle("GET /debug/pprof/profile", admin(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", admin(pprof.Trace))
	mux.Handle("GET /debug/pprof/symbol", admin(pprof.Symbol))
}
