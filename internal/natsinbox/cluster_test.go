package natsinbox

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natstest"
)

// TestInboxCluster: three nodes on a three-server cluster with the stream
// replicated three times; the compare-and-swap on the wildcard subject
// must hold there too (the leader checks in-flight proposals).
func TestInboxCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls := natstest.Cluster(t)
	var nodes []*Inbox
	for i, u := range urls {
		e := startedEngine(t, natsengine.Config{URL: u, NodeID: "n" + strconv.Itoa(i)})
		nodes = append(nodes, startedInbox(t, e, Config{Replicas: 3}))
	}
	const workers, each = 3, 30
	var mu sync.Mutex
	seen := map[uint64]string{}
	errs := make(chan error, len(nodes)*workers)
	var wg sync.WaitGroup
	for n, ib := range nodes {
		for w := range workers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
				defer cancel()
				for i := range each {
					id := fmt.Sprintf("n%d-w%d-%d", n, w, i)
					seqs, err := ib.Append(ctx, "app", []string{"x"}, id, []byte(id), time.Hour)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if prev, dup := seen[seqs[0]]; dup {
						errs <- fmt.Errorf("seq %d given to %s and %s", seqs[0], prev, id)
					}
					seen[seqs[0]] = id
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = 3 * workers * each
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	// A replica may answer a direct get slightly behind the leader.
	pollUntil(t, "every node reading every message", func() bool {
		for _, ib := range nodes {
			p, err := ib.Read(ctx, "app", "x", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Msgs) != total || !p.Complete {
				return false
			}
			for i, m := range p.Msgs {
				if m.Seq != uint64(i+1) || m.ID != seen[m.Seq] {
					t.Fatalf("message %d: seq %d id %q, Append returned it for %q", i, m.Seq, m.ID, seen[m.Seq])
				}
			}
		}
		return true
	})
}

// TestInboxConformanceCluster runs the suite with the stream replicated
// three times, each subtest's inbox on its own node.
func TestInboxConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls := natstest.Cluster(t)
	var mu sync.Mutex
	n := 0
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		mu.Lock()
		n++
		id, u := "node"+strconv.Itoa(n), urls[n%len(urls)]
		mu.Unlock()
		e := startedEngine(t, natsengine.Config{URL: u, NodeID: id})
		ib := startedInbox(t, e, Config{Cap: enginetest.InboxCap, Replicas: 3})
		return &appScoped{Inbox: ib, scope: id}
	})
}
