package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// Opener returns a started broker that delivers every payload of the topics
// it watches to h. It must arrange, through t.Cleanup, for the broker to be
// stopped and its resources released when t ends.
type Opener func(t *testing.T, h engine.Handler) engine.Broker

// Option configures RunBroker.
type Option func(*suite)

// WithPair enables the SharedBackend subtest: pair is called once with that
// subtest's t and returns two Openers whose brokers are connected to the same
// backend (two nodes of one cluster), so that a publish on one reaches the
// other's watchers.
func WithPair(pair func(t *testing.T) (Opener, Opener)) Option {
	return func(s *suite) { s.pair = pair }
}

// WithTimeout sets how long the suite waits for an expected delivery or a
// call to return before failing (default 10s). It bounds waits; nothing is
// asserted about how long anything takes.
func WithTimeout(d time.Duration) Option {
	return func(s *suite) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// Sizes the suite uses.
const (
	// OrderCount is how many payloads PerTopicOrder publishes to each of
	// its topics.
	OrderCount = 10_000
	// BigPayload is the size of PayloadIntact's largest payload.
	BigPayload = 1 << 20
	// sentinels is how many watched topics a silence check publishes to.
	sentinels = 16
)

type suite struct {
	open    Opener
	pair    func(t *testing.T) (Opener, Opener)
	timeout time.Duration
}

// RunBroker runs the conformance suite against the brokers open returns,
// one fresh broker per subtest. Without WithPair the SharedBackend subtest
// is skipped.
//
// Besides engine.Broker's documented contract the suite requires, of one
// broker: a Publish made after Watch returns is delivered; a Publish made
// after the last Unwatch returns is not; Unwatch of a topic that is not
// watched is a no-op returning nil; topics of different kinds, apps or names
// never share deliveries, whatever bytes the names hold (including empty
// names, '.', '*', '>', '~', spaces, control bytes and non-ASCII); payloads,
// including empty and 1 MiB ones, arrive byte for byte; and the methods are
// safe for concurrent use. Across brokers it only requires that interest
// becomes effective eventually and that per-topic order from one publisher
// is kept once it has.
func RunBroker(t *testing.T, open Opener, opts ...Option) {
	t.Helper()
	if open == nil {
		t.Fatal("enginetest: nil Opener")
	}
	s := &suite{open: open, timeout: 10 * time.Second}
	for _, o := range opts {
		o(s)
	}
	t.Run("Ready", s.testReady)
	t.Run("WatchedTopicReceives", s.testWatched)
	t.Run("UnwatchedTopicSilent", s.testUnwatched)
	t.Run("RefCounted", s.testRefCount)
	t.Run("UnwatchNeverWatched", s.testUnwatchNeverWatched)
	t.Run("KindsDistinct", s.testKindsDistinct)
	t.Run("NamesDistinct", s.testNamesDistinct)
	t.Run("PerTopicOrder", s.testOrder)
	t.Run("PayloadIntact", s.testPayloads)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("SharedBackend", s.testShared)
}

// inbox records every payload a handler receives.
type inbox struct {
	mu   sync.Mutex
	msgs [][]byte
	wake chan struct{}
}

func newInbox() *inbox { return &inbox{wake: make(chan struct{}, 1)} }

// handle is the engine.Handler; it copies the payloads, which it may not
// retain.
func (in *inbox) handle(payloads [][]byte) {
	for _, p := range payloads {
		in.add(p)
	}
}

func (in *inbox) add(payload []byte) {
	c := bytes.Clone(payload)
	if c == nil {
		c = []byte{}
	}
	in.mu.Lock()
	in.msgs = append(in.msgs, c)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *inbox) snapshot() [][]byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.msgs[:len(in.msgs):len(in.msgs)]
}

// reset forgets everything received so far.
func (in *inbox) reset() {
	in.mu.Lock()
	in.msgs = nil
	in.mu.Unlock()
}

