package enginetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// recordsWait bounds every call of the records and nodes suites.
const recordsWait = 30 * time.Second

// RunRecords runs the conformance suite of engine.Records against the
// stores open returns: one started store per subtest, which open arranges
// through t.Cleanup to stop. Stores of several subtests may share one
// backend (each subtest uses apps of its own); the subtests run in
// parallel, so open must be safe to call concurrently. The records the
// suite stores must live at least an hour.
//
// Besides engine.Records' documented contract the suite requires that apps,
// ids and users of any bytes (dots, '*', '>', '~', '=', spaces, NUL,
// non-ASCII) are distinct and round-trip exactly, and that concurrent
// calls on one store are linearizable: of several concurrent Recalls of
// one record exactly one reports it not yet recalled, and concurrent
// Delivered calls leave the highest position.
func RunRecords(t *testing.T, open func(t *testing.T) engine.Records) {
	t.Helper()
	if open == nil {
		t.Fatal("enginetest: nil records opener")
	}
	s := &recordsSuite{open: open}
	runParallel(t, []subtest{
		{"RoundTrip", s.testRoundTrip},
		{"Replace", s.testReplace},
		{"NamesDistinct", s.testRecordNames},
		{"Recall", s.testRecall},
		{"RecallConcurrent", s.testRecallConcurrent},
		{"Batch", s.testBatch},
		{"Delivered", s.testDelivered},
		{"DeliveredConcurrent", s.testDeliveredConcurrent},
	})
}

type recordsSuite struct {
	open func(t *testing.T) engine.Records
}

// rstore is one store under test with helpers that fail the test on error,
// and an app prefix of its own (its backend may be shared).
type rstore struct {
	t     *testing.T
	r     engine.Records
	scope string
}

func (s *recordsSuite) store(t *testing.T) *rstore {
	t.Helper()
	r := s.open(t)
	if r == nil {
		t.Fatal("records opener returned nil")
	}
	return &rstore{t: t, r: r, scope: scopeOf(t)}
}

// scopeOf is a prefix of names no other subtest (nor an earlier run on a
// kept backend) uses.
func scopeOf(t *testing.T) string {
	return fmt.Sprintf("%s-%x/", t.Name(), rand.Uint64())
}

func (b *rstore) app(name string) string { return b.scope + name }

func (b *rstore) ctx() context.Context {
	ctx, cancel := context.WithTimeout(b.t.Context(), recordsWait)
	b.t.Cleanup(cancel)
	return ctx
}

func (b *rstore) put(rec engine.MessageRecord) {
	b.t.Helper()
	if err := b.r.PutRecord(b.ctx(), rec); err != nil {
		b.t.Fatalf("PutRecord(%q, %q): %v", rec.App, rec.ID, err)
	}
}

func (b *rstore) get(app, id string) engine.MessageRecord {
	b.t.Helper()
	rec, err := b.r.Record(b.ctx(), app, id)
	if err != nil {
		b.t.Fatalf("Record(%q, %q): %v", app, id, err)
	}
	return rec
}

func (b *rstore) missing(app, id string) {
	b.t.Helper()
	if rec, err := b.r.Record(b.ctx(), app, id); !errors.Is(err, engine.ErrNotFound) {
		b.t.Fatalf("Record(%q, %q) = %+v, %v; want ErrNotFound", app, id, rec, err)
	}
}

func (b *rstore) delivered(app, user string) uint64 {
	b.t.Helper()
	seq, err := b.r.DeliveredSeq(b.ctx(), app, user)
	if err != nil {
		b.t.Fatalf("DeliveredSeq(%q, %q): %v", app, user, err)
	}
	return seq
}

func (b *rstore) deliver(app, user string, seq uint64) {
	b.t.Helper()
	if err := b.r.Delivered(b.ctx(), app, user, seq); err != nil {
		b.t.Fatalf("Delivered(%q, %q, %d): %v", app, user, seq, err)
	}
}

