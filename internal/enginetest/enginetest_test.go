package enginetest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
)

// memBroker is an in-memory engine.Broker used to test the suite itself:
// brokers on one bus see each other's publishes, and deliveries go through
// a few worker goroutines chosen by topic hash, like natsengine's
// dispatchers. A mutation makes it break one rule on purpose.
type memBroker struct {
	bus     *bus
	h       engine.Handler
	mut     string
	seed    maphash.Seed
	workers []chan []byte
	wg      sync.WaitGroup

	mu    sync.Mutex
	refs  map[string]int
	count int // publishes delivered, for the drop and reorder mutations
}

type bus struct {
	mu      sync.Mutex
	brokers []*memBroker
}

func (b *memBroker) key(t engine.Topic) string {
	switch b.mut {
	case "kindless":
		return fmt.Sprintf("%q|%q", t.App, t.Name)
	case "naive-join":
		return fmt.Sprintf("%d.%s.%s", t.Kind, t.App, t.Name)
	}
	switch t.Kind {
	case engine.All:
		t.App, t.Name = "", ""
	case engine.App:
		t.Name = ""
	case engine.Node:
		t.App = ""
	}
	return fmt.Sprintf("%d|%q|%q", t.Kind, t.App, t.Name)
}

func (b *memBroker) Publish(_ context.Context, t engine.Topic, payload []byte) error {
	p := bytes.Clone(payload)
	if b.mut == "truncate-lines" {
		p, _, _ = bytes.Cut(p, []byte("\n"))
	}
	k := b.key(t)
	b.bus.mu.Lock()
	brokers := b.bus.brokers
	b.bus.mu.Unlock()
	for _, to := range brokers {
		to.deliver(k, p)
	}
	return nil
}

func (b *memBroker) deliver(k string, p []byte) {
	b.mu.Lock()
	if b.refs[k] <= 0 && b.mut != "leak-unwatched" {
		b.mu.Unlock()
		return
	}
	b.count++
	if b.mut == "drop" && b.count%1000 == 999 {
		b.mu.Unlock()
		return
	}
	w := b.workers[maphash.String(b.seed, k)%uint64(len(b.workers))]
	if b.refs[k] <= 0 {
		// leak-unwatched: deliver through some other worker than its own,
		// so only a sentinel on that worker can reveal it.
		w = b.workers[(maphash.String(b.seed, k)+1)%uint64(len(b.workers))]
	}
	b.mu.Unlock()
	w <- p
}

func (b *memBroker) Watch(t engine.Topic) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs[b.key(t)]++
	return nil
}

func (b *memBroker) Unwatch(t engine.Topic) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.key(t)
	switch {
	case b.mut == "unwatch-noop":
	case b.mut == "no-refcount":
		delete(b.refs, k)
	case b.mut == "negative-refcount":
		b.refs[k]--
	case b.refs[k] > 1:
		b.refs[k]--
	default:
		delete(b.refs, k)
	}
	return nil
}

func (b *memBroker) Ready(context.Context) error {
	if b.mut == "unready" {
		return engine.ErrUnavailable
	}
	return nil
}

func (b *memBroker) work(ch chan []byte) {
	defer b.wg.Done()
	var held []byte
	n := 0
	for p := range ch {
		n++
		if b.mut == "reorder" && n%100 == 0 {
			held = p
			continue
		}
		b.h([][]byte{p})
		if held != nil {
			b.h([][]byte{held})
			held = nil
		}
	}
}

func openOn(bs *bus, mut string) enginetest.Opener {
	return func(t *testing.T, h engine.Handler) engine.Broker {
		if bs == nil {
			bs = &bus{}
		}
		b := &memBroker{bus: bs, h: h, mut: mut, seed: maphash.MakeSeed(), refs: map[string]int{}}
		for range 4 {
			ch := make(chan []byte, 1<<16)
			b.workers = append(b.workers, ch)
			b.wg.Add(1)
			go b.work(ch)
		}
		bs.mu.Lock()
		bs.brokers = append(bs.brokers, b)
		bs.mu.Unlock()
		t.Cleanup(func() {
			bs.mu.Lock()
			bs.brokers = slicesDelete(bs.brokers, b)
			bs.mu.Unlock()
			for _, ch := range b.workers {
				close(ch)
			}
			b.wg.Wait()
		})
		return b
	}
}

func slicesDelete(bs []*memBroker, b *memBroker) []*memBroker {
	out := make([]*memBroker, 0, len(bs))
	for _, x := range bs {
		if x != b {
			out = append(out, x)
		}
	}
	return out
}

func open(mut string) enginetest.Opener {
	return func(t *testing.T, h engine.Handler) engine.Broker { return openOn(nil, mut)(t, h) }
}

func pair(mut string) func(t *testing.T) (enginetest.Opener, enginetest.Opener) {
	return func(t *testing.T) (enginetest.Opener, enginetest.Opener) {
		if mut == "unshared" {
			return open(""), open("")
		}
		bs := &bus{}
		return openOn(bs, ""), openOn(bs, "")
	}
}

// TestReference runs the suite against the correct in-memory broker.
func TestReference(t *testing.T) {
	enginetest.RunBroker(t, open(""), enginetest.WithPair(pair("")))
}

var mutants = []struct{ mut, subtest, what string }{
	{"kindless", "KindsDistinct", "ignores a topic's kind"},
	{"naive-join", "NamesDistinct", "joins app and name with a dot"},
	{"no-refcount", "RefCounted", "drops interest on the first Unwatch"},
	{"negative-refcount", "UnwatchNeverWatched", "lets Unwatch take the count below zero"},
	{"unwatch-noop", "UnwatchedTopicSilent", "ignores Unwatch"},
	{"leak-unwatched", "UnwatchedTopicSilent", "delivers unwatched topics on another worker"},
	{"drop", "PerTopicOrder", "drops one delivery in a thousand"},
	{"reorder", "PerTopicOrder", "swaps every hundredth delivery with the next"},
	{"truncate-lines", "PayloadIntact", "cuts payloads at the first newline"},
	{"unready", "Ready", "is never ready"},
	{"unshared", "SharedBackend", "does not share its backend"},
}

// TestMutants checks that the suite fails brokers that break its rules:
// each mutant's subtest runs in a child process, which must fail.
func TestMutants(t *testing.T) {
	if os.Getenv("ENGINETEST_MUTANT") != "" {
		t.Skip("child process")
	}
	for _, m := range mutants {
		t.Run(m.mut, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMutant$/^"+m.mut+"$/^"+m.subtest+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "ENGINETEST_MUTANT="+m.mut)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("suite did not fail a broker that %s (err %v):\n%s", m.what, err, out)
			}
			if want := "--- FAIL: TestMutant/" + m.mut + "/" + m.subtest + " "; !strings.Contains(string(out), want) {
				t.Fatalf("want %q in the output of a broker that %s:\n%s", want, m.what, out)
			}
		})
	}
}

// TestMutant runs the suite against one mutant when TestMutants asks.
func TestMutant(t *testing.T) {
	mut := os.Getenv("ENGINETEST_MUTANT")
	if mut == "" {
		t.Skip("run by TestMutants")
	}
	t.Run(mut, func(t *testing.T) {
		pairMut := ""
		if mut == "unshared" {
			pairMut = mut
			mut = ""
		}
		enginetest.RunBroker(t, open(mut), enginetest.WithPair(pair(pairMut)), enginetest.WithTimeout(2*time.Second))
	})
}
