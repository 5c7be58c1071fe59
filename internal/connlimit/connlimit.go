// Package connlimit bounds the connections a node accepts, before any byte
// of them is read: a global cap kept below the process's open-file limit
// (so the engine always has descriptors left for its store) and a per-IP
// cap (so one host cannot take the whole global cap). A connection over
// either cap is closed at once. It is safe for concurrent use: Accept runs
// in the server's accept loop, Close on any goroutine.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Refusal reasons passed to Config.OnRefuse.
const (
	ReasonGlobal = "global" // the node holds Max connections
	ReasonPerIP  = "per_ip" // the client's address holds PerIP connections
)

// Config sets the caps; zero means no cap.
type Config struct {
	Max   int // open connections on the listener
	PerIP int // open connections from one remote IPv4 address or IPv6 /64
	// OnRefuse is called for every refused connection (may be nil).
	OnRefuse func(reason string)
}

// Listener is a net.Listener that enforces Config.
type Listener struct {
	net.Listener
	cfg  Config
	open atomic.Int64

	mu    sync.Mutex
	perIP map[netip.Addr]int32 // guarded by mu; entries at zero are deleted
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Listener {
	return &Listener{Listener: ln, cfg: cfg, perIP: make(map[netip.Addr]int32)}
}

// Open is the number of connections accepted and not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

// Accept returns the next connection within the caps, closing the ones
// over them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, reason := l.admit(nc)
		if c != nil {
			return c, nil
		}
		// Counted before the reset: a client that saw its refusal finds it
		// in the metrics.
		if l.cfg.OnRefuse != nil {
			l.cfg.OnRefuse(reason)
		}
		refuse(nc)
	}
}

// admit counts nc in, or says which cap it is over.
func (l *Listener) admit(nc net.Conn) (*Conn, string) {
	if n := l.open.Add(1); l.cfg.Max > 0 && n > int64(l.cfg.Max) {
		l.open.Add(-1)
		return nil, ReasonGlobal
	}
	c := &Conn{Conn: nc, l: l}
	if l.cfg.PerIP > 0 {
		ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
		if err == nil {
			c.ip = client(ap.Addr())
			l.mu.Lock()
			over := l.perIP[c.ip] >= int32(l.cfg.PerIP)
			if !over {
				l.perIP[c.ip]++
			}
			l.mu.Unlock()
			if over {
				l.open.Add(-1)
				return nil, ReasonPerIP
			}
		}
	}
	return c, ""
}

// client is the address a per-IP cap counts: an IPv4 address, or the /64
// an IPv6 address is in (one host's share: it may take any address in it).
func client(a netip.Addr) netip.Addr {
	if a = a.Unmap(); a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a
}

// refuse closes a connection over a cap with a reset, so that its
// descriptor and port are free at once (no TIME_WAIT).
func refuse(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// Conn is an accepted connection; closing it returns its place.
type Conn struct {
	net.Conn
	l      *Listener
	ip     netip.Addr // counted in l.perIP when valid
	closed atomic.Bool
}

// Close closes the connection and returns its place, once.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		if c.ip.IsValid() {
			c.l.mu.Lock()
			if c.l.perIP[c.ip]--; c.l.perIP[c.ip] <= 0 {
				delete(c.l.perIP, c.ip)
			}
			c.l.mu.Unlock()
		}
	}
	return err
}

// NetConn is the wrapped connection (as tls.Conn.NetConn), for code that
// needs the socket itself; closing must still go through c.Close.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Budget is the descriptor budget of a process: how many connections it
// may accept so that reserve descriptors stay free for everything else
// (the engine's store files, cluster routes, outgoing calls).
type Budget struct {
	Limit   int // the soft RLIMIT_NOFILE
	Reserve int
	Max     int // Limit - Reserve, at least 1
}

// ErrNoLimit is returned by FromRlimit when the limit cannot be read.
var ErrNoLimit = errors.New("connlimit: open-file limit unknown")

// FromRlimit derives the budget from the process's open-file limit: the
// reserve is reserve when positive, else 5 % of the limit, between 128 and
// 1,024 descriptors.
func FromRlimit(reserve int) (Budget, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return Budget{}, errors.Join(ErrNoLimit, err)
	}
	limit := int(min(r.Cur, 1<<30))
	if reserve <= 0 {
		reserve = min(max(limit/20, 128), 1024)
	}
	return Budget{Limit: limit, Reserve: reserve, Max: max(limit-reserve, 1)}, nil
}
