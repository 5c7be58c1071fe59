package presence

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaseCluster starts three trackers on a three-server cluster, each with
// a user of its own in chat-1, and waits for the three joins.
func leaseCluster(t *testing.T) (urls []string, srvs []*server.Server, trs []*Tracker, rs []*recorder, users []Scope) {
	t.Helper()
	urls, srvs = runClusterServers(t)
	for i, u := range urls {
		c := cfg("n" + strconv.Itoa(i))
		c.Replicas = 3
		tr, r := node(t, u, c)
		trs, rs = append(trs, tr), append(rs, r)
		users = append(users, Scope{Kind: Member, App: "shop", Room: "chat-1", User: "u" + strconv.Itoa(i)})
		tr.Add(users[i], time.Now())
	}
	waitFor(t, "three joins", 20*time.Second, func() bool {
		for _, u := range users {
			if events(u, rs...) != "+" {
				return false
			}
		}
		return true
	})
	return urls, srvs, trs, rs, users
}

// sweptWrongly polls for d whether a user in users other than users[skip]
// has anything but its join: a live node swept.
func sweptWrongly(d time.Duration, rs []*recorder, users []Scope, skip int) bool {
	return poll(d, func() bool {
		for i, u := range users {
			if i != skip && events(u, rs...) != "+" {
				return true
			}
		}
		return false
	})
}

// streamLeader returns the index of the server ("s<i>") that leads
// stream, asked through url.
func streamLeader(t *testing.T, url, stream string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leader := -1
	waitFor(t, "a leader of "+stream, 30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil || s.CachedInfo().Cluster == nil {
			return false
		}
		_, err = fmt.Sscanf(s.CachedInfo().Cluster.Leader, "s%d", &leader)
		return err == nil
	})
	return leader
}

const leaseStream = "KV_HERALD_PRESENCE_LEASES"

// Leader changes of the lease bucket, one after another for several
// lease lifetimes, sweep no live node: nobody leaves.
func TestLeaseLeaderStepDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls, _, trs, rs, users := leaseCluster(t)
	nc, err := nats.Connect(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	end := time.Now().Add(5 * trs[0].cfg.LeaseTTL)
	steps := 0
	for time.Now().Before(end) {
		before := streamLeader(t, urls[0], leaseStream)
		m, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+leaseStream, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("step down: %v", err)
		}
		if !poll(10*time.Second, func() bool { return streamLeader(t, urls[0], leaseStream) != before }) {
			t.Fatalf("no new leader after a step down (%s)", m.Data)
		}
		steps++
	}
	// More than a lease lifetime for a false sweep to show.
	if sweptWrongly(trs[0].cfg.LeaseTTL+2*trs[0].cfg.SweepEvery, rs, users, -1) {
		for _, u := range users {
			t.Errorf("%s: events %q", u.User, events(u, rs...))
		}
		t.Fatalf("a live node was swept after %d leader changes of the lease bucket", steps)
	}
	t.Logf("%d leader changes of the lease bucket", steps)
}

// The server leading the lease bucket dies with its node: that node's
// user leaves, within the bound plus the election, and the others stay.
func TestLeaseLeaderKilled(t *testing.T) {
	testServerKilled(t, func(urls []string, _ []*server.Server) int { return streamLeader(t, urls[0], leaseStream) })
}

// The server leading the JetStream cluster (its meta leader) dies with
// its node: the same. (Sweeps need the meta leader to list keys; while a
// new one was elected, sweeps once held up lease renewals, and live nodes
// were swept.)
func TestMetaLeaderKilled(t *testing.T) {
	testServerKilled(t, func(_ []string, srvs []*server.Server) int {
		for i, s := range srvs {
			if s.JetStreamIsLeader() {
				return i
			}
		}
		t.Fatal("no meta leader")
		return -1
	})
}

func testServerKilled(t *testing.T, pick func([]string, []*server.Server) int) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls, srvs, trs, rs, users := leaseCluster(t)
	victim := pick(urls, srvs)
	other := (victim + 1) % 3
	crash(trs[victim])
	srvs[victim].Shutdown()
	killed := time.Now()
	waitFor(t, "the victim's user leaves", trs[other].Bound()+15*time.Second, func() bool {
		return events(users[victim], rs...) == "+-"
	})
	t.Logf("left %v after the kill", time.Since(killed).Round(time.Millisecond))
	if sweptWrongly(trs[other].cfg.LeaseTTL+2*trs[other].cfg.SweepEvery, rs, users, victim) {
		for _, u := range users {
			t.Errorf("%s: events %q", u.User, events(u, rs...))
		}
		t.Fatal("a live node was swept")
	}
}
