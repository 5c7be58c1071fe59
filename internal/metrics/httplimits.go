package metrics

import "github.com/prometheus/client_golang/prometheus"

// httpLimits counts what the HTTP server's limits refused or closed.
type httpLimits struct {
	bodyBytes    prometheus.Gauge
	bodyRefused  prometheus.Counter
	resetFloods  prometheus.Counter
	chunkedClose prometheus.Counter
}

func (h *httpLimits) register(reg *prometheus.Registry) {
	h.bodyBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_api_body_in_flight_bytes", Help: "Bytes of API request bodies (HTTP and gRPC) counted against limits.max_body_bytes_in_flight."})
	h.bodyRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_api_body_budget_refused_total", Help: "API requests refused (503 unavailable) because limits.max_body_bytes_in_flight was spent."})
	h.resetFloods = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_http_h2_reset_floods_total", Help: "HTTP/2 connections closed because their client reset too many streams."})
	h.chunkedClose = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_http_transfer_encoding_closes_total", Help: "HTTP/1.1 connections closed after a request with Transfer-Encoding (RFC 9112 section 6.1)."})
	reg.MustRegister(h.bodyBytes, h.bodyRefused, h.resetFloods, h.chunkedClose)
}

// BodyBytes adds n (negative: releases) to the API body bytes in flight.
func (m *Metrics) BodyBytes(n int64) { m.http.bodyBytes.Add(float64(n)) }

// BodyRefused counts an API request refused for the body budget.
func (m *Metrics) BodyRefused() { m.http.bodyRefused.Inc() }

// ResetFlood counts an HTTP/2 connection closed for too many resets.
func (m *Metrics) ResetFlood() { m.http.resetFloods.Inc() }

// TransferEncodingClose counts an HTTP/1.1 connection closed after a
// request with Transfer-Encoding.
func (m *Metrics) TransferEncodingClose() { m.http.chunkedClose.Inc() }