// wait returns the payloads received so far once cond holds for them, or
// them and false once stop fires first.
func (in *inbox) wait(cond func([][]byte) bool, stop <-chan time.Time) ([][]byte, bool) {
	for {
		msgs := in.snapshot()
		if cond(msgs) {
			return msgs, true
		}
		select {
		case <-in.wake:
		case <-stop:
			msgs = in.snapshot()
			return msgs, cond(msgs)
		}
	}
}

// await is wait with the suite's deadline; it fails t on timeout.
func (s *suite) await(t *testing.T, in *inbox, what string, cond func([][]byte) bool) [][]byte {
	t.Helper()
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	msgs, ok := in.wait(cond, timer.C)
	if !ok {
		t.Fatalf("no %s within %v; %d payloads received: %s", what, s.timeout, len(msgs), summary(msgs))
	}
	return msgs
}

// summary describes payloads for failure messages.
func summary(msgs [][]byte) string {
	const limit = 12
	var b strings.Builder
	for i, m := range msgs {
		if i == limit {
			fmt.Fprintf(&b, " … (%d more)", len(msgs)-limit)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(short(m))
	}
	return "[" + b.String() + "]"
}

func short(m []byte) string {
	if len(m) > 48 {
		return fmt.Sprintf("%q…(%d bytes)", m[:48], len(m))
	}
	return strconv.Quote(string(m))
}

// fixture is one broker with its inbox.
type fixture struct {
	s     *suite
	t     *testing.T
	b     engine.Broker
	in    *inbox
	ctx   context.Context
	sents []engine.Topic // watched sentinel topics, once watchSentinels ran
	round int
}

func (s *suite) fixture(t *testing.T) *fixture {
	t.Helper()
	in := newInbox()
	return s.fixtureOf(t, s.opened(t, s.open, in), in)
}

func (s *suite) opened(t *testing.T, open Opener, in *inbox) engine.Broker {
	t.Helper()
	b := open(t, in.handle)
	if b == nil {
		t.Fatal("Opener returned a nil broker")
	}
	return b
}

func (s *suite) fixtureOf(t *testing.T, b engine.Broker, in *inbox) *fixture {
	return &fixture{s: s, t: t, b: b, in: in, ctx: t.Context()}
}

func (f *fixture) watch(tp engine.Topic) {
	f.t.Helper()
	if err := f.b.Watch(tp); err != nil {
		f.t.Fatalf("Watch(%s): %v", topicString(tp), err)
	}
}

func (f *fixture) unwatch(tp engine.Topic) {
	f.t.Helper()
	if err := f.b.Unwatch(tp); err != nil {
		f.t.Fatalf("Unwatch(%s): %v", topicString(tp), err)
	}
}

func (f *fixture) publish(tp engine.Topic, payload []byte) {
	f.t.Helper()
	if err := f.b.Publish(f.ctx, tp, payload); err != nil {
		f.t.Fatalf("Publish(%s, %s): %v", topicString(tp), short(payload), err)
	}
}

func (f *fixture) publishString(tp engine.Topic, payload string) {
	f.t.Helper()
	f.publish(tp, []byte(payload))
}

// sentinelTopic is the i'th topic silence checks publish to. Its app name
// is not used by any other topic of the suite.
func sentinelTopic(i int) engine.Topic {
	return engine.Topic{Kind: engine.Room, App: "enginetest-sentinel", Name: "s" + strconv.Itoa(i)}
}

const sentinelPrefix = "enginetest:sentinel:"

// expect publishes one sentinel to each of several watched sentinel topics
// and waits for all of them and for every payload in want; then it fails
// unless exactly want (as a multiset, in any order) arrived besides the
// sentinels, and forgets everything received.
//
// Because a broker keeps each topic's order and a topic is handled by one
// worker at a time, a payload published before the sentinels that the
// broker wrongly delivers arrives before the sentinel of the topic sharing
// its worker. Several sentinel topics are used so that, whichever way an
// implementation spreads topics over workers, every worker almost surely
// carries one; a single sentinel would only bound its own worker.
func (f *fixture) expect(what string, want ...string) {
	f.t.Helper()
	if f.sents == nil {
		for i := range sentinels {
			tp := sentinelTopic(i)
			f.watch(tp)
			f.sents = append(f.sents, tp)
		}
	}
	f.round++
	tag := sentinelPrefix + strconv.Itoa(f.round) + ":"
	for i, tp := range f.sents {
		f.publishString(tp, tag+strconv.Itoa(i))
	}
	msgs := f.s.await(f.t, f.in, fmt.Sprintf("%q plus %d sentinels (%s)", want, len(f.sents), what), func(msgs [][]byte) bool {
		need := make(map[string]int, len(want)+len(f.sents))
		for _, w := range want {
			need[w]++
		}
		for i := range f.sents {
			need[tag+strconv.Itoa(i)]++
		}
		for _, m := range msgs {
			if need[string(m)] > 0 {
				need[string(m)]--
			}
		}
		for _, n := range need {
			if n > 0 {
				return false
			}
		}
		return true
	})
	f.in.reset()
	left := make(map[string]int, len(want))
	for _, w := range want {
		left[w]++
	}
	var extra []string
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(string(m), sentinelPrefix):
			if !strings.HasPrefix(string(m), tag) {
				extra = append(extra, short(m)) // an earlier round's: delivered twice
			}
		case left[string(m)] > 0:
			left[string(m)]--
		default:
			extra = append(extra, short(m))
		}
	}
	if len(extra) > 0 {
		f.t.Fatalf("%s: unexpected deliveries %v (wanted only %q besides the sentinels)", what, extra, want)
	}
}

