package metrics

import "github.com/prometheus/client_golang/prometheus"

// adminUI counts the admin UI's logins.
type adminUI struct {
	attempts, failures, throttled prometheus.Counter
}

func (a *adminUI) register(reg *prometheus.Registry) {
	a.attempts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_admin_login_attempts_total", Help: "Admin UI logins tried (POST /admin/login from the UI's own origin)."})
	a.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_admin_login_failures_total", Help: "Admin UI logins refused for a missing or wrong API key."})
	a.throttled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_admin_login_throttled_total", Help: "Admin UI logins refused unread (429) because their address failed too often."})
	reg.MustRegister(a.attempts, a.failures, a.throttled)
}

// AdminObserver counts the admin UI's logins (it implements
// admin.Observer).
type AdminObserver struct{ a *adminUI }

// Admin returns the observer the admin UI reports to.
func (m *Metrics) Admin() AdminObserver { return AdminObserver{&m.admin} }

// LoginAttempt counts a login tried.
func (o AdminObserver) LoginAttempt() { o.a.attempts.Inc() }

// LoginFailed counts a login refused for its key.
func (o AdminObserver) LoginFailed() { o.a.failures.Inc() }

// LoginThrottled counts a login refused for its address's failures.
func (o AdminObserver) LoginThrottled() { o.a.throttled.Inc() }

// AdminSessions registers herald_admin_sessions, the live admin UI
// sessions, read from f at scrape time.
func (m *Metrics) AdminSessions(f func() int) {
	m.Gauge("herald_admin_sessions", "Admin UI sessions live on this node (logged in, not expired).", func() float64 { return float64(f()) })
}
