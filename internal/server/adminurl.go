package server

import "net"

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