func topicString(tp engine.Topic) string {
	return fmt.Sprintf("{Kind:%d App:%q Name:%q}", tp.Kind, tp.App, tp.Name)
}

func (s *suite) testReady(t *testing.T) {
	f := s.fixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
	defer cancel()
	if err := f.b.Ready(ctx); err != nil {
		t.Fatalf("Ready on a healthy engine: %v", err)
	}
}

func (s *suite) testWatched(t *testing.T) {
	f := s.fixture(t)
	topics := []engine.Topic{
		{Kind: engine.User, App: "app", Name: "alice"},
		{Kind: engine.Room, App: "app", Name: "lobby"},
		{Kind: engine.App, App: "app"},
		{Kind: engine.All},
		{Kind: engine.Node, Name: "node-1"},
	}
	for i, tp := range topics {
		f.watch(tp)
		p := "watched:" + strconv.Itoa(i)
		f.publishString(tp, p)
		f.expect("watched "+topicString(tp), p)
	}
}

func (s *suite) testUnwatched(t *testing.T) {
	f := s.fixture(t)
	// Publishing where nobody watches succeeds and delivers nothing.
	f.publishString(engine.Topic{Kind: engine.Room, App: "app", Name: "nobody"}, "unwatched:never")
	f.expect("publish to a never-watched topic")
	// Nor does publishing to a topic next to a watched one.
	f.watch(engine.Topic{Kind: engine.Room, App: "app", Name: "watched"})
	f.publishString(engine.Topic{Kind: engine.Room, App: "app", Name: "watched2"}, "unwatched:neighbour")
	f.publishString(engine.Topic{Kind: engine.User, App: "app", Name: "watched"}, "unwatched:other-kind")
	f.expect("publish to unwatched neighbours of a watched topic")
	// Nor to one that was watched and is no more.
	tp := engine.Topic{Kind: engine.User, App: "app", Name: "gone"}
	f.watch(tp)
	f.publishString(tp, "unwatched:before")
	f.expect("publish before Unwatch", "unwatched:before")
	f.unwatch(tp)
	f.publishString(tp, "unwatched:after")
	f.expect("publish after Unwatch")
}

