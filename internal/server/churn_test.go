package server

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestMassDisconnect drops thousands of clients at once: the read loop must
// take them all out (no stall, no deadlock) and keep serving.
func TestMassDisconnect(t *testing.T) {
	const clients = 4000 // both ends live in this process: 2 descriptors each
	n := startNode(t, nil)
	observer := n.dial("user=observer", dialOpt{})
	// Dial from a random 127.x.y.z so that ports left in TIME_WAIT by
	// earlier runs cannot run out.
	local := &net.TCPAddr{IP: net.IPv4(127, byte(1+rand.IntN(250)), byte(rand.IntN(256)), byte(1+rand.IntN(250)))}
	conns := make([]net.Conn, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < clients; i += 8 {
				c, err := n.rawDialFrom("user=u"+strconv.Itoa(i%500)+"&device=d", local)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, s := n.call("GET", "/v1/stats", "", nil); return s["conns"] == float64(clients+1) })
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, func() bool {
		_, s := n.call("GET", "/v1/stats", "", nil)
		return s["conns"] == float64(1) && s["users"] == float64(1)
	})
	n.push("", map[string]any{"to": map[string]any{"users": []string{"observer"}}, "data": "alive"})
	observer.expectData("alive")
	late := n.dial("user=late", dialOpt{})
	n.push("", map[string]any{"to": map[string]any{"users": []string{"late"}}, "data": "welcome back"})
	late.expectData("welcome back")
}

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
