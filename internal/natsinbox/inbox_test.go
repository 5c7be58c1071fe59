package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
)

const inboxWait = 30 * time.Second

// startedEngine starts an engine with cfg and closes it when t ends.
func startedEngine(t testing.TB, cfg natsengine.Config) *natsengine.Engine {
	t.Helper()
	e, err := natsengine.New(cfg, func([][]byte) {})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// startedInbox starts an inbox with cfg on e.
func startedInbox(t testing.TB, e *natsengine.Engine, cfg Config) *Inbox {
	t.Helper()
	ib, err := New(e, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	if err := ib.Start(ctx); err != nil {
		t.Fatalf("Inbox.Start: %v", err)
	}
	return ib
}

func embeddedInbox(t testing.TB, dir string, cfg Config) *Inbox {
	t.Helper()
	return startedInbox(t, startedEngine(t, natsengine.Config{DataDir: dir, NodeID: "inbox"}), cfg)
}

func TestInboxConformanceEmbedded(t *testing.T) {
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		return embeddedInbox(t, t.TempDir(), Config{Cap: enginetest.InboxCap})
	})
}

// TestInboxConformanceURL runs the suite against an external server, all
// subtests sharing it (each with its own engine, as separate nodes would).
func TestInboxConformanceURL(t *testing.T) {
	srv := natstest.JetStream(t)
	var mu sync.Mutex
	n := 0
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		mu.Lock()
		n++
		id := "node" + strconv.Itoa(n)
		mu.Unlock()
		e := startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: id})
		return &appScoped{Inbox: startedInbox(t, e, Config{Cap: enginetest.InboxCap}), scope: id}
	})
}

// appScoped gives each subtest of TestInboxConformanceURL its own apps on
// the shared server, since the suite expects a fresh inbox per subtest.
type appScoped struct {
	*Inbox
	scope string
}

func (a *appScoped) app(app string) string { return a.scope + "/" + app }

func (a *appScoped) Append(ctx context.Context, app string, users []string, id string, payload []byte, ttl time.Duration) ([]uint64, error) {
	return a.Inbox.Append(ctx, a.app(app), users, id, payload, ttl)
}

func (a *appScoped) AppendMany(ctx context.Context, app string, entries []engine.Entry) ([]uint64, []error) {
	return a.Inbox.AppendMany(ctx, a.app(app), entries)
}

func (a *appScoped) Read(ctx context.Context, app, user string, after uint64, limit int) (engine.Page, error) {
	return a.Inbox.Read(ctx, a.app(app), user, after, limit)
}

func (a *appScoped) State(ctx context.Context, app, user string) (uint64, uint64, error) {
	return a.Inbox.State(ctx, a.app(app), user)
}

func (a *appScoped) Ack(ctx context.Context, app, user string, seq uint64) (bool, error) {
	return a.Inbox.Ack(ctx, a.app(app), user, seq)
}

func (a *appScoped) Remove(ctx context.Context, app, user string, seq uint64) (bool, error) {
	return a.Inbox.Remove(ctx, a.app(app), user, seq)
}

// TestInboxNoJetStream: an external server without JetStream is refused at
// Start with an error saying so.
func TestInboxNoJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	if !srv.ReadyForConnections(inboxWait) {
		t.Fatal("nats server not ready")
	}
	e := startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "n"})
	ib, err := New(e, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	if err := ib.Start(ctx); err == nil || !strings.Contains(err.Error(), "JetStream is not enabled") {
		t.Fatalf("Start without JetStream = %v", err)
	}
	if _, _, err := ib.State(ctx, "app", "u"); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("State on an inbox that did not start = %v, want engine.ErrUnavailable", err)
	}
}

