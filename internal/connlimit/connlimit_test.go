package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestClientAddress: an IPv6 host's whole /64 is one client; IPv4 (also
// IPv4-mapped) addresses are themselves.
func TestClientAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.9":              "127.0.0.9",
		"::ffff:127.0.0.9":       "127.0.0.9",
		"2001:db8:1:2:aaaa::1":   "2001:db8:1:2::",
		"2001:db8:1:2:ffff::9":   "2001:db8:1:2::",
		"2001:db8:1:3::1":        "2001:db8:1:3::",
		"fe80::1234:5678:9abc:1": "fe80::",
	} {
		if got := client(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("client(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestCaps accepts real loopback connections through the listener: the
// per-IP cap and the global cap each close the connection over them, and a
// closed connection gives its place back.
func TestCaps(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusals := make(chan string, 16)
	ln := New(raw, Config{Max: 3, PerIP: 2, OnRefuse: func(r string) { refusals <- r }})
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// dial connects from an address; a connection the listener refuses
	// may already be reset when the dial returns (nil then).
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn // accepted, server side
	expect := func(what string) {
		t.Helper()
		select {
		case got := <-refusals:
			if got != what {
				t.Fatalf("refused for %q, want %q", got, what)
			}
		case c := <-accepted:
			held = append(held, c)
			if what != "" {
				t.Fatalf("accepted, want refused for %q", what)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("neither accepted nor refused")
		}
	}
	dial("127.0.0.2")
	expect("")
	dial("127.0.0.2")
	expect("")
	refusedConn := dial("127.0.0.2")
	expect(ReasonPerIP)
	if refusedConn != nil {
		_ = refusedConn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := refusedConn.Read(make([]byte, 1)); err == nil || err == io.ErrNoProgress {
			t.Fatalf("a refused connection can be read: %v", err)
		}
	}
	dial("127.0.0.3")
	expect("")
	dial("127.0.0.4")
	expect(ReasonGlobal)
	if ln.Open() != 3 {
		t.Fatalf("Open() = %d, want 3", ln.Open())
	}
	// Close one of 127.0.0.2's: both it and the node have room again.
	held[0].Close()
	held[0].Close() // twice: counted once
	if ln.Open() != 2 {
		t.Fatalf("Open() after a close = %d, want 2", ln.Open())
	}
	dial("127.0.0.2")
	expect("")
}
