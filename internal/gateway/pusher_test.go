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

// A presence notice of a presence- channel becomes one shared member
// event, left out for the member it is about; other rooms' notices are
// dropped.
func TestPusherMemberEvents(t *testing.T) {
	join := protocol.NewText(append(protocol.Presence("presence-x", true, []string{"u1"})[:0:0],
		`{"type":"presence","room":"presence-x","join":["u1"],"info":{"n":1}}`...))
	leave := protocol.NewText(protocol.Presence("presence-x", false, []string{"u1"}))
	other := protocol.NewText(protocol.Presence("lobby", true, []string{"u1"}))
	them := &conn{pusher: &pusherState{members: []pusherMember{{"presence-x", "u2"}}}}
	me := &conn{pusher: &pusherState{members: []pusherMember{{"presence-x", "u1"}}}}
	got := them.pusherOthers(pusherFrames(nil, []*protocol.Outgoing{join, leave, other}))
	if len(got) != 2 {
		t.Fatalf("got %d frames", len(got))
	}
	want := []string{
		`{"event":"pusher_internal:member_added","channel":"presence-x","data":"{\"user_id\":\"u1\",\"user_info\":{\"n\":1}}"}`,
		`{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"u1\"}"}`,
	}
	for i, f := range got {
		if p := string(protocol.Payload(f.Frame)); p != want[i] {
			t.Errorf("frame %d: %s, want %s", i, p, want[i])
		}
	}
	if again := pusherFrames(nil, []*protocol.Outgoing{join}); len(again) != 1 || again[0] != got[0] {
		t.Error("the member event is encoded again")
	}
	if mine := me.pusherOthers(pusherFrames(nil, []*protocol.Outgoing{join, leave, other})); len(mine) != 0 {
		t.Errorf("the member got %d events about itself", len(mine))
	}
	both := pusherFrames(nil, []*protocol.Outgoing{join, leave})
	if kept := them.pusherOthers(both); &kept[0] != &both[0] {
		t.Error("frames without the member's own events were copied")
	}
}
