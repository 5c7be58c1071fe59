package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// webhooks counts what the lifecycle webhook outbox does, per endpoint
// (its configured id, "ep_…": a handful per node, listed with their URLs
// by the outbox's stats).
type webhooks struct {
	queued, delivered, retried, dead, disabled *prometheus.CounterVec
	firstAttempt                               *prometheus.HistogramVec
}

func (w *webhooks) register(reg *prometheus.Registry) {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"endpoint"})
	}
	w.queued = vec("herald_webhook_events_queued_total", "Webhook events stored in the outbox by this node, per endpoint that receives them.")
	w.delivered = vec("herald_webhook_events_delivered_total", "Webhook events a receiver answered 2xx to, per endpoint.")
	w.retried = vec("herald_webhook_retries_total", "Failed webhook attempts followed by a retry (non-2xx, no answer, timeout), per endpoint.")
	w.dead = vec("herald_webhook_events_dead_total", "Webhook events moved to the dead-letter list after retry_for, per endpoint.")
	w.disabled = vec("herald_webhook_disabled_total", "Times an endpoint answered 410 Gone and was disabled.")
	w.firstAttempt = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "herald_webhook_first_attempt_delay_seconds", Help: "Time from an event being stored to its first delivery attempt, per endpoint.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 3600}}, []string{"endpoint"})
	reg.MustRegister(w.queued, w.delivered, w.retried, w.dead, w.disabled, w.firstAttempt)
}

// WebhookObserver counts the outbox's work (it implements
// webhook.Observer).
type WebhookObserver struct{ w *webhooks }

// Webhooks returns the observer the webhook outbox reports to.
func (m *Metrics) Webhooks() WebhookObserver { return WebhookObserver{&m.webhooks} }

// Queued counts an event stored for endpoint.
func (o WebhookObserver) Queued(endpoint string) { o.w.queued.WithLabelValues(endpoint).Inc() }

// FirstAttempt records how long after it was stored an event was first
// tried.
func (o WebhookObserver) FirstAttempt(endpoint string, wait time.Duration) {
	o.w.firstAttempt.WithLabelValues(endpoint).Observe(wait.Seconds())
}

// Delivered counts an event the endpoint accepted.
func (o WebhookObserver) Delivered(endpoint string) { o.w.delivered.WithLabelValues(endpoint).Inc() }

// Retried counts a failed attempt that will be retried.
func (o WebhookObserver) Retried(endpoint string) { o.w.retried.WithLabelValues(endpoint).Inc() }

// Dead counts an event dead-lettered.
func (o WebhookObserver) Dead(endpoint string) { o.w.dead.WithLabelValues(endpoint).Inc() }

// Disabled counts an endpoint disabled by a 410.
func (o WebhookObserver) Disabled(endpoint string) { o.w.disabled.WithLabelValues(endpoint).Inc() }