func (s *suite) testRefCount(t *testing.T) {
	f := s.fixture(t)
	tp := engine.Topic{Kind: engine.Room, App: "app", Name: "counted"}
	f.watch(tp)
	f.watch(tp)
	f.publishString(tp, "ref:2")
	f.expect("a topic watched twice delivers once per publish", "ref:2")
	f.unwatch(tp)
	f.publishString(tp, "ref:1")
	f.expect("a topic watched twice and unwatched once still delivers", "ref:1")
	f.unwatch(tp)
	f.publishString(tp, "ref:0")
	f.expect("a topic unwatched as often as watched is silent")
	// The count does not go below zero: one more Unwatch, then one Watch,
	// and the topic is live again.
	f.unwatch(tp)
	f.watch(tp)
	f.publishString(tp, "ref:again")
	f.expect("a topic watched again after extra Unwatch", "ref:again")
	f.unwatch(tp)
	f.publishString(tp, "ref:end")
	f.expect("a topic unwatched after being watched again")
}

func (s *suite) testUnwatchNeverWatched(t *testing.T) {
	f := s.fixture(t)
	other := engine.Topic{Kind: engine.User, App: "app", Name: "bystander"}
	f.watch(other)
	never := engine.Topic{Kind: engine.User, App: "app", Name: "never"}
	for range 3 {
		if err := f.b.Unwatch(never); err != nil {
			t.Fatalf("Unwatch of a never-watched topic: %v", err)
		}
	}
	f.publishString(never, "never:0")
	f.publishString(other, "bystander:0")
	f.expect("after Unwatch of a never-watched topic", "bystander:0")
	f.watch(never)
	f.publishString(never, "never:1")
	f.expect("a topic watched after stray Unwatches", "never:1")
	f.unwatch(never)
	f.publishString(never, "never:2")
	f.publishString(other, "bystander:1")
	f.expect("after the matching Unwatch", "bystander:1")
}

func (s *suite) testKindsDistinct(t *testing.T) {
	s.distinct(t, []engine.Topic{
		{Kind: engine.User, App: "a", Name: "x"},
		{Kind: engine.Room, App: "a", Name: "x"},
		{Kind: engine.App, App: "x"},
		{Kind: engine.App, App: "a"},
		{Kind: engine.Node, Name: "x"},
		{Kind: engine.Node, Name: "a"},
		{Kind: engine.All},
		{Kind: engine.User, App: "b", Name: "x"},
		{Kind: engine.Room, App: "b", Name: "x"},
		{Kind: engine.User, App: "x", Name: "a"},
		{Kind: engine.Room, App: "x", Name: "a"},
		{Kind: engine.User, App: "x", Name: "x"},
		{Kind: engine.Room, App: "x", Name: "x"},
		{Kind: engine.User, App: "a", Name: "X"},
		{Kind: engine.User, App: "A", Name: "x"},
	})
}

// edgeNames are names that are awkward for a backend's address syntax.
var edgeNames = []string{
	"plain", "Plain", "with-dash", "with_underscore", "0",
	"", " ", "  ", "\t", "\n", "\r\n", "\x00", "\x7f",
	".", "..", "a.b", "a.b.", ".a", "a..b",
	"*", ">", "a.*", "a.>", "*.>", "a b", "a\tb",
	"~", "~~", "~fg", "~YQ", "~cGxhaW4", "a~b",
	"$SYS", "$JS.API", "_INBOX", "hrl", "hrl.u.a.x", "%", "/", "\\", "\"", "+", "=", "#",
	"ü", "日本語", "🙂", "a\u00a0b", "\u200b", "\xff\xfe",
	strings.Repeat("long-", 50),
	strings.Repeat(".", 64),
}

