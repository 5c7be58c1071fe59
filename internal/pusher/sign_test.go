package pusher

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

// The example of Pusher's documentation (auth signatures and the HTTP API
// reference), checked against the official Node server SDK.
const (
	docKey    = "278d425bdf160c739803"
	docSecret = "7ad3773142a6692b25b8"
	docBody   = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	docSig    = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
)

func TestChannelAuth(t *testing.T) {
	good := docKey + ":58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	if !ChannelAuthOK(docKey, docSecret, good, "1234.1234", "private-foobar", "") {
		t.Fatal("the documented signature is refused")
	}
	for name, tc := range map[string][4]string{
		"other socket":  {good, "1234.1235", "private-foobar", ""},
		"other channel": {good, "1234.1234", "private-foobaz", ""},
		"other key":     {"aaaa" + good[len(docKey):], "1234.1234", "private-foobar", ""},
		"channel data":  {good, "1234.1234", "private-foobar", `{"user_id":"1"}`},
		"no colon":      {"nothing", "1234.1234", "private-foobar", ""},
		"empty":         {"", "1234.1234", "private-foobar", ""},
	} {
		if ChannelAuthOK(docKey, docSecret, tc[0], tc[1], tc[2], tc[3]) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func docQuery() url.Values {
	return url.Values{"auth_key": {docKey}, "auth_timestamp": {"1353088179"}, "auth_version": {"1.0"},
		"body_md5": {"ec365a775a4cd0599faeb73354201b6f"}, "auth_signature": {docSig}}
}

func TestCheckRequest(t *testing.T) {
	at := time.Unix(1353088179, 0)
	if err := CheckRequest(docKey, docSecret, "POST", "/apps/3/events", docQuery(), []byte(docBody), at); err != nil {
		t.Fatalf("the documented request is refused: %v", err)
	}
	if err := CheckRequest(docKey, docSecret, "POST", "/apps/3/events", docQuery(), []byte(docBody), at.Add(599*time.Second)); err != nil {
		t.Fatalf("599 s late: %v", err)
	}
	edit := func(k, v string) url.Values {
		q := docQuery()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	for name, tc := range map[string]struct {
		q    url.Values
		body string
		path string
		at   time.Time
		want error
	}{
		"late":          {docQuery(), docBody, "/apps/3/events", at.Add(601 * time.Second), ErrAuthTimestamp},
		"early":         {docQuery(), docBody, "/apps/3/events", at.Add(-601 * time.Second), ErrAuthTimestamp},
		"other body":    {docQuery(), docBody + " ", "/apps/3/events", at, ErrBodyMD5},
		"other path":    {docQuery(), docBody, "/apps/4/events", at, ErrSignature},
		"other key":     {edit("auth_key", "x"), docBody, "/apps/3/events", at, ErrAuthKey},
		"no signature":  {edit("auth_signature", ""), docBody, "/apps/3/events", at, ErrAuthMissing},
		"bad signature": {edit("auth_signature", docSig[:63]+"0"), docBody, "/apps/3/events", at, ErrSignature},
		"extra param":   {edit("info", "user_count"), docBody, "/apps/3/events", at, ErrSignature},
		"version 2":     {edit("auth_version", "2.0"), docBody, "/apps/3/events", at, ErrAuthVersion},
		"bad timestamp": {edit("auth_timestamp", "soon"), docBody, "/apps/3/events", at, ErrAuthTimestamp},
		"body, no md5":  {edit("body_md5", ""), docBody, "/apps/3/events", at, ErrBodyMD5},
		"md5, no body":  {docQuery(), "", "/apps/3/events", at, ErrBodyMD5},
	} {
		err := CheckRequest(docKey, docSecret, "POST", tc.path, tc.q, []byte(tc.body), tc.at)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestStringToSign(t *testing.T) {
	q := url.Values{"auth_key": {"k"}, "Filter_By_Prefix": {"presence-"}, "auth_signature": {"x"}, "auth_timestamp": {"1"}}
	want := "GET\n/apps/1/channels\nauth_key=k&auth_timestamp=1&filter_by_prefix=presence-"
	if got := StringToSign("get", "/apps/1/channels", q); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
