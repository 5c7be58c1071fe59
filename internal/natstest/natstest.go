// Package natstest starts real NATS servers for tests: a standalone
// server with JetStream, and a three-server JetStream cluster, each on
// loopback ports with its storage in the test's temporary directories,
// shut down when the test ends. It is imported by tests only (the engine
// and inbox tests, which run the enginetest suites on them); it holds no
// state and starts no goroutine that outlives the test.
package natstest

import (
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Wait bounds how long a server may take to start and a cluster to elect
// its JetStream meta leader.
const Wait = 30 * time.Second

// JetStream starts a standalone NATS server with JetStream on a random
// loopback port, storing in a temporary directory.
func JetStream(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(Wait) {
		t.Fatal("nats server not ready")
	}
	return srv
}

// Cluster starts three clustered NATS servers with JetStream on loopback
// ports and returns their client URLs once JetStream has a meta leader.
func Cluster(t testing.TB) []string {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
	}
	var urls []string
	var srvs []*server.Server
	for i, p := range ports {
		srv, err := server.NewServer(&server.Options{
			ServerName: "s" + strconv.Itoa(i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "herald", Host: "127.0.0.1", Port: p},
			Routes:     routes,
			NoLog:      true,
			NoSigs:     true,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
		srvs = append(srvs, srv)
	}
	for _, srv := range srvs {
		if !srv.ReadyForConnections(Wait) {
			t.Fatal("nats server not ready")
		}
		urls = append(urls, srv.ClientURL())
	}
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !hasMetaLeader(srvs) {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no JetStream meta leader within %v", Wait)
		}
	}
	return urls
}

func hasMetaLeader(srvs []*server.Server) bool {
	for _, srv := range srvs {
		if srv.JetStreamIsLeader() {
			return true
		}
	}
	return false
}