func (s *suite) testNamesDistinct(t *testing.T) {
	var topics []engine.Topic
	for _, n := range edgeNames {
		topics = append(topics,
			engine.Topic{Kind: engine.User, App: "app", Name: n},
			engine.Topic{Kind: engine.Room, App: "app", Name: n},
			engine.Topic{Kind: engine.User, App: n, Name: "user"},
			engine.Topic{Kind: engine.App, App: n},
			engine.Topic{Kind: engine.Node, Name: n},
		)
	}
	// A naive join of app and name with the separator would merge these.
	topics = append(topics,
		engine.Topic{Kind: engine.User, App: "a", Name: "b.c"},
		engine.Topic{Kind: engine.User, App: "a.b", Name: "c"},
		engine.Topic{Kind: engine.Room, App: "a b", Name: "c"},
		engine.Topic{Kind: engine.Room, App: "a", Name: "b c"},
	)
	s.distinct(t, topics)
}

// distinct checks, for each topic in turn, that watching it alone delivers
// its own payload and none of the others'.
func (s *suite) distinct(t *testing.T, topics []engine.Topic) {
	seen := make(map[engine.Topic]bool, len(topics))
	for _, tp := range topics {
		if seen[tp] {
			t.Fatalf("suite bug: topic %s listed twice", topicString(tp))
		}
		seen[tp] = true
	}
	f := s.fixture(t)
	payload := func(i int) string { return "topic#" + strconv.Itoa(i) + " " + topicString(topics[i]) }
	for i, tp := range topics {
		f.watch(tp)
		for j, other := range topics {
			f.publishString(other, payload(j))
		}
		f.expect("publishing to every topic while only "+topicString(tp)+" is watched", payload(i))
		f.unwatch(tp)
	}
	// And after the last Unwatch nothing is left subscribed.
	for j, other := range topics {
		f.publishString(other, payload(j))
	}
	f.expect("publishing to every topic once all are unwatched")
}

func (s *suite) testOrder(t *testing.T) {
	f := s.fixture(t)
	topics := []engine.Topic{
		{Kind: engine.User, App: "order", Name: "u"},
		{Kind: engine.Room, App: "order", Name: "r"},
		{Kind: engine.App, App: "order"},
		{Kind: engine.Node, Name: "order"},
	}
	for _, tp := range topics {
		f.watch(tp)
	}
	// Publish the topics interleaved, so they compete for the broker.
	for seq := range OrderCount {
		for k, tp := range topics {
			f.publishString(tp, strconv.Itoa(k)+":"+strconv.Itoa(seq))
		}
	}
	total := OrderCount * len(topics)
	// Check as payloads arrive, so a gap or swap is reported as such and
	// not as a timeout.
	next := make([]int, len(topics))
	checked := 0
	var bad string
	s.await(t, f.in, strconv.Itoa(total)+" ordered payloads", func(msgs [][]byte) bool {
		for ; checked < len(msgs) && bad == ""; checked++ {
			m := msgs[checked]
			ks, ss, ok := strings.Cut(string(m), ":")
			k, err1 := strconv.Atoi(ks)
			seq, err2 := strconv.Atoi(ss)
			switch {
			case !ok || err1 != nil || err2 != nil || k < 0 || k >= len(topics):
				bad = fmt.Sprintf("payload %d is %s, not one the test published", checked, short(m))
			case seq != next[k]:
				bad = fmt.Sprintf("topic %s: payload %d is seq %d, want %d (order lost or a payload dropped or duplicated)",
					topicString(topics[k]), checked, seq, next[k])
			default:
				next[k]++
			}
		}
		return bad != "" || checked >= total
	})
	if bad != "" {
		t.Fatal(bad)
	}
	f.in.reset()
	f.expect("after all ordered payloads")
}

