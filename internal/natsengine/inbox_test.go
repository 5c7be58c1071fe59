package natsengine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/nats-io/nats-server/v2/server"
)

const inboxWait = 30 * time.Second

// startedEngine starts an engine with cfg and closes it when t ends.
func startedEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg, func([][]byte) {})
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
func startedInbox(t testing.TB, e *Engine, cfg InboxConfig) *Inbox {
	t.Helper()
	ib, err := NewInbox(e, cfg)
	if err != nil {
		t.Fatalf("NewInbox: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), inboxWait)
	defer cancel()
	if err := ib.Start(ctx); err != nil {
		t.Fatalf("Inbox.Start: %v", err)
	}
	return ib
}

func embeddedInbox(t testing.TB, dir string, cfg InboxConfig) *Inbox {
	t.Helper()
	return startedInbox(t, startedEngine(t, Config{DataDir: dir, NodeID: "inbox"}), cfg)
}

// runJetStreamServer starts a standalone NATS server with JetStream on a
// random loopback port, storing in a temporary directory.
func runJetStreamServer(t testing.TB) *server.Server {
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
	if !srv.ReadyForConnections(inboxWait) {
		t.Fatal("nats server not ready")
	}
	return srv
}

func TestInboxConformanceEmbedded(t *testing.T) {
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		return embeddedInbox(t, t.TempDir(), InboxConfig{Cap: enginetest.InboxCap})
	})
}

