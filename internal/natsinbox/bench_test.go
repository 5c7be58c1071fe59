package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
)

func BenchmarkInboxAppend(b *testing.B) {
	payload := make([]byte, 100)
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("users=%d/size=100B", n), func(b *testing.B) {
			ib := embeddedInbox(b, b.TempDir(), Config{})
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
			ib := embeddedInbox(b, b.TempDir(), Config{})
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
	ib := embeddedInbox(b, b.TempDir(), Config{})
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

// BenchmarkInboxAppendManyCold stores batches of 1,000 100-byte entries to
// 1,000 users that are new in every batch: without a tip cache every user
// is read first; with Exclusive new users need no read.
func BenchmarkInboxAppendManyCold(b *testing.B) {
	payload := make([]byte, 100)
	for _, c := range []struct {
		name string
		cfg  Config
		new  bool
	}{
		{"existing/no-tip-cache", Config{TipCache: -1}, false},
		{"new/no-tip-cache", Config{TipCache: -1}, true},
		{"new/exclusive", Config{Exclusive: true}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ib := embeddedInbox(b, b.TempDir(), c.cfg)
			entries := make([]engine.Entry, 1000)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range entries {
					u := i
					if c.new {
						u += n * len(entries)
					}
					entries[i] = engine.Entry{User: "user" + strconv.Itoa(u), ID: "m", Payload: payload, TTL: time.Hour}
				}
				if _, errs := ib.AppendMany(ctx, "bench", entries); errs != nil {
					b.Fatal(errors.Join(errs...))
				}
			}
			b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkInboxStateExclusive is State with Config.Exclusive for an
// inbox with no state (no round trip) and one with state.
func BenchmarkInboxStateExclusive(b *testing.B) {
	ib := embeddedInbox(b, b.TempDir(), Config{Exclusive: true})
	ctx := context.Background()
	if _, err := ib.Append(ctx, "bench", []string{"reader"}, "m", nil, time.Hour); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		user   string
		latest uint64
	}{{"nobody", 0}, {"reader", 1}} {
		b.Run(c.user, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if latest, _, err := ib.State(ctx, "bench", c.user); err != nil || latest != c.latest {
					b.Fatalf("State: %d, %v", latest, err)
				}
			}
		})
	}
}

// BenchmarkInboxIndexLoad is the Start of an exclusive inbox on a stream
// holding 100,000 inboxes (and one of a non-exclusive one for comparison).
func BenchmarkInboxIndexLoad(b *testing.B) {
	dir := b.TempDir()
	const users = 100_000
	e := startedEngine(b, natsengine.Config{DataDir: dir, NodeID: "inbox"})
	ib := startedInbox(b, e, Config{Exclusive: true})
	ctx := context.Background()
	entries := make([]engine.Entry, 1000)
	for lo := 0; lo < users; lo += len(entries) {
		for i := range entries {
			entries[i] = engine.Entry{User: "user" + strconv.Itoa(lo+i), ID: "m", Payload: make([]byte, 100), TTL: time.Hour}
		}
		if _, errs := ib.AppendMany(ctx, "bench", entries); errs != nil {
			b.Fatal(errors.Join(errs...))
		}
	}
	for _, exclusive := range []bool{false, true} {
		b.Run("exclusive="+strconv.FormatBool(exclusive), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ib2, err := New(e, Config{Exclusive: exclusive})
				if err != nil {
					b.Fatal(err)
				}
				if err := ib2.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if exclusive && ib2.index.len() != users {
					b.Fatalf("index of %d", ib2.index.len())
				}
				b.StopTimer()
				if err := ib2.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkInboxAppendManyParallel stores batches of 1,000 100-byte entries
// to 1,000 users from several goroutines at once (as concurrent batch
// requests would), each with its own users.
func BenchmarkInboxAppendManyParallel(b *testing.B) {
	payload := make([]byte, 100)
	ib := embeddedInbox(b, b.TempDir(), Config{})
	var next sync.Mutex
	g := 0
	b.ReportAllocs()
	b.SetParallelism(2) // 2 per CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		g++
		me := g
		next.Unlock()
		entries := make([]engine.Entry, 1000)
		for i := range entries {
			entries[i] = engine.Entry{User: "g" + strconv.Itoa(me) + "-user" + strconv.Itoa(i), ID: "m", Payload: payload, TTL: time.Hour}
		}
		ctx := context.Background()
		for pb.Next() {
			if _, errs := ib.AppendMany(ctx, "bench", entries); errs != nil {
				b.Error(errors.Join(errs...))
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "msgs/s")
}
