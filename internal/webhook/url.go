package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrUnsafeURL is returned for an endpoint that is refused unless private
// webhooks are allowed: not https, or on a private, loopback, link-local
// or unspecified address.
var ErrUnsafeURL = errors.New("webhook: unsafe endpoint URL (https to a public address is required unless allow_private_webhooks is set)")

// CheckURL validates an endpoint URL. With allowPrivate, http:// and any
// address are accepted; otherwise https:// to a host that is not a
// private, loopback or link-local address literal or "localhost". Host
// names are checked again, after resolution, when the sender dials.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("webhook: %q is not an http(s) URL", raw)
	}
	if allowPrivate {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: %s", ErrUnsafeURL, raw)
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s", ErrUnsafeURL, raw)
	}
	if a, err := netip.ParseAddr(host); err == nil && private(a) {
		return fmt.Errorf("%w: %s", ErrUnsafeURL, raw)
	}
	return nil
}

func private(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(a) // carrier-grade NAT
}

// publicOnly is a net.Dialer Control refusing private addresses, so a
// host name that resolves (or is rebound) to one is not reached.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if private(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrUnsafeURL, address)
	}
	return nil
}

// dialer returns the sender's dial function.
func dialer(allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	if !allowPrivate {
		d.Control = publicOnly
	}
	return d.DialContext
}
