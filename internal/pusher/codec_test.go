package pusher

import (
	"encoding/json"
	"testing"

	"github.com/heraldpush/herald/internal/protocol"
)

func TestFromMessage(t *testing.T) {
	for name, tc := range map[string]struct {
		m    protocol.Message
		want string
	}{
		"object":        {protocol.Message{ID: "m1", Room: "news", Data: json.RawMessage(`{"a":1}`)}, `{"event":"message","channel":"news","data":"{\"a\":1}"}`},
		"string":        {protocol.Message{ID: "m1", Room: "news", Event: "e", Data: json.RawMessage(`"hi \"x\""`)}, `{"event":"e","channel":"news","data":"hi \"x\""}`},
		"number":        {protocol.Message{ID: "m1", Seq: 3, Room: "n", Pos: 9, Data: json.RawMessage(` 42 `)}, `{"event":"message","channel":"n","data":"42"}`},
		"client event":  {protocol.Message{ID: "m1", Room: "private-c", From: "u", Event: "client-x", Data: json.RawMessage(`null`)}, `{"event":"client-x","channel":"private-c","data":"null"}`},
		"presence user": {protocol.Message{ID: "m1", Room: "presence-c", From: "u", Event: "client-x", Data: json.RawMessage(`{}`)}, `{"event":"client-x","channel":"presence-c","data":"{}","user_id":"u"}`},
	} {
		got := FromMessage(protocol.AppendMessage(nil, &tc.m))
		if string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", name, got, tc.want)
		}
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Errorf("%s: not JSON: %v", name, err)
		}
	}
	if got := FromMessage(protocol.AppendMessage(nil, &protocol.Message{ID: "m", Data: json.RawMessage(`1`)})); got != nil {
		t.Errorf("a message without a room became %s", got)
	}
}

func TestFrames(t *testing.T) {
	var ce struct {
		Event string `json:"event"`
		Data  string `json:"data"`
	}
	if err := json.Unmarshal(ConnectionEstablished("12.34", 120), &ce); err != nil || ce.Event != "pusher:connection_established" {
		t.Fatalf("connection_established: %v %+v", err, ce)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(ce.Data), &d); err != nil || d.SocketID != "12.34" || d.ActivityTimeout != 120 {
		t.Fatalf("connection_established data %q: %v", ce.Data, err)
	}
	for _, b := range [][]byte{Error(4001, `bad "key"`), SubscriptionError("c", "AuthError", "no\n", 401), SubscriptionSucceeded("c"), Pong} {
		if !json.Valid(b) {
			t.Errorf("invalid JSON: %s", b)
		}
	}
}

func TestDecode(t *testing.T) {
	var s Subscribe
	f, err := Decode([]byte(`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:s"}}`))
	if err != nil || DecodeData(f.Data, &s) != nil || s.Channel != "private-a" || s.Auth != "k:s" {
		t.Fatalf("object data: %v %+v", err, s)
	}
	f, err = Decode([]byte(`{"event":"pusher:subscribe","data":"{\"channel\":\"b\"}"}`))
	if err != nil || DecodeData(f.Data, &s) != nil || s.Channel != "b" {
		t.Fatalf("string data: %v %+v", err, s)
	}
	for _, bad := range []string{``, `[]`, `{"data":{}}`, `{"event":1}`, `nope`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"event":"pusher:subscribe","data":{"channel":"a"}}`))
	f.Add([]byte(`{"event":"client-x","channel":"private-a","data":"{}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		var s Subscribe
		_ = DecodeData(fr.Data, &s)
		if fr.Channel != "" && ValidChannel(fr.Channel) && fr.Data != nil && json.Valid(fr.Data) {
			out := Event(fr.Event, fr.Channel, fr.Data, "")
			if !json.Valid(out) {
				t.Fatalf("Event made invalid JSON %s", out)
			}
		}
	})
}

func TestValidChannel(t *testing.T) {
	for _, ok := range []string{"a", "private-a_b=c@d,e.f;g", "presence-x", "#server-to-user-1", "#server-to-user-auth0|a b"} {
		if !ValidChannel(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	long := make([]byte, MaxNameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, bad := range []string{"", "a b", "a/b", "é", string(long), "#server-to-user-", "#other", "a#b", "#server-to-user-a\x01"} {
		if ValidChannel(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