// TestInboxConformanceURL runs the suite against an external server, all
// subtests sharing it (each with its own engine, as separate nodes would).
func TestInboxConformanceURL(t *testing.T) {
	srv := runJetStreamServer(t)
	var mu sync.Mutex
	n := 0
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		mu.Lock()
		n++
		id := "node" + strconv.Itoa(n)
		mu.Unlock()
		e := startedEngine(t, Config{URL: srv.ClientURL(), NodeID: id})
		return &appScoped{Inbox: startedInbox(t, e, InboxConfig{Cap: enginetest.InboxCap}), scope: id}
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
	e := startedEngine(t, Config{URL: srv.ClientURL(), NodeID: "n"})
	ib, err := NewInbox(e, InboxConfig{})
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
	e, err := New(Config{DataDir: t.TempDir(), NodeID: "n"}, func([][]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := NewInbox(e, InboxConfig{})
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
	if _, err := NewInbox(nil, InboxConfig{}); err == nil {
		t.Fatal("NewInbox(nil) succeeded")
	}
}

// TestInboxTwoNodes: two engines (as two herald processes would) append to
// the same users concurrently; the seqs stay gap-free and unique.
func TestInboxTwoNodes(t *testing.T) {
	srv := runJetStreamServer(t)
	nodes := []*Inbox{
		startedInbox(t, startedEngine(t, Config{URL: srv.ClientURL(), NodeID: "a"}), InboxConfig{}),
		startedInbox(t, startedEngine(t, Config{URL: srv.ClientURL(), NodeID: "b"}), InboxConfig{}),
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
	ib := embeddedInbox(t, t.TempDir(), InboxConfig{})
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

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []record{
		{kind: recMsg, seq: 1, created: 5, expires: -7, id: "", payload: []byte{}},
		{kind: recMsg, seq: 1 << 62, created: time.Now().UnixNano(), expires: 1 << 62, id: "ü\x00", payload: []byte("x\r\n")},
		{kind: recHead, seq: 9},
		{kind: recAck, seq: 1<<64 - 1},
		{kind: recGone, seq: 3, expires: 42},
		{kind: recBatch, seq: 9, msgs: []record{
			{kind: recMsg, seq: 5, created: 1, expires: 2, id: "a", payload: []byte("x")},
			{kind: recMsg, seq: 7, created: -3, expires: 1 << 62, id: "", payload: []byte{}},
			{kind: recMsg, seq: 9, created: 4, expires: 5, id: "ü\x00", payload: []byte("\r\n")},
		}},
		{kind: recBatch, seq: 4},
	} {
		b := appendRecord(nil, &r)
		got, err := parseRecord(b)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got.kind != r.kind || got.seq != r.seq || got.created != r.created || got.expires != r.expires ||
			got.id != r.id || string(got.payload) != string(r.payload) || len(got.msgs) != len(r.msgs) {
			t.Fatalf("round trip of %+v = %+v", r, got)
		}
		for i, m := range r.msgs {
			g := got.msgs[i]
			if g.kind != recMsg || g.seq != m.seq || g.created != m.created || g.expires != m.expires ||
				g.id != m.id || string(g.payload) != string(m.payload) {
				t.Fatalf("round trip of %+v: message %d = %+v", r, i, g)
			}
		}
		for i := range b {
			if r.kind == recMsg && i >= len(b)-len(r.payload) {
				break // a shorter payload is still a record
			}
			if _, err := parseRecord(b[:i]); err == nil {
				t.Fatalf("%+v truncated to %d bytes parsed", r, i)
			}
		}
	}
	if _, err := parseRecord([]byte{2, recAck, 1}); err == nil {
		t.Fatal("unknown version parsed")
	}
	if _, err := parseRecord([]byte{recVersion, 'q', 1}); err == nil {
		t.Fatal("unknown kind parsed")
	}
	// A batch's seqs must increase and not pass its latest.
	for _, msgs := range [][]record{
		{{kind: recMsg, seq: 3}, {kind: recMsg, seq: 3}},
		{{kind: recMsg, seq: 4}, {kind: recMsg, seq: 2}},
		{{kind: recMsg, seq: 11}},
	} {
		b := appendRecord(nil, &record{kind: recBatch, seq: 10, msgs: msgs})
		if _, err := parseRecord(b); err == nil {
			t.Fatalf("batch of seqs %v parsed", msgs)
		}
	}
	// Heads: a single latest message is a plain message record.
	m := record{kind: recMsg, seq: 3}
	if h := headRecord(3, []record{m}); h.kind != recMsg || h.seq != 3 {
		t.Fatalf("headRecord of the latest alone = %+v", h)
	}
	if h := headRecord(4, []record{m}); h.kind != recBatch || len(h.msgs) != 1 {
		t.Fatalf("headRecord of an older one alone = %+v", h)
	}
	if h := headRecord(4, nil); h.kind != recHead || h.seq != 4 {
		t.Fatalf("headRecord of none = %+v", h)
	}
}

// The SIGKILL durability test: a child process (this test binary, in the
// mode TestInboxKillChild selects by environment) appends and reports
// every Append that returned; the parent kills it with SIGKILL mid-stream,
// reopens the data directory and finds every reported message.
const killDirEnv = "HERALD_INBOX_KILL_DIR"

func TestInboxKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("run by TestInboxSurvivesSIGKILL")
	}
	ib := embeddedInbox(t, dir, InboxConfig{})
	ctx := context.Background()
	out := bufio.NewWriterSize(os.Stdout, 0) // unbuffered: one write per line
	for i := 0; i < 100_000; i++ {
		if i%7 == 3 {
			// A batch: several entries for some users (heads carrying
			// several messages), one each for others.
			var entries []engine.Entry
			for k := range 12 {
				id := "m" + strconv.Itoa(i) + "-" + strconv.Itoa(k)
				u := []string{"c0", "c1", "c2", "u" + strconv.Itoa((i+k)%20)}[k%4]
				entries = append(entries, engine.Entry{User: u, ID: id, Payload: []byte("payload-" + id), TTL: time.Hour})
			}
			seqs, errs := ib.AppendMany(ctx, "app", entries)
			if errs != nil {
				fmt.Fprintf(os.Stderr, "append many %d: %v\n", i, errors.Join(errs...))
				os.Exit(3)
			}
			for k, e := range entries {
				fmt.Fprintf(out, "ok %s %d %s\n", e.User, seqs[k], e.ID)
			}
			continue
		}
		users := []string{"u" + strconv.Itoa(i%20)}
		if i%10 == 0 {
			users = []string{"b0", "b1", "b2", "b3", "b4", "c1"}
		}
		id := "m" + strconv.Itoa(i)
		seqs, err := ib.Append(ctx, "app", users, id, []byte("payload-"+id), time.Hour)
		if err != nil {
			fmt.Fprintf(os.Stderr, "append %d: %v\n", i, err)
			os.Exit(3)
		}
		for k, u := range users {
			fmt.Fprintf(out, "ok %s %d %s\n", u, seqs[k], id)
		}
	}
	fmt.Fprintln(out, "done")
	select {} // wait for the kill
}

func TestInboxSurvivesSIGKILL(t *testing.T) {
	if os.Getenv(killDirEnv) != "" {
		t.Skip("child process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*inboxWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestInboxKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type sent struct{ seq, id string }
	reported := map[string][]sent{}
	lines := 0
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "ok" {
			reported[f[1]] = append(reported[f[1]], sent{f[2], f[3]})
			lines++
		}
		if !killed && (lines >= 2000 || sc.Text() == "done") {
			// SIGKILL by PID: no deferred code, no flush, no shutdown.
			if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: killed %v, wait %v, stderr:\n%s", killed, err, stderr.String())
	}
	t.Logf("child killed after %d reported appends", lines)

	ib := embeddedInbox(t, dir, InboxConfig{})
	for user, want := range reported {
		p, err := ib.Read(ctx, "app", user, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Complete || uint64(len(p.Msgs)) != p.Latest || uint64(len(p.Msgs)) < uint64(len(want)) {
			t.Fatalf("user %s: %d messages, Latest %d, Complete %v; %d reported", user, len(p.Msgs), p.Latest, p.Complete, len(want))
		}
		for i, w := range want {
			m := p.Msgs[i]
			if strconv.FormatUint(m.Seq, 10) != w.seq || m.ID != w.id || string(m.Payload) != "payload-"+w.id {
				t.Fatalf("user %s message %d: seq %d id %q payload %q; reported seq %s id %s", user, i, m.Seq, m.ID, m.Payload, w.seq, w.id)
			}
		}
		seqs, err := ib.Append(ctx, "app", []string{user}, "after", nil, time.Hour)
		if err != nil || seqs[0] != p.Latest+1 {
			t.Fatalf("user %s: Append after restart = %v, %v; want seq %d", user, seqs, err, p.Latest+1)
		}
	}
}

// Benchmarks run through the embedded server, as a single herald node does.

func BenchmarkInboxAppend(b *testing.B) {
	payload := make([]byte, 100)
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("users=%d/size=100B", n), func(b *testing.B) {
			ib := embeddedInbox(b, b.TempDir(), InboxConfig{})
			users := make([]string, n)
			for i := range users {
				users[i] = "user" + strconv.Itoa(i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := ib.Append(ctx, "bench", users, "m"+strconv.Itoa(i), payload, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkInboxAppendMany stores batches of 1,000 100-byte entries, to
// 1,000 distinct users or 100 entries each to 10 users.
func BenchmarkInboxAppendMany(b *testing.B) {
	payload := make([]byte, 100)
	for _, users := range []int{1000, 10} {
		b.Run(fmt.Sprintf("entries=1000/users=%d", users), func(b *testing.B) {
			ib := embeddedInbox(b, b.TempDir(), InboxConfig{})
			entries := make([]engine.Entry, 1000)
			for i := range entries {
				entries[i] = engine.Entry{User: "user" + strconv.Itoa(i%users), ID: "m" + strconv.Itoa(i), Payload: payload, TTL: time.Hour}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, errs := ib.AppendMany(ctx, "bench", entries); errs != nil {
					b.Fatal(errors.Join(errs...))
				}
			}
			b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkInboxRead1000 reads 1,000 stored 100-byte messages of one user
// (among other users' messages) in one Read; BenchmarkInboxReadTail reads
// the last one of them (the bisection plus one message) and
// BenchmarkInboxState the cheap connect-time check.
func BenchmarkInboxRead1000(b *testing.B) {
	ib := filledInbox(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := ib.Read(ctx, "bench", "reader", 0, 0)
		if err != nil || len(p.Msgs) != 1000 || !p.Complete {
			b.Fatalf("Read: %d messages, complete %v, %v", len(p.Msgs), p.Complete, err)
		}
	}
}

func BenchmarkInboxReadTail(b *testing.B) {
	ib := filledInbox(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := ib.Read(ctx, "bench", "reader", 999, 0)
		if err != nil || len(p.Msgs) != 1 || !p.Complete {
			b.Fatalf("Read: %d messages, complete %v, %v", len(p.Msgs), p.Complete, err)
		}
	}
}

func BenchmarkInboxState(b *testing.B) {
	ib := filledInbox(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if latest, _, err := ib.State(ctx, "bench", "reader"); err != nil || latest != 1000 {
			b.Fatalf("State: %d, %v", latest, err)
		}
	}
}

func filledInbox(b *testing.B) *Inbox {
	ib := embeddedInbox(b, b.TempDir(), InboxConfig{})
	ctx := context.Background()
	payload := make([]byte, 100)
	others := make([]string, 20)
	for i := range others {
		others[i] = "other" + strconv.Itoa(i)
	}
	for i := range 1000 {
		if _, err := ib.Append(ctx, "bench", []string{"reader"}, "m"+strconv.Itoa(i), payload, time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := ib.Append(ctx, "bench", others, "o"+strconv.Itoa(i), payload, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	return ib
}

// TestInboxSeqAfterServerExpiry: once the server has deleted every expired
// message of a user (not just once Read stops returning them), the next
// Append still continues the sequence.
func TestInboxSeqAfterServerExpiry(t *testing.T) {
	ib := embeddedInbox(t, t.TempDir(), InboxConfig{})
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
	ib := embeddedInbox(t, t.TempDir(), InboxConfig{})
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
	ib := embeddedInbox(t, t.TempDir(), InboxConfig{})
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

// runJetStreamCluster starts three clustered NATS servers with JetStream on
// loopback ports and returns their client URLs once JetStream has a meta
// leader.
func runJetStreamCluster(t *testing.T) []string {
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
		if !srv.ReadyForConnections(inboxWait) {
			t.Fatal("nats server not ready")
		}
		urls = append(urls, srv.ClientURL())
	}
	pollUntil(t, "a JetStream meta leader", func() bool {
		for _, srv := range srvs {
			if srv.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	return urls
}

// TestInboxCluster: three nodes on a three-server cluster with the stream
// replicated three times; the compare-and-swap on the wildcard subject
// must hold there too (the leader checks in-flight proposals).
func TestInboxCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	urls := runJetStreamCluster(t)
	var nodes []*Inbox
	for i, u := range urls {
		e := startedEngine(t, Config{URL: u, NodeID: "n" + strconv.Itoa(i)})
		nodes = append(nodes, startedInbox(t, e, InboxConfig{Replicas: 3}))
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
	urls := runJetStreamCluster(t)
	var mu sync.Mutex
	n := 0
	enginetest.RunInbox(t, func(t *testing.T) engine.Inbox {
		mu.Lock()
		n++
		id, u := "node"+strconv.Itoa(n), urls[n%len(urls)]
		mu.Unlock()
		e := startedEngine(t, Config{URL: u, NodeID: id})
		ib := startedInbox(t, e, InboxConfig{Cap: enginetest.InboxCap, Replicas: 3})
		return &appScoped{Inbox: ib, scope: id}
	})
}