func (s *suite) testPayloads(t *testing.T) {
	f := s.fixture(t)
	tp := engine.Topic{Kind: engine.User, App: "bytes", Name: "u"}
	f.watch(tp)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'h', 'e', 'r', 'a', 'l', 'd'}))
	big := make([]byte, BigPayload)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	crlf := bytes.Repeat([]byte("\r\n"), BigPayload/2)
	payloads := [][]byte{
		[]byte("hello"),
		{},
		all,
		[]byte("\n"),
		[]byte("\r\n"),
		[]byte("line1\nline2\r\n\r\n"),
		[]byte("PUB hrl.u.bytes.u 5\r\nhello\r\n"),
		[]byte("MSG x 1 5\r\nhello\r\nPING\r\n"),
		[]byte("\x00\x00\x00"),
		[]byte("\xff\xfe\xfd"),
		[]byte(`{"json":"with \"quotes\" and \\u0000"}`),
		big,
		crlf,
		[]byte("last"),
	}
	for _, p := range payloads {
		f.publish(tp, p)
	}
	msgs := s.await(t, f.in, strconv.Itoa(len(payloads))+" payloads", func(msgs [][]byte) bool {
		return len(msgs) >= len(payloads)
	})
	if len(msgs) != len(payloads) {
		t.Fatalf("received %d payloads, published %d", len(msgs), len(payloads))
	}
	for i, want := range payloads {
		if got := msgs[i]; !bytes.Equal(got, want) {
			at := 0
			for at < len(got) && at < len(want) && got[at] == want[at] {
				at++
			}
			t.Errorf("payload %d: got %d bytes, want %d; first difference at byte %d (got %s, want %s)",
				i, len(got), len(want), at, short(got[at:]), short(want[at:]))
		}
	}
	f.in.reset()
	f.expect("after the payloads")
}

func (s *suite) testConcurrent(t *testing.T) {
	f := s.fixture(t)
	const workers, each = 8, 200
	shared := engine.Topic{Kind: engine.App, App: "concurrent"}
	f.watch(shared) // held throughout, so the workers' own Watch/Unwatch of it are extra references
	own := func(w int) engine.Topic {
		return engine.Topic{Kind: engine.User, App: "concurrent", Name: "w" + strconv.Itoa(w)}
	}
	run := func(fn func(w int) error) {
		t.Helper()
		errs := make(chan error, workers)
		for w := range workers {
			go func() { errs <- fn(w) }()
		}
		timer := time.NewTimer(s.timeout)
		defer timer.Stop()
		for range workers {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-timer.C:
				t.Fatalf("concurrent calls did not return within %v", s.timeout)
			}
		}
	}
	run(func(w int) error {
		for _, tp := range []engine.Topic{own(w), shared} {
			if err := f.b.Watch(tp); err != nil {
				return fmt.Errorf("worker %d: Watch(%s): %v", w, topicString(tp), err)
			}
		}
		for i := range each {
			if err := f.b.Publish(f.ctx, own(w), []byte(fmt.Sprintf("w%d:%d", w, i))); err != nil {
				return fmt.Errorf("worker %d: Publish: %v", w, err)
			}
		}
		return f.b.Publish(f.ctx, shared, []byte(fmt.Sprintf("shared:%d", w)))
	})
	total := workers*each + workers
	msgs := s.await(t, f.in, strconv.Itoa(total)+" payloads from concurrent publishers", func(msgs [][]byte) bool {
		return len(msgs) >= total
	})
	next := make([]int, workers)
	shares := 0
	for _, m := range msgs {
		var w, i int
		if _, err := fmt.Sscanf(string(m), "w%d:%d", &w, &i); err == nil && w >= 0 && w < workers {
			if i != next[w] {
				t.Fatalf("worker %d's topic: got seq %d, want %d", w, i, next[w])
			}
			next[w]++
			continue
		}
		if strings.HasPrefix(string(m), "shared:") {
			shares++
			continue
		}
		t.Fatalf("unexpected payload %s", short(m))
	}
	if shares != workers {
		t.Fatalf("shared topic delivered %d payloads, want %d (one per publish despite %d Watch references)", shares, workers, workers+1)
	}
	f.in.reset()
	run(func(w int) error {
		for _, tp := range []engine.Topic{own(w), shared} {
			if err := f.b.Unwatch(tp); err != nil {
				return fmt.Errorf("worker %d: Unwatch(%s): %v", w, topicString(tp), err)
			}
		}
		return nil
	})
	for w := range workers {
		f.publishString(own(w), "after:"+strconv.Itoa(w))
	}
	f.publishString(shared, "shared:still")
	f.expect("after concurrent Unwatch; the first Watch of the shared topic still holds it", "shared:still")
}

