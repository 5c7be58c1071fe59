package gateway

import (
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

// TestSSEEvents: queued frames become unnamed events, one v1 frame each;
// consecutive pushes share an event whose id is the highest inbox seq in
// it (room positions are not ids); line breaks in a pushed value become
// data: lines; a heartbeat ping is a comment.
func TestSSEEvents(t *testing.T) {
	stored := func(data string, seq uint64) *protocol.Outgoing {
		f := pushOf(data)
		f.Seq = seq
		return f
	}
	room := protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "m_r", Room: "r", Pos: 9, Data: []byte("{\n\"a\":1\r\n}"), TS: 1}))
	room.Seq, room.Room = 9, "r"
	big := protocol.NewText([]byte(`{"type":"joined","room":"` + strings.Repeat("x", 300) + `"}`)) // a 4-byte frame header
	batch := []*protocol.Outgoing{
		protocol.NewText(protocol.Welcome("c_n_1", "alice", 25, 2)),
		stored("a", 1), stored("b", 2),
		{Frame: protocol.Frame(protocol.OpPing, nil)},
		room,
		big,
	}
	got := string(appendEvents(nil, batch))
	want := `data: {"type":"welcome","conn":"c_n_1","user":"alice","heartbeat":25,"seq":2}` + "\n\n" +
		"id: 2\n" + `data: {"type":"push","msgs":[{"id":"m_a","data":"a","ts":1},{"id":"m_b","data":"b","ts":1}]}` + "\n\n" +
		":\n\n" +
		`data: {"type":"push","msgs":[{"id":"m_r","room":"r","pos":9,"data":{` + "\ndata: " + `"a":1` + "\ndata: \ndata: " + `},"ts":1}]}` + "\n\n" +
		`data: {"type":"joined","room":"` + strings.Repeat("x", 300) + `"}` + "\n\n"
	if got != want {
		t.Fatalf("events\n%q\nwant\n%q", got, want)
	}
}

// TestParseRooms: ?rooms= takes names and name:pos, and refuses bad ones.
func TestParseRooms(t *testing.T) {
	rooms, err := parseRooms("a,b:7,c:d:0")
	if err != nil || len(rooms) != 3 || rooms[0].since != nil || *rooms[1].since != 7 || rooms[2].name != "c:d" || *rooms[2].since != 0 {
		t.Fatalf("%+v %v", rooms, err)
	}
	for _, bad := range []string{"a,", "a:x", "a:-1", ":1"} {
		if _, err := parseRooms(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
