package gateway

import (
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// A room push fanned out to Pusher connections is converted once; a burst
// is converted into the caller's slice without an allocation.
func TestPusherFramesConvertOnceWithoutAllocating(t *testing.T) {
	msg := func(id, room string) *protocol.Outgoing {
		return protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: id, Room: room, Data: []byte(`{"n":1}`)}))
	}
	burst := []*protocol.Outgoing{msg("a", "news"), msg("b", ""), msg("c", "news")}
	first := pusherFrames(nil, burst)
	if len(first) != 2 || string(first[0].Frame[2:]) != `{"event":"message","channel":"news","data":"{\"n\":1}"}` {
		t.Fatalf("converted to %d frames, first %q", len(first), first[0].Frame)
	}
	if pusherFrames(nil, burst[:1])[0] != first[0] {
		t.Fatal("a lone delivery of the push does not share the converted frame")
	}
	dst := make([]*protocol.Outgoing, 0, 4)
	if n := testing.AllocsPerRun(100, func() {
		if got := pusherFrames(dst[:0], burst); len(got) != 2 || got[0] != first[0] || got[1] != first[1] {
			t.Fatal("not the shared frames")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per delivery", n)
	}
}
