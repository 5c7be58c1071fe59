package gateway

import (
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// A room push fanned out to Pusher connections is converted once and
// then queued by every recipient without an allocation.
func TestPusherFramesFanOutAllocatesNothing(t *testing.T) {
	push := []*protocol.Outgoing{protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "m", Room: "news", Data: []byte(`{"n":1}`)}))}
	first := pusherFrames(push)
	if len(first) != 1 || string(first[0].Frame[2:]) != `{"event":"message","channel":"news","data":"{\"n\":1}"}` {
		t.Fatalf("converted to %q", first[0].Frame)
	}
	if n := testing.AllocsPerRun(100, func() {
		if got := pusherFrames(push); len(got) != 1 || got[0] != first[0] {
			t.Fatal("not the shared frame")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per delivery", n)
	}
	userOnly := []*protocol.Outgoing{protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "u", Data: []byte(`1`)}))}
	if got := pusherFrames(userOnly); len(got) != 0 {
		t.Fatalf("a push without a room became %d frames", len(got))
	}
}
