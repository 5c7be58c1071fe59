package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func u64(v uint64) *uint64 { return &v }

func TestDecodeClientValid(t *testing.T) {
	long := strings.Repeat("r", MaxNameLen)
	tests := []struct {
		name string
		in   string
		want ClientFrame
	}{
		{"ping", `{"type":"ping"}`, ClientFrame{Type: TypePing}},
		{"ping with whitespace", " \n{ \"type\" : \"ping\" }\t", ClientFrame{Type: TypePing}},
		{"ping ignores unknown fields", `{"type":"ping","extra":[1,2,{"x":null}]}`, ClientFrame{Type: TypePing}},
		{"auth", `{"type":"auth","token":"abc.def.ghi"}`, ClientFrame{Type: TypeAuth, Token: "abc.def.ghi"}},
		{"join", `{"type":"join","room":"lobby"}`, ClientFrame{Type: TypeJoin, Room: "lobby"}},
		{"join unicode room", `{"type":"join","room":"caf\u00e9 ☕"}`, ClientFrame{Type: TypeJoin, Room: "café ☕"}},
		{"join max length room", `{"type":"join","room":"` + long + `"}`, ClientFrame{Type: TypeJoin, Room: long}},
		{"leave", `{"type":"leave","room":"lobby"}`, ClientFrame{Type: TypeLeave, Room: "lobby"}},
		{"ack", `{"type":"ack","seq":42}`, ClientFrame{Type: TypeAck, Seq: 42}},
		{"ack max seq", `{"type":"ack","seq":18446744073709551615}`, ClientFrame{Type: TypeAck, Seq: 1<<64 - 1}},
		{"resume since 0", `{"type":"resume","since":0}`, ClientFrame{Type: TypeResume, Since: u64(0)}},
		{"resume since 7", `{"type":"resume","since":7}`, ClientFrame{Type: TypeResume, Since: u64(7)}},
		{"send to users", `{"type":"send","to":{"users":["alice","bob"]},"data":{"k":1}}`,
			ClientFrame{Type: TypeSend, To: &SendTarget{Users: []string{"alice", "bob"}}, Data: json.RawMessage(`{"k":1}`)}},
		{"send to rooms", `{"type":"send","to":{"rooms":["r1"]},"data":"hi"}`,
			ClientFrame{Type: TypeSend, To: &SendTarget{Rooms: []string{"r1"}}, Data: json.RawMessage(`"hi"`)}},
		{"send to both", `{"type":"send","to":{"users":["u"],"rooms":["r"]},"data":[1,2]}`,
			ClientFrame{Type: TypeSend, To: &SendTarget{Users: []string{"u"}, Rooms: []string{"r"}}, Data: json.RawMessage(`[1,2]`)}},
		{"send scalar data", `{"type":"send","to":{"users":["u"]},"data":0}`,
			ClientFrame{Type: TypeSend, To: &SendTarget{Users: []string{"u"}}, Data: json.RawMessage(`0`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ferr := DecodeClient([]byte(tt.in))
			if ferr != nil {
				t.Fatalf("DecodeClient(%s) error %d %q, want none", tt.in, ferr.Code, ferr.Reason)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeClient(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeClientInvalid(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	tests := []struct {
		name string
		in   string
		code int
	}{
		// Frame-level problems: 4006.
		{"empty input", ``, ErrCodeInvalidFrame},
		{"not JSON", `ping`, ErrCodeInvalidFrame},
		{"truncated JSON", `{"type":"ping"`, ErrCodeInvalidFrame},
		{"trailing garbage", `{"type":"ping"}x`, ErrCodeInvalidFrame},
		{"JSON array", `[{"type":"ping"}]`, ErrCodeInvalidFrame},
		{"JSON string", `"ping"`, ErrCodeInvalidFrame},
		{"JSON null", `null`, ErrCodeInvalidFrame},
		{"empty object", `{}`, ErrCodeInvalidFrame},
		{"missing type", `{"room":"lobby"}`, ErrCodeInvalidFrame},
		{"empty type", `{"type":""}`, ErrCodeInvalidFrame},
		{"type not a string", `{"type":1}`, ErrCodeInvalidFrame},
		{"unknown type", `{"type":"pong"}`, ErrCodeInvalidFrame},
		{"unknown type, wrong case", `{"type":"PING"}`, ErrCodeInvalidFrame},
		{"seq not a number", `{"type":"ack","seq":"1"}`, ErrCodeInvalidFrame},
		{"seq negative", `{"type":"ack","seq":-1}`, ErrCodeInvalidFrame},
		{"seq fraction", `{"type":"ack","seq":1.5}`, ErrCodeInvalidFrame},
		{"seq overflows", `{"type":"ack","seq":18446744073709551616}`, ErrCodeInvalidFrame},
		{"to not an object", `{"type":"send","to":"alice","data":1}`, ErrCodeInvalidFrame},
		{"users not an array", `{"type":"send","to":{"users":"alice"},"data":1}`, ErrCodeInvalidFrame},
		{"data malformed", `{"type":"send","to":{"users":["a"]},"data":{]}`, ErrCodeInvalidFrame},

		// Field problems: 4007.
		{"auth without token", `{"type":"auth"}`, ErrCodeInvalidArgument},
		{"auth empty token", `{"type":"auth","token":""}`, ErrCodeInvalidArgument},
		{"join without room", `{"type":"join"}`, ErrCodeInvalidArgument},
		{"join empty room", `{"type":"join","room":""}`, ErrCodeInvalidArgument},
		{"join room too long", `{"type":"join","room":"` + long + `"}`, ErrCodeInvalidArgument},
		{"join room with NUL", `{"type":"join","room":"a\u0000b"}`, ErrCodeInvalidArgument},
		{"join room with newline", `{"type":"join","room":"a\nb"}`, ErrCodeInvalidArgument},
		{"join room with unit separator", `{"type":"join","room":"a\u001fb"}`, ErrCodeInvalidArgument},
		{"join room with DEL", `{"type":"join","room":"a\u007fb"}`, ErrCodeInvalidArgument},
		{"leave without room", `{"type":"leave"}`, ErrCodeInvalidArgument},
		{"leave room with tab", `{"type":"leave","room":"\t"}`, ErrCodeInvalidArgument},
		{"ack without seq", `{"type":"ack"}`, ErrCodeInvalidArgument},
		{"ack seq 0", `{"type":"ack","seq":0}`, ErrCodeInvalidArgument},
		{"resume without since", `{"type":"resume"}`, ErrCodeInvalidArgument},
		{"resume since null", `{"type":"resume","since":null}`, ErrCodeInvalidArgument},
		{"send without to", `{"type":"send","data":1}`, ErrCodeInvalidArgument},
		{"send to null", `{"type":"send","to":null,"data":1}`, ErrCodeInvalidArgument},
		{"send to empty", `{"type":"send","to":{},"data":1}`, ErrCodeInvalidArgument},
		{"send to empty lists", `{"type":"send","to":{"users":[],"rooms":[]},"data":1}`, ErrCodeInvalidArgument},
		{"send without data", `{"type":"send","to":{"users":["a"]}}`, ErrCodeInvalidArgument},
		{"send user empty", `{"type":"send","to":{"users":["a",""]},"data":1}`, ErrCodeInvalidArgument},
		{"send user too long", `{"type":"send","to":{"users":["` + long + `"]},"data":1}`, ErrCodeInvalidArgument},
		{"send user control char", `{"type":"send","to":{"users":["a\u0001"]},"data":1}`, ErrCodeInvalidArgument},
		{"send room empty", `{"type":"send","to":{"rooms":[""]},"data":1}`, ErrCodeInvalidArgument},
		{"send room too long", `{"type":"send","to":{"rooms":["` + long + `"]},"data":1}`, ErrCodeInvalidArgument},
		{"send room control char", `{"type":"send","to":{"users":["ok"],"rooms":["\r"]},"data":1}`, ErrCodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ferr := DecodeClient([]byte(tt.in))
			if ferr == nil {
				t.Fatalf("DecodeClient(%q) accepted, want error code %d", tt.in, tt.code)
			}
			if ferr.Code != tt.code {
				t.Fatalf("DecodeClient(%q) code %d (%q), want %d", tt.in, ferr.Code, ferr.Reason, tt.code)
			}
			if ferr.Reason == "" || ferr.Error() != ferr.Reason {
				t.Fatalf("DecodeClient(%q): reason %q, Error() %q", tt.in, ferr.Reason, ferr.Error())
			}
		})
	}
}

func TestDecodeClientReasonNamesField(t *testing.T) {
	_, ferr := DecodeClient([]byte(`{"type":"send","to":{"users":["ok"],"rooms":["a\u0002"]},"data":1}`))
	if ferr == nil || !strings.Contains(ferr.Reason, "room") || !strings.Contains(ferr.Reason, "control") {
		t.Fatalf("reason %v should name the room and the control character", ferr)
	}
	_, ferr = DecodeClient([]byte(`{"type":"nope"}`))
	if ferr == nil || !strings.Contains(ferr.Reason, `"nope"`) {
		t.Fatalf("reason %v should quote the unknown type", ferr)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"a", true},
		{"user-1@example.com", true},
		{"日本語", true},
		{"with space", true},
		{strings.Repeat("é", MaxNameLen/2), true}, // exactly MaxNameLen bytes
		{strings.Repeat("a", MaxNameLen), true},
		{"", false},
		{strings.Repeat("a", MaxNameLen+1), false},
		{strings.Repeat("é", MaxNameLen/2) + "a", false},
		{"a\x00", false},
		{"\x1f", false},
		{"a\x7fb", false},
		{"bad\xffutf8", false},
		{"\xc3", false}, // truncated sequence
	}
	for _, tt := range tests {
		err := ValidName("room", tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil {
			ne, isName := err.(*NameError)
			if !isName {
				t.Errorf("ValidName(%q) error type %T, want *NameError", tt.in, err)
			} else if ne.What != "room" || !strings.HasPrefix(err.Error(), "room ") {
				t.Errorf("ValidName(%q) error %q does not name the field", tt.in, err)
			}
		}
	}
}

// decodeObject unmarshals an encoder's output into a generic map, failing
// the test if it is not one valid JSON object.
func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func num(s string) json.Number { return json.Number(s) }

func TestEncoders(t *testing.T) {
	tricky := "a\"b\\c\nd\te\x00f\x1f</script>&\u2028☃\U0001F600"
	tests := []struct {
		name string
		got  []byte
		want map[string]any
	}{
		{"welcome", Welcome("c1", "alice", 25, 0),
			map[string]any{"type": "welcome", "conn": "c1", "user": "alice", "heartbeat": num("25"), "seq": num("0")}},
		{"welcome tricky", Welcome(tricky, "", -1, 1<<64-1),
			map[string]any{"type": "welcome", "conn": tricky, "user": "", "heartbeat": num("-1"), "seq": num("18446744073709551615")}},
		{"resumed complete", Resumed(3, 10, true),
			map[string]any{"type": "resumed", "since": num("3"), "to": num("10"), "complete": true}},
		{"resumed incomplete", Resumed(0, 0, false),
			map[string]any{"type": "resumed", "since": num("0"), "to": num("0"), "complete": false}},
		{"joined", Joined("lobby"), map[string]any{"type": "joined", "room": "lobby"}},
		{"joined tricky", Joined(tricky), map[string]any{"type": "joined", "room": tricky}},
		{"joined members", JoinedMembers("chat-1", []string{"alice", tricky}, false),
			map[string]any{"type": "joined", "room": "chat-1", "members": []any{"alice", tricky}}},
		{"joined members more", JoinedMembers(tricky, []string{}, true),
			map[string]any{"type": "joined", "room": tricky, "members": []any{}, "more": true}},
		{"presence join", Presence("chat-1", true, []string{"alice"}),
			map[string]any{"type": "presence", "room": "chat-1", "join": []any{"alice"}}},
		{"presence leave tricky", Presence(tricky, false, []string{tricky, "bob"}),
			map[string]any{"type": "presence", "room": tricky, "leave": []any{tricky, "bob"}}},
		{"left", Left("lobby"), map[string]any{"type": "left", "room": "lobby"}},
		{"left tricky", Left(tricky), map[string]any{"type": "left", "room": tricky}},
		{"recall", Recall("m-1"), map[string]any{"type": "recall", "id": "m-1"}},
		{"recall tricky", Recall(tricky), map[string]any{"type": "recall", "id": tricky}},
		{"error", ErrorFrame(ErrCodeInvalidFrame, "malformed JSON frame"),
			map[string]any{"type": "error", "code": num("4006"), "reason": "malformed JSON frame"}},
		{"error tricky", ErrorFrame(-5, tricky),
			map[string]any{"type": "error", "code": num("-5"), "reason": tricky}},
		{"pong", Pong, map[string]any{"type": "pong"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeObject(t, tt.got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s\n got %#v\nwant %#v", tt.got, got, tt.want)
			}
		})
	}
}

func TestAppendMessage(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want map[string]any
	}{
		{"minimal", Message{ID: "m1", Data: json.RawMessage(`{"a":1}`), TS: 1700000000000},
			map[string]any{"id": "m1", "data": map[string]any{"a": num("1")}, "ts": num("1700000000000")}},
		{"seq", Message{ID: "m2", Seq: 9, Data: json.RawMessage(`"x"`), TS: 1},
			map[string]any{"id": "m2", "seq": num("9"), "data": "x", "ts": num("1")}},
		{"room without pos", Message{ID: "m3", Room: "lobby", Data: json.RawMessage(`[1]`)},
			map[string]any{"id": "m3", "room": "lobby", "data": []any{num("1")}, "ts": num("0")}},
		{"room with pos", Message{ID: "m4", Room: "lobby", Pos: 77, Data: json.RawMessage(`null`)},
			map[string]any{"id": "m4", "room": "lobby", "pos": num("77"), "data": nil, "ts": num("0")}},
		{"pos without room is dropped", Message{ID: "m5", Pos: 3, Data: json.RawMessage(`true`)},
			map[string]any{"id": "m5", "data": true, "ts": num("0")}},
		{"from", Message{ID: "m6", From: "alice", Data: json.RawMessage(`1`), TS: -1},
			map[string]any{"id": "m6", "from": "alice", "data": num("1"), "ts": num("-1")}},
		{"everything", Message{ID: "m\"7", Seq: 1, Room: "r\\", Pos: 2, From: "bob\n", Data: json.RawMessage(`{"nested":{"k":["v"]}}`), TS: 5},
			map[string]any{"id": "m\"7", "seq": num("1"), "room": "r\\", "pos": num("2"), "from": "bob\n",
				"data": map[string]any{"nested": map[string]any{"k": []any{"v"}}}, "ts": num("5")}},
		{"data with surrounding whitespace", Message{ID: "m8", Data: json.RawMessage(" \n\t{\"a\" : 1}\r\n ")},
			map[string]any{"id": "m8", "data": map[string]any{"a": num("1")}, "ts": num("0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("PREFIX")
			b := AppendMessage(append([]byte(nil), prefix...), &tt.m)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendMessage clobbered the prefix: %q", b)
			}
			obj := b[len(prefix):]
			got := decodeObject(t, obj)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s\n got %#v\nwant %#v", obj, got, tt.want)
			}
			// A message embeds in a push frame as-is.
			frame := append(append(append(append(append([]byte(nil), PushPrefix...), obj...), Comma...), obj...), PushSuffix...)
			var push struct {
				Type string           `json:"type"`
				Msgs []map[string]any `json:"msgs"`
			}
			if err := json.Unmarshal(frame, &push); err != nil {
				t.Fatalf("push frame %s: %v", frame, err)
			}
			if push.Type != "push" || len(push.Msgs) != 2 {
				t.Fatalf("push frame %s decoded to %+v", frame, push)
			}
		})
	}
}

func TestAppendStringRoundTrip(t *testing.T) {
	tests := []string{
		"",
		"plain ascii",
		`"`,
		`\`,
		`\"`,
		`"quoted" and \back\slashed\\`,
		"\n\r\t\b\f",
		"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
		"\x7f",
		"<html>&amp;</html>",
		"\u2028\u2029",
		"héllo wörld",
		"日本語テキスト",
		"emoji 😀🎉 and ZWJ 👩‍👩‍👧",
		"\uFFFD literal replacement char",
		"\U0010FFFF",
		// Invalid UTF-8.
		"\xff",
		"a\xffb",
		"\xc3",             // truncated 2-byte sequence
		"\xc3(",            // bad continuation
		"\xe2\x82",         // truncated 3-byte sequence
		"\xe2\x82\x28",     // bad continuation in 3-byte sequence
		"\xf0\x9f\x98",     // truncated 4-byte sequence
		"\xed\xa0\x80",     // UTF-16 surrogate half
		"\xc0\xaf",         // overlong '/'
		"\xf4\x90\x80\x80", // above U+10FFFF
		"\x80\x80\x80",     // lone continuation bytes
		"ok\xff\"\xfe\\\n\xc3\xa9",
	}
	for _, s := range tests {
		checkAppendString(t, s)
	}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	b := AppendString([]byte("x"), s)
	if b[0] != 'x' {
		t.Fatalf("AppendString(%q) clobbered the prefix", s)
	}
	enc := b[1:]
	if !utf8.Valid(enc) {
		t.Fatalf("AppendString(%q) = %q is not valid UTF-8", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("AppendString(%q) = %q: %v", s, enc, err)
	}
	// Each byte that is not part of a valid sequence becomes one U+FFFD,
	// as when converting to []rune.
	want := string([]rune(s))
	if got != want {
		t.Fatalf("AppendString(%q) = %s decodes to %q, want %q", s, enc, got, want)
	}
	if utf8.ValidString(s) && got != s {
		t.Fatalf("AppendString(%q) changed a valid string to %q", s, got)
	}
}

func TestAppendStringEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"é", `"é"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xc3", `"\ufffd"`},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\xff\xfe", "é\xc3", "😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
	})
}

func TestNewPush(t *testing.T) {
	msg := AppendMessage(nil, &Message{ID: "m1", Seq: 3, Data: json.RawMessage(`{"a":"b"}`), TS: 9})
	o := NewPush(msg)
	if !bytes.Equal(o.Msg, msg) {
		t.Fatalf("Msg = %s, want %s", o.Msg, msg)
	}
	if cap(o.Msg) != len(o.Msg) {
		t.Fatalf("Msg has spare capacity %d: appending to it would overwrite the frame", cap(o.Msg)-len(o.Msg))
	}
	// The frame is a final, unmasked text frame whose payload is the push.
	if o.Frame[0] != 0x80|OpText {
		t.Fatalf("first byte %#x", o.Frame[0])
	}
	n := int(o.Frame[1])
	if n >= 126 || len(o.Frame) != 2+n {
		t.Fatalf("length byte %d, frame %d bytes", n, len(o.Frame))
	}
	payload := o.Frame[2:]
	want := string(PushPrefix) + string(msg) + string(PushSuffix)
	if string(payload) != want {
		t.Fatalf("payload %s, want %s", payload, want)
	}
	var push struct {
		Type string `json:"type"`
		Msgs []struct {
			ID  string `json:"id"`
			Seq uint64 `json:"seq"`
		} `json:"msgs"`
	}
	if err := json.Unmarshal(payload, &push); err != nil {
		t.Fatal(err)
	}
	if push.Type != "push" || len(push.Msgs) != 1 || push.Msgs[0].ID != "m1" || push.Msgs[0].Seq != 3 {
		t.Fatalf("decoded %+v", push)
	}

	txt := NewText([]byte(`{"type":"pong"}`))
	if txt.Msg != nil || string(txt.Frame) != "\x81\x0f"+`{"type":"pong"}` {
		t.Fatalf("NewText = %q / %q", txt.Frame, txt.Msg)
	}
}
