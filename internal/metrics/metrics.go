// Package metrics declares every Prometheus metric Herald exports, on a
// registry the server owns (no global registry). Labels are low-cardinality
// only: never a user, room or connection id. All methods are safe for
// concurrent use.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds Herald's collectors.
type Metrics struct {
	reg *prometheus.Registry

	connects      prometheus.Counter
	disconnects   *prometheus.CounterVec
	slowConsumers prometheus.Counter
	userLimited   prometheus.Counter
	framesWritten prometheus.Counter
	writes        prometheus.Counter
	clientErrors  *prometheus.CounterVec
	pushes        *prometheus.CounterVec
	deliveries    prometheus.Counter
	engineDrops   prometheus.Counter
	acksIgnored   prometheus.Counter
	apiRequests   *prometheus.CounterVec
	rpcRequests   *prometheus.CounterVec
	apiLatency    prometheus.Histogram
	refused       *prometheus.CounterVec
	storeFailures prometheus.Counter
	storeHealed   prometheus.Counter
	authRefused   *prometheus.CounterVec
	http          httpLimits
	webhooks      webhooks
	admin         adminUI
}

// New builds the collectors. gauges reports live counts at scrape time.
func New(gauges func() (conns, users, rooms int)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_connects_total", Help: "Client connections accepted (after auth)."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_disconnects_total", Help: "Client connections closed, by close code."}, []string{"code"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_slow_consumers_total", Help: "Connections closed because their write queue was full."}),
		userLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_user_limit_refused_total", Help: "Connections closed with 4009: their user already held max_conns_per_user connections on this node."}),
		framesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_frames_written_total", Help: "Queued frames written to sockets."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_gateway_writes_total", Help: "writev calls (batches) made."}),
		clientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_client_errors_total", Help: "Error frames sent to clients, by code."}, []string{"code"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_push_messages_total", Help: "Pushes accepted, by origin (api, client)."}, []string{"origin"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_push_deliveries_total", Help: "Messages handed to local connections' write queues."}),
		acksIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_inbox_acks_ignored_total", Help: "Client acks of a sequence never sent, ignored."}),
		engineDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_engine_dropped_total", Help: "Pushes dropped because a dispatcher queue was full."}),
		authRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_gateway_auth_refused_total", Help: "Client tokens (and dev-mode identities) refused, by reason (expired, invalid)."}, []string{"reason"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_api_requests_total", Help: "Server API requests over HTTP, by status code."}, []string{"status"}),
		rpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rpc_requests_total", Help: "Server API calls over gRPC, gRPC-Web and Connect, by status code (ok, not_found, ...)."}, []string{"code"}),
		apiLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_api_request_duration_seconds", Help: "Server API request latency (HTTP and gRPC).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_listener_refused_total", Help: "Connections closed on accept, by cap (global, per_ip)."}, []string{"reason"}),
		storeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_engine_store_failures_total", Help: "Times the engine's store failed (the node turned not ready)."}),
		storeHealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_engine_store_recoveries_total", Help: "Times the engine's store was restarted and served again."}),
	}
	reg.MustRegister(m.connects, m.disconnects, m.slowConsumers, m.framesWritten, m.writes,
		m.clientErrors, m.pushes, m.deliveries, m.engineDrops, m.acksIgnored, m.apiRequests, m.rpcRequests, m.apiLatency,
		m.refused, m.storeFailures, m.storeHealed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.authRefused)
	reg.MustRegister(m.userLimited)
	m.http.register(reg)
	m.webhooks.register(reg)
	m.admin.register(reg)
	if gauges != nil {
		for i, name := range []string{"connections", "users", "rooms"} {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "herald_hub_" + name, Help: "Live " + name + " on this node."},
				func() float64 {
					c, u, r := gauges()
					return float64([]int{c, u, r}[i])
				}))
		}
	}
	return m
}

// Gauge registers a gauge read from f at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Refused counts a connection closed on accept because of a cap.
func (m *Metrics) Refused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// StoreFailed counts a store failure of the engine.
func (m *Metrics) StoreFailed() { m.storeFailures.Inc() }

// StoreHealed counts a recovered store.
func (m *Metrics) StoreHealed() { m.storeHealed.Inc() }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// AuthRefused counts a refused client token or dev identity; expired
// tells an expired token from any other refusal.
func (m *Metrics) AuthRefused(expired bool) {
	reason := "invalid"
	if expired {
		reason = "expired"
	}
	m.authRefused.WithLabelValues(reason).Inc()
}

// Connected counts an accepted connection.
func (m *Metrics) Connected() { m.connects.Inc() }

// Disconnected counts a closed connection.
func (m *Metrics) Disconnected(code int) { m.disconnects.WithLabelValues(strconv.Itoa(code)).Inc() }

// SlowConsumer counts a connection closed for a full queue.
func (m *Metrics) SlowConsumer() { m.slowConsumers.Inc() }

// UserLimited counts a connection refused for its user's connection limit.
func (m *Metrics) UserLimited() { m.userLimited.Inc() }

// Written counts one writev carrying frames queued frames.
func (m *Metrics) Written(frames int) {
	m.writes.Inc()
	m.framesWritten.Add(float64(frames))
}

// ClientError counts an error frame sent to a client.
func (m *Metrics) ClientError(code int) { m.clientErrors.WithLabelValues(strconv.Itoa(code)).Inc() }

// Pushed counts n accepted pushes.
func (m *Metrics) Pushed(origin string, n int) { m.pushes.WithLabelValues(origin).Add(float64(n)) }

// Delivered counts messages handed to connection queues.
func (m *Metrics) Delivered(n int) { m.deliveries.Add(float64(n)) }

// EngineDropped counts a push dropped by the engine.
func (m *Metrics) EngineDropped() { m.engineDrops.Inc() }

// APIRequest records one server API request.
func (m *Metrics) APIRequest(status int, seconds float64) {
	m.apiRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	m.apiLatency.Observe(seconds)
}

// RPCRequest counts one gRPC/Connect call with its status code and latency.
func (m *Metrics) RPCRequest(code string, seconds float64) {
	m.rpcRequests.WithLabelValues(code).Inc()
	m.apiLatency.Observe(seconds)
}

// AckIgnored counts a client ack of a sequence never sent.
func (m *Metrics) AckIgnored() { m.acksIgnored.Inc() }