func (s *suite) testShared(t *testing.T) {
	if s.pair == nil {
		t.Skip("no WithPair option: the implementation did not say how to open two brokers on one backend")
	}
	openA, openB := s.pair(t)
	if openA == nil || openB == nil {
		t.Fatal("pair returned a nil Opener")
	}
	inA, inB := newInbox(), newInbox()
	a := s.fixtureOf(t, s.opened(t, openA, inA), inA)
	b := s.fixtureOf(t, s.opened(t, openB, inB), inB)
	ctx, cancel := context.WithTimeout(t.Context(), s.timeout)
	defer cancel()
	for name, f := range map[string]*fixture{"A": a, "B": b} {
		if err := f.b.Ready(ctx); err != nil {
			t.Fatalf("Ready on broker %s: %v", name, err)
		}
	}

	onA := engine.Topic{Kind: engine.Room, App: "pair", Name: "watched-on-a"}
	onB := engine.Topic{Kind: engine.User, App: "pair", Name: "watched-on-b"}
	a.watch(onA)
	b.watch(onB)
	s.establish(t, a, b, onB, "A→B")
	s.establish(t, b, a, onA, "B→A")

	// With interest established, one publisher's payloads keep their order.
	const burst = 500
	for i := range burst {
		a.publishString(onB, "burst:"+strconv.Itoa(i))
	}
	msgs := s.await(t, inB, "burst from A on B", func(msgs [][]byte) bool {
		return len(withPrefix(msgs, "burst:")) >= burst
	})
	for i, m := range withPrefix(msgs, "burst:") {
		if want := "burst:" + strconv.Itoa(i); string(m) != want {
			t.Fatalf("B received %s as burst payload %d, want %q", short(m), i, want)
		}
	}
	// A itself does not watch onB, so its own publishes never came back.
	a.expect("on A, which published to a topic only B watches")

	// A topic watched on both brokers reaches both, once each. B's inbox
	// holds only the burst, all of which has arrived.
	inB.reset()
	a.watch(onB)
	a.publishString(onB, "both")
	a.expect("on A, which watches the topic too", "both")
	b.expect("on B, which watches the topic", "both")
}

// establish publishes probes from pub to tp until sub's inbox gets one, as
// interest registered on one broker may take a while to reach the other;
// then it publishes an end marker, waits for it (so every probe has arrived,
// by per-topic order) and forgets sub's inbox.
func (s *suite) establish(t *testing.T, pub, sub *fixture, tp engine.Topic, what string) {
	t.Helper()
	deadline := time.NewTimer(s.timeout)
	defer deadline.Stop()
	prefix := "probe:" + what + ":"
	for n := 0; ; n++ {
		pub.publishString(tp, prefix+strconv.Itoa(n))
		retry := time.NewTimer(20 * time.Millisecond)
		for waiting := true; waiting; {
			if msgs := sub.in.snapshot(); len(withPrefix(msgs, prefix)) > 0 {
				retry.Stop()
				end := prefix + "end"
				pub.publishString(tp, end)
				s.await(t, sub.in, what+" end marker", func(msgs [][]byte) bool {
					return len(withPrefix(msgs, end)) > 0
				})
				sub.in.reset()
				return
			}
			select {
			case <-sub.in.wake:
			case <-retry.C:
				waiting = false
			case <-deadline.C:
				t.Fatalf("%s: no probe published on %s arrived within %v; receiver got %s",
					what, topicString(tp), s.timeout, summary(sub.in.snapshot()))
			}
		}
	}
}

func withPrefix(msgs [][]byte, prefix string) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		if strings.HasPrefix(string(m), prefix) {
			out = append(out, m)
		}
	}
	return out
}
