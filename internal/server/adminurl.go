package server

import (
	"fmt"
	"net"

	"github.com/heraldpush/herald/internal/connlimit"
)

// adminURL is where the admin UI of a node listening on addr is reached
// (a wildcard host is shown as 127.0.0.1).
func adminURL(tls bool, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + addr + "/admin/"
}

// Caps of the admin listener (admin_addr): a few operators' browsers need
// a handful of connections each, and the listener must never take the
// open files the client listener counts on.
const (
	adminMaxConns      = 256
	adminMaxConnsPerIP = 32
)

// listenAdmin opens the admin listener with its connection caps; a
// refused connection counts in herald_listener_refused_total with the
// reason admin_global or admin_per_ip.
func (s *Server) listenAdmin() (net.Listener, error) {
	raw, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("server: listen (admin_addr): %w", err)
	}
	ln := connlimit.New(raw, connlimit.Config{Max: adminMaxConns, PerIP: adminMaxConnsPerIP,
		OnRefuse: func(reason string) { s.metrics.Refused("admin_" + reason) }})
	s.metrics.Gauge("herald_admin_listener_connections", "Connections open on the admin listener (admin_addr).",
		func() float64 { return float64(ln.Open()) })
	return ln, nil
}