func TestInboxBeforeStartAndAfterClose(t *testing.T) {
	e, err := natsengine.New(natsengine.Config{DataDir: t.TempDir(), NodeID: "n"}, func([][]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := New(e, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	if err := ib.Start(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Inbox.Start before the engine's = %v, want engine.ErrUnavailable", err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ib.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Append(ctx, "app", []string{"u"}, "id", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Append(ctx, "app", []string{"u"}, "id", nil, time.Hour); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Append after Close = %v, want engine.ErrUnavailable", err)
	}
	if _, err := ib.Read(ctx, "app", "u", 0, 0); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Read after Close = %v, want engine.ErrUnavailable", err)
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

// TestInboxTwoNodes: two engines (as two herald processes would) append to
// the same users concurrently; the seqs stay gap-free and unique.
func TestInboxTwoNodes(t *testing.T) {
	srv := natstest.JetStream(t)
	nodes := []*Inbox{
		startedInbox(t, startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "a"}), Config{}),
		startedInbox(t, startedEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "b"}), Config{}),
	}
	const workers, each = 4, 50
	var mu sync.Mutex
	seen := map[string]map[uint64]string{"x": {}, "y": {}}
	errs := make(chan error, 2*workers)
	var wg sync.WaitGroup
	for n, ib := range nodes {
		for w := range workers {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
				defer cancel()
				for i := range each {
					id := fmt.Sprintf("n%d-w%d-%d", n, w, i)
					users := []string{"x", "y"}
					if i%2 == 1 {
						users = []string{"y", "x"}
					}
					seqs, err := ib.Append(ctx, "app", users, id, []byte(id), time.Hour)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for k, u := range users {
						if prev, dup := seen[u][seqs[k]]; dup {
							errs <- fmt.Errorf("user %s seq %d given to %s and %s", u, seqs[k], prev, id)
						}
						seen[u][seqs[k]] = id
					}
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
	const total = 2 * workers * each
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	for _, u := range []string{"x", "y"} {
		p, err := nodes[1].Read(ctx, "app", u, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Msgs) != total || p.Latest != total || !p.Complete {
			t.Fatalf("user %s: %d messages, Latest %d, Complete %v; want %d", u, len(p.Msgs), p.Latest, p.Complete, total)
		}
		for i, m := range p.Msgs {
			if m.Seq != uint64(i+1) || m.ID != seen[u][m.Seq] {
				t.Fatalf("user %s message %d: seq %d id %q, Append returned it for %q", u, i, m.Seq, m.ID, seen[u][m.Seq])
			}
		}
	}
}

// writeHead stores a head holding message r for sj, as an Append that died
// before copying it into .m would have left it.
func writeHead(t *testing.T, ib *Inbox, sj *inboxSubjects, r record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	c := ib.conn.Load()
	st, err := ib.state(ctx, c, sj)
	if err != nil {
		t.Fatal(err)
	}
	r.seq = st.latest() + 1
	m := pubMsg(sj.h, appendRecord(nil, &r), 0)
	setCAS(m, sj.w, st.tip())
	m.Header[hdrRollup] = []string{"sub"}
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func pageSeqs(p engine.Page) []uint64 {
	var out []uint64
	for _, m := range p.Msgs {
		out = append(out, m.Seq)
	}
	return out
}

// TestInboxUnfinishedAppend: a head whose message never reached .m (its
// Append died in between) is read from the head, copied by the next Append
// and removable; once expired it is neither returned nor copied.
func TestInboxUnfinishedAppend(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	sj := subjectsOf("app", "u")
	if _, err := ib.Append(ctx, "app", []string{"u"}, "one", []byte("1"), time.Hour); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	writeHead(t, ib, &sj, record{kind: recMsg, created: now.UnixNano(), expires: now.Add(time.Hour).UnixNano(), id: "two", payload: []byte("2")})
	expect := func(what string, after uint64, seqs []uint64, latest uint64, complete bool) {
		t.Helper()
		p, err := ib.Read(ctx, "app", "u", after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pageSeqs(p), seqs) || p.Latest != latest || p.Complete != complete {
			t.Fatalf("%s: seqs %v Latest %d Complete %v; want %v %d %v", what, pageSeqs(p), p.Latest, p.Complete, seqs, latest, complete)
		}
	}
	expect("pending head", 0, []uint64{1, 2}, 2, true)
	if p, _ := ib.Read(ctx, "app", "u", 0, 1); !p.Complete || len(p.Msgs) != 1 {
		t.Fatalf("pending head beyond a cut page: %v complete %v", pageSeqs(p), p.Complete)
	}
	if seqs, err := ib.Append(ctx, "app", []string{"u"}, "three", []byte("3"), time.Hour); err != nil || seqs[0] != 3 {
		t.Fatalf("Append after an unfinished one = %v, %v", seqs, err)
	}
	expect("copied by the next Append", 0, []uint64{1, 2, 3}, 3, true)
	st, err := ib.state(ctx, ib.conn.Load(), &sj)
	if err != nil || st.lastSeq != 3 {
		t.Fatalf("state after the next Append: last .m seq %d, %v", st.lastSeq, err)
	}
	// Removing a pending message.
	writeHead(t, ib, &sj, record{kind: recMsg, created: now.UnixNano(), expires: now.Add(time.Hour).UnixNano(), id: "four"})
	expect("second pending head", 2, []uint64{3, 4}, 4, true)
	if ok, err := ib.Remove(ctx, "app", "u", 4); !ok || err != nil {
		t.Fatalf("Remove of a pending message = %v, %v", ok, err)
	}
	expect("pending removed", 0, []uint64{1, 2, 3}, 4, true)
	if seqs, err := ib.Append(ctx, "app", []string{"u"}, "five", nil, time.Hour); err != nil || seqs[0] != 5 {
		t.Fatalf("Append after removing a pending message = %v, %v", seqs, err)
	}
	expect("not resurrected", 0, []uint64{1, 2, 3, 5}, 5, true)
	// An expired pending message is lost, and not copied.
	writeHead(t, ib, &sj, record{kind: recMsg, created: now.UnixNano(), expires: time.Now().Add(-time.Millisecond).UnixNano(), id: "six"})
	expect("expired pending head", 4, []uint64{5}, 6, false)
	if seqs, err := ib.Append(ctx, "app", []string{"u"}, "seven", nil, time.Hour); err != nil || seqs[0] != 7 {
		t.Fatalf("Append after an expired pending message = %v, %v", seqs, err)
	}
	expect("expired pending not copied", 4, []uint64{5, 7}, 7, false)
	expect("after it", 6, []uint64{7}, 7, true)
}

// TestInboxSeqAfterServerExpiry: once the server has deleted every expired
// message of a user (not just once Read stops returning them), the next
// Append still continues the sequence.
func TestInboxSeqAfterServerExpiry(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	for range 3 {
		if _, err := ib.Append(ctx, "app", []string{"u"}, "x", nil, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sj := subjectsOf("app", "u")
	c := ib.conn.Load()
	pollUntil(t, "the server deleting the expired messages", func() bool {
		n, err := c.count(ctx, sj.m, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if latest, _, err := ib.State(ctx, "app", "u"); err != nil || latest != 3 {
		t.Fatalf("State = %d, %v; want 3", latest, err)
	}
	if seqs, err := ib.Append(ctx, "app", []string{"u"}, "y", nil, time.Hour); err != nil || seqs[0] != 4 {
		t.Fatalf("Append = %v, %v; want seq 4", seqs, err)
	}
}

// pollUntil calls cond every 20ms until it holds, failing t after
// inboxWait.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(inboxWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, inboxWait)
		}
	}
}

// TestInboxTooLarge: a message the server cannot take is an invalid
// argument, not an unavailable engine.
func TestInboxTooLarge(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	_, err := ib.Append(ctx, "app", []string{"u"}, "big", make([]byte, 9<<20), time.Hour)
	if !errors.Is(err, engine.ErrInvalidArgument) || errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("Append of 9 MiB = %v, want engine.ErrInvalidArgument", err)
	}
	if latest, _, err := ib.State(ctx, "app", "u"); err != nil || latest != 0 {
		t.Fatalf("State after a refused Append = %d, %v", latest, err)
	}
}

// TestInboxLargeReplies: replies larger than maxReplyBytes are split: the
// head reads of a many-user Append and the pages of a Read.
func TestInboxLargeReplies(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	payload := make([]byte, 64<<10) // 80 heads and messages: 5 MiB
	users := make([]string, 40)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
	}
	for round := uint64(1); round <= 2; round++ {
		seqs, err := ib.Append(ctx, "app", users, "m", payload, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for i, seq := range seqs {
			if seq != round {
				t.Fatalf("round %d: user %s got seq %d", round, users[i], seq)
			}
		}
	}
	for range 40 {
		if _, err := ib.Append(ctx, "app", []string{"deep"}, "d", payload, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Heads and messages each above maxReplyBytes.
	huge := make([]byte, 3<<20)
	for round := uint64(1); round <= 3; round++ {
		seqs, err := ib.Append(ctx, "app", []string{"h1", "h2"}, "huge", huge, time.Hour)
		if err != nil || seqs[0] != round || seqs[1] != round {
			t.Fatalf("huge round %d: %v, %v", round, seqs, err)
		}
		if ok, err := ib.Ack(ctx, "app", "h1", round); !ok || err != nil {
			t.Fatalf("Ack(%d) = %v, %v", round, ok, err)
		}
		if latest, acked, err := ib.State(ctx, "app", "h1"); latest != round || acked != round || err != nil {
			t.Fatalf("State = %d, %d, %v; want %d, %d", latest, acked, err, round, round)
		}
	}
	if p, err := ib.Read(ctx, "app", "h2", 0, 0); err != nil || len(p.Msgs) != 3 || !p.Complete || len(p.Msgs[2].Payload) != len(huge) {
		t.Fatalf("Read of huge messages: %d, %v", len(p.Msgs), err)
	}
	for _, c := range []struct {
		limit, want int
	}{{0, 40}, {30, 30}} {
		p, err := ib.Read(ctx, "app", "deep", 0, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Msgs) != c.want || !p.Complete || p.Msgs[len(p.Msgs)-1].Seq != uint64(c.want) {
			t.Fatalf("Read limit %d: %d messages, complete %v", c.limit, len(p.Msgs), p.Complete)
		}
	}
}