// testRecord is a record of app's message id to n users.
func testRecord(app, id string, n int) engine.MessageRecord {
	rec := engine.MessageRecord{ID: id, App: app, Created: time.Now().UTC().Truncate(time.Millisecond), TTL: time.Hour}
	for i := range n {
		rec.Users = append(rec.Users, engine.UserSeq{User: id + "/u" + strconv.Itoa(i), Seq: uint64(i + 1)})
	}
	return rec
}

// sameRecord fails unless got is want (times compared as instants).
func sameRecord(t *testing.T, what string, got, want engine.MessageRecord) {
	t.Helper()
	if got.ID != want.ID || got.App != want.App || !got.Created.Equal(want.Created) || got.TTL != want.TTL ||
		!slices.Equal(got.Users, want.Users) || got.Recalled != want.Recalled {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

func (s *recordsSuite) testRoundTrip(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	rec := testRecord(app, "m1", 3)
	b.put(rec)
	sameRecord(t, "Record after PutRecord", b.get(app, "m1"), rec)
	b.missing(app, "m2")
	b.missing(b.app("b"), "m1")
	empty := testRecord(app, "m-none", 0)
	b.put(empty)
	if got := b.get(app, "m-none"); len(got.Users) != 0 || got.ID != "m-none" {
		t.Fatalf("record without users: %+v", got)
	}
}

func (s *recordsSuite) testReplace(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	b.put(testRecord(app, "m1", 3))
	again := testRecord(app, "m1", 1)
	again.TTL = time.Minute
	b.put(again)
	sameRecord(t, "Record after a second PutRecord", b.get(app, "m1"), again)
}

// recordNames are the awkward names of apps, ids and users.
var recordNames = []string{"a", "A", ".", "a.b", "*", ">", "~", "=", "=YQ", "a b", "\x00", "ü", "$KV.x", "a.=b.c"}

func (s *recordsSuite) testRecordNames(t *testing.T) {
	b := s.store(t)
	want := map[[2]string]engine.MessageRecord{}
	for i, app := range recordNames {
		for j, id := range recordNames {
			rec := testRecord(b.app(app), id, 1)
			rec.Users[0] = engine.UserSeq{User: recordNames[(i+j)%len(recordNames)], Seq: uint64(i*len(recordNames) + j + 1)}
			b.put(rec)
			want[[2]string{rec.App, id}] = rec
		}
	}
	for k, rec := range want {
		sameRecord(t, fmt.Sprintf("Record(%q, %q)", k[0], k[1]), b.get(k[0], k[1]), rec)
	}
	for i, user := range recordNames {
		b.deliver(b.app("d"), user, uint64(i+1))
	}
	for i, user := range recordNames {
		if got := b.delivered(b.app("d"), user); got != uint64(i+1) {
			t.Fatalf("DeliveredSeq(%q) = %d, want %d", user, got, i+1)
		}
	}
}

func (s *recordsSuite) testRecall(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	rec := testRecord(app, "m1", 2)
	b.put(rec)
	b.put(testRecord(app, "m2", 2))
	was, err := b.r.Recall(b.ctx(), app, "m1")
	if err != nil {
		t.Fatalf("Recall: %v", err)
	}
	sameRecord(t, "Recall's record as it was", was, rec)
	rec.Recalled = true
	sameRecord(t, "Record after Recall", b.get(app, "m1"), rec)
	if was, err := b.r.Recall(b.ctx(), app, "m1"); err != nil || !was.Recalled {
		t.Fatalf("second Recall = %+v, %v; want it reported recalled", was, err)
	}
	if got := b.get(app, "m2"); got.Recalled {
		t.Fatal("recalling m1 recalled m2")
	}
	for _, k := range [][2]string{{app, "m3"}, {b.app("b"), "m1"}} {
		if got, err := b.r.Recall(b.ctx(), k[0], k[1]); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("Recall(%q, %q) = %+v, %v; want ErrNotFound", k[0], k[1], got, err)
		}
	}
}

func (s *recordsSuite) testRecallConcurrent(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	const callers = 8
	var batchRecs []engine.MessageRecord
	for i := range 2 {
		batchRecs = append(batchRecs, testRecord(app, engine.BatchID("m_b", i), 1))
	}
	if err := b.r.PutBatch(b.ctx(), app, "m_b", batchRecs); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	b.put(testRecord(app, "m1", 1))
	for _, id := range []string{"m1", batchRecs[1].ID} {
		var wg sync.WaitGroup
		results := make(chan error, callers)
		fresh := make(chan bool, callers)
		for range callers {
			wg.Go(func() {
				was, err := b.r.Recall(b.ctx(), app, id)
				results <- err
				fresh <- err == nil && !was.Recalled
			})
		}
		wg.Wait()
		close(results)
		close(fresh)
		for err := range results {
			if err != nil {
				t.Fatalf("concurrent Recall(%q): %v", id, err)
			}
		}
		n := 0
		for f := range fresh {
			if f {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d concurrent Recalls of %q: %d reported it not yet recalled, want exactly 1", callers, id, n)
		}
	}
}

func (s *recordsSuite) testBatch(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	var rs []engine.MessageRecord
	for i := range 3 {
		rs = append(rs, testRecord(app, engine.BatchID("m_b1", i), 2))
	}
	own := testRecord(app, "order-7", 1)
	other := testRecord(app, engine.BatchID("m_b2", 0), 1) // of another batch
	if err := b.r.PutBatch(b.ctx(), app, "m_b1", append(slices.Clone(rs), own, other)); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	for _, want := range append(slices.Clone(rs), own, other) {
		sameRecord(t, "Record of a record stored by PutBatch", b.get(app, want.ID), want)
	}
	for _, k := range [][2]string{{app, engine.BatchID("m_b1", 7)}, {b.app("b"), rs[0].ID}, {app, "m_b1"}, {app, engine.BatchID("m_b2", 1)}} {
		b.missing(k[0], k[1])
	}
	was, err := b.r.Recall(b.ctx(), app, rs[1].ID)
	if err != nil {
		t.Fatalf("Recall of a batch member: %v", err)
	}
	sameRecord(t, "Recall's batch member as it was", was, rs[1])
	for i, rec := range rs {
		rec.Recalled = i == 1
		sameRecord(t, "Record after recalling one batch member", b.get(app, rec.ID), rec)
	}
}

func (s *recordsSuite) testDelivered(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	if got := b.delivered(app, "u"); got != 0 {
		t.Fatalf("DeliveredSeq of a new user = %d, want 0", got)
	}
	for _, c := range []struct{ seq, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {9, 9}, {1, 9}} {
		b.deliver(app, "u", c.seq)
		if got := b.delivered(app, "u"); got != c.want {
			t.Fatalf("after Delivered(%d): DeliveredSeq = %d, want %d", c.seq, got, c.want)
		}
	}
	for _, k := range [][2]string{{app, "v"}, {b.app("b"), "u"}, {app, "u.x"}} {
		if got := b.delivered(k[0], k[1]); got != 0 {
			t.Fatalf("DeliveredSeq(%q, %q) = %d after another user's Delivered, want 0", k[0], k[1], got)
		}
	}
}

func (s *recordsSuite) testDeliveredConcurrent(t *testing.T) {
	b := s.store(t)
	app := b.app("a")
	const workers, each = 6, 20
	seqs := rand.Perm(workers * each)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for _, s := range seqs[w*each : (w+1)*each] {
				if err := b.r.Delivered(b.ctx(), app, "u", uint64(s+1)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Delivered: %v", err)
	}
	if got := b.delivered(app, "u"); got != workers*each {
		t.Fatalf("after concurrent Delivered of 1..%d: DeliveredSeq = %d", workers*each, got)
	}
}
