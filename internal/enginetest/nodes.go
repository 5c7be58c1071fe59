package enginetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// NodesTTL is the lifetime of an entry in the registries RunNodes' open
// must return: an entry not announced again within it disappears.
const NodesTTL = 3 * time.Second

// RunNodes runs the conformance suite of engine.Nodes against the
// registries open returns: one started registry per subtest whose entries
// live NodesTTL, which open arranges through t.Cleanup to stop. Registries
// of several subtests may share one backend (each subtest lists only the
// ids it announced); the subtests run in parallel, so open must be safe
// to call concurrently.
//
// Besides engine.Nodes' documented contract the suite requires that ids of
// any bytes are distinct and that every field of an entry round-trips
// (times as instants). It waits for an expiry by polling with a deadline
// and asserts nothing about how long anything takes.
func RunNodes(t *testing.T, open func(t *testing.T) engine.Nodes) {
	t.Helper()
	if open == nil {
		t.Fatal("enginetest: nil nodes opener")
	}
	s := &nodesSuite{open: open}
	runParallel(t, []subtest{
		{"AnnounceList", s.testAnnounceList},
		{"Refresh", s.testRefresh},
		{"Leave", s.testLeave},
		{"Expiry", s.testNodeExpiry},
		{"NamesDistinct", s.testNodeNames},
	})
}

type nodesSuite struct {
	open func(t *testing.T) engine.Nodes
}

// nreg is one registry under test with helpers that fail the test on
// error, and an id prefix of its own (its backend may be shared).
type nreg struct {
	t     *testing.T
	n     engine.Nodes
	scope string
}

func (s *nodesSuite) registry(t *testing.T) *nreg {
	t.Helper()
	n := s.open(t)
	if n == nil {
		t.Fatal("nodes opener returned nil")
	}
	return &nreg{t: t, n: n, scope: scopeOf(t)}
}

func (r *nreg) ctx() context.Context {
	ctx, cancel := context.WithTimeout(r.t.Context(), recordsWait)
	r.t.Cleanup(cancel)
	return ctx
}

// info is an entry for this registry's node name.
func (r *nreg) info(name string, conns int) engine.NodeInfo {
	return engine.NodeInfo{ID: r.scope + name, Addr: "127.0.0.1:" + name, Conns: conns, Load: float64(conns) / 8,
		Version: "v-" + name, Heartbeat: time.Now().UTC().Truncate(time.Millisecond)}
}

func (r *nreg) announce(info engine.NodeInfo) {
	r.t.Helper()
	if err := r.n.Announce(r.ctx(), info); err != nil {
		r.t.Fatalf("Announce(%q): %v", info.ID, err)
	}
}

// list returns this registry's entries; it fails unless the whole list is
// sorted by id with each id once.
func (r *nreg) list() []engine.NodeInfo {
	r.t.Helper()
	all, err := r.n.List(r.ctx())
	if err != nil {
		r.t.Fatalf("List: %v", err)
	}
	var mine []engine.NodeInfo
	for i, n := range all {
		if i > 0 && all[i-1].ID >= n.ID {
			r.t.Fatalf("List not sorted by id, or an id twice: %q before %q", all[i-1].ID, n.ID)
		}
		if strings.HasPrefix(n.ID, r.scope) {
			mine = append(mine, n)
		}
	}
	return mine
}

// expect fails unless this registry lists exactly want (in id order),
// within a few seconds: a registry is read from any replica, so on a
// cluster a List may lag the writes just made by a moment (nodes announce
// themselves every few seconds; nothing needs the list sooner).
func (r *nreg) expect(what string, want ...engine.NodeInfo) {
	r.t.Helper()
	slices.SortFunc(want, func(a, b engine.NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	var mismatch string
	for deadline := time.Now().Add(10 * time.Second); ; {
		if mismatch = r.differs(r.list(), want); mismatch == "" {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %s", what, mismatch)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// differs says how got differs from want ("" when it does not).
func (r *nreg) differs(got, want []engine.NodeInfo) string {
	if len(got) != len(want) {
		return fmt.Sprintf("listed %+v, want %+v", got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Addr != w.Addr || g.Conns != w.Conns || g.Load != w.Load || g.Version != w.Version ||
			g.Draining != w.Draining || !g.Heartbeat.Equal(w.Heartbeat) {
			return fmt.Sprintf("entry %d is %+v, want %+v", i, g, w)
		}
	}
	return ""
}

func (s *nodesSuite) testAnnounceList(t *testing.T) {
	r := s.registry(t)
	r.expect("before any Announce")
	b, a := r.info("b", 3), r.info("a", 5)
	a.Draining = true
	r.announce(b)
	r.announce(a)
	r.expect("after two Announces", a, b)
}

func (s *nodesSuite) testRefresh(t *testing.T) {
	r := s.registry(t)
	a := r.info("a", 1)
	r.announce(a)
	a.Conns, a.Load, a.Draining, a.Heartbeat = 7, 0.875, true, a.Heartbeat.Add(time.Second)
	r.announce(a)
	r.expect("after announcing a node again", a)
}

func (s *nodesSuite) testLeave(t *testing.T) {
	r := s.registry(t)
	a, b := r.info("a", 1), r.info("b", 2)
	r.announce(a)
	r.announce(b)
	if err := r.n.Leave(r.ctx(), a.ID); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	r.expect("after Leave", b)
	if err := r.n.Leave(r.ctx(), r.scope+"never"); err != nil {
		t.Fatalf("Leave of a node never announced: %v", err)
	}
	r.announce(a)
	r.expect("after announcing a node that left", a, b)
}

func (s *nodesSuite) testNodeExpiry(t *testing.T) {
	r := s.registry(t)
	a := r.info("a", 1)
	r.announce(a)
	r.expect("after Announce", a)
	poll(t, "the entry expiring after NodesTTL", 50*time.Millisecond, func() bool { return len(r.list()) == 0 })
}

func (s *nodesSuite) testNodeNames(t *testing.T) {
	r := s.registry(t)
	var want []engine.NodeInfo
	for i, name := range recordNames {
		info := r.info(name, i)
		r.announce(info)
		want = append(want, info)
	}
	r.expect("nodes of awkward ids", want...)
}
