package pusher

import (
	"encoding/json"
	"testing"
)

func TestParseChannelData(t *testing.T) {
	for in, want := range map[string]string{
		`{"user_id":"1","user_info":{"name":"John"}}`: `1 {"name":"John"}`,
		`{"user_id":42}`:                  `42 `,
		`{"user_id":"a b","user_info":7}`: `a b 7`,
	} {
		m, err := ParseChannelData(in)
		if err != nil || m.ID+" "+string(m.Info) != want {
			t.Errorf("%s: %+v %v", in, m, err)
		}
	}
	long := `"` + string(make([]byte, 129)) + `"`
	for _, in := range []string{``, `{}`, `{"user_id":""}`, `{"user_id":null}`, `{"user_id":true}`, `{"user_id":` + long + `}`,
		`{"user_id":"1","user_info":"` + string(make([]byte, 1100)) + `"}`, `{"user_id":"a\u0001"}`, `[1]`} {
		if m, err := ParseChannelData(in); err == nil {
			t.Errorf("%q accepted as %+v", in, m)
		}
	}
	if _, err := ParseUserData(`{"id":1}`); err == nil {
		t.Error("a numeric user_data id accepted (pusher-js refuses it)")
	}
	if m, err := ParseUserData(`{"id":"carl","user_info":{"a":1}}`); err != nil || m.ID != "carl" {
		t.Errorf("user_data: %+v %v", m, err)
	}
}

func TestUserAuth(t *testing.T) {
	ud := `{"id":"carl"}`
	good := docKey + ":" + Sign(docSecret, "1234.1234::user::"+ud)
	if !UserAuthOK(docKey, docSecret, good, "1234.1234", ud) {
		t.Fatal("a good signature is refused")
	}
	for name, tc := range map[string][3]string{
		"other socket":    {good, "1234.1235", ud},
		"other user_data": {good, "1234.1234", `{"id":"dora"}`},
		"channel form":    {docKey + ":" + Sign(docSecret, "1234.1234:"+ud), "1234.1234", ud},
		"no key":          {Sign(docSecret, "1234.1234::user::"+ud), "1234.1234", ud},
	} {
		if UserAuthOK(docKey, docSecret, tc[0], tc[1], tc[2]) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPresenceFrames(t *testing.T) {
	f := PresenceSucceeded("presence-x", []string{"1", "2"}, map[string]json.RawMessage{"1": json.RawMessage(`{"n":"J"}`)})
	var ev struct {
		Event, Channel, Data string
	}
	if err := json.Unmarshal(f, &ev); err != nil || ev.Event != "pusher_internal:subscription_succeeded" || ev.Channel != "presence-x" {
		t.Fatalf("%s: %v", f, err)
	}
	if want := `{"presence":{"ids":["1","2"],"hash":{"1":{"n":"J"},"2":null},"count":2}}`; ev.Data != want {
		t.Fatalf("data %s, want %s", ev.Data, want)
	}
	b, ch, user := FromPresence([]byte(`{"type":"presence","room":"presence-x","leave":["7"]}`))
	if ch != "presence-x" || user != "7" || string(b) != `{"event":"pusher_internal:member_removed","channel":"presence-x","data":"{\"user_id\":\"7\"}"}` {
		t.Fatalf("member_removed: %s %s %s", b, ch, user)
	}
	if b, _, _ := FromPresence([]byte(`{"type":"presence","room":"lobby","join":["7"]}`)); b != nil {
		t.Fatalf("a native presence room became %s", b)
	}
	if got := string(SigninSuccess(`{"id":"c"}`)); got != `{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"c\\\"}\"}"}` {
		t.Fatalf("signin_success: %s", got)
	}
}
