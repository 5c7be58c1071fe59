package gateway

import (
	"fmt"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// TestLiveCopyOfAReplayedMessageIsDropped: a stored message whose live copy
// arrives after the replay that already sent it reaches the client once;
// later live messages, and a replay asked for again, still go out.
func TestLiveCopyOfAReplayedMessageIsDropped(t *testing.T) {
	stored := func(seq uint64) *protocol.Outgoing {
		f := pushOf(fmt.Sprint(seq))
		f.Seq = seq
		return f
	}
	c := &conn{g: &Gateway{cfg: Config{QueueBytes: 1 << 20}}, writing: true} // no writer: frames stay queued
	c.hold()
	c.sendNow(stored(1), stored(2))
	c.release("", 2)
	shared := []*protocol.Outgoing{stored(2), stored(3)} // as fan-out passes it to every connection
	c.Send(shared...)
	c.Send(stored(1))
	c.sendNow(stored(1)) // a resume frame's replay
	var got []uint64
	for _, f := range c.take() {
		got = append(got, f.Seq)
	}
	if fmt.Sprint(got) != "[1 2 3 1]" {
		t.Fatalf("queued seqs %v; want [1 2 3 1] (the replay, the one new live message, the replay again)", got)
	}
	if shared[0].Seq != 2 || shared[1].Seq != 3 {
		t.Fatal("the shared frames were changed")
	}
}
