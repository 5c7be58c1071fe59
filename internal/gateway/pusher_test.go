package gateway

import (
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// Herald's close codes as a Pusher connection sends them: never 4000
// (pusher-js: TLS only) nor 4004/4005 (4001–4099: never reconnect) — the
// JS tests assert what pusher-js does with each.
func TestPusherCloseCode(t *testing.T) {
	for in, want := range map[int]int{
		protocol.CloseDraining:     4200,
		protocol.CloseSlowConsumer: 4100,
		protocol.CloseHeartbeat:    4201,
		protocol.CloseKicked:       4009,
		protocol.CloseTooManyConns: 4009,
		protocol.CloseGoingAway:    1001,
		protocol.CloseUnauthorized: 4001,
		protocol.CloseTooLarge:     1009,
	} {
		if got := pusherCloseCode(in); got != want {
			t.Errorf("%d: got %d, want %d", in, got, want)
		}
	}
}

func TestPusherFramesEncodeOncePerPush(t *testing.T) {
	push := protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "m", Room: "news", Data: []byte(`1`)}))
	user := protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "u", Data: []byte(`1`)}))
	ping := &protocol.Outgoing{Frame: protocol.Frame(protocol.OpPing, nil)}
	notice := protocol.NewText(protocol.Joined("news"))
	a := pusherFrames(nil, []*protocol.Outgoing{notice, push, user, ping})
	b := pusherFrames(nil, []*protocol.Outgoing{push})
	if len(a) != 2 || a[1] != ping || len(b) != 1 || a[0] != b[0] {
		t.Fatalf("got %v and %v", a, b)
	}
}
