package hub

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// counter is a Sender that only counts.
type counter struct{ n atomic.Int64 }

func (c *counter) Send(frames ...*protocol.Outgoing) { c.n.Add(int64(len(frames))) }

func BenchmarkSendRoom(b *testing.B) {
	for _, members := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			h := New(64)
			for i := range members {
				c := &Conn{ID: fmt.Sprintf("c%d", i), App: "app", User: fmt.Sprintf("u%d", i), Out: &counter{}}
				h.Add(c)
				h.Join(c, "lobby")
			}
			t := &Targets{App: "app", Rooms: []string{"lobby"}}
			frames := []*protocol.Outgoing{protocol.NewText([]byte(`{"type":"push","msgs":[]}`))}
			b.ReportAllocs()
			for b.Loop() {
				if n := h.Send(t, frames, nil); n != members {
					b.Fatalf("Send reached %d of %d", n, members)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
		})
	}
}

func BenchmarkSendUser(b *testing.B) {
	for _, conns := range []int{1, 3} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			h := New(64)
			// Other users around, so the user's shard is not empty.
			for i := range 1000 {
				h.Add(&Conn{ID: fmt.Sprintf("o%d", i), App: "app", User: fmt.Sprintf("u%d", i), Out: &counter{}})
			}
			for i := range conns {
				h.Add(&Conn{ID: fmt.Sprintf("alice-%d", i), App: "app", User: "alice", Out: &counter{}})
			}
			t := &Targets{App: "app", Users: []string{"alice"}}
			frames := []*protocol.Outgoing{protocol.NewText([]byte(`{"type":"push","msgs":[]}`))}
			b.ReportAllocs()
			for b.Loop() {
				if n := h.Send(t, frames, nil); n != conns {
					b.Fatalf("Send reached %d of %d", n, conns)
				}
			}
		})
	}
}
