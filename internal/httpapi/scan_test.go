package httpapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzScanPush: a body the reflection-free decoder takes decodes exactly as
// encoding/json (strict) decodes it.
func FuzzScanPush(f *testing.F) {
	for _, s := range []string{
		`{"to":{"users":["alice"]},"data":{"text":"hi"}}`,
		`{"app":"shop","to":{"users":["a","b"],"conns":["c_n_1"],"rooms":[],"app":true,"all":false},"data":[1,{"a":"}"}],"ttl":60,"offline":true,"id":"x1","event":"ev"}`,
		` { "to" : { "rooms" : [ "r1" ] } , "data" : "str\"ing" , "ttl" : 0 } `,
		`{"to":{"users":["ü"]},"data":1.5e3,"to":{"rooms":["r"]}}`,
		`{"to":{"users":["a\u0041"]},"data":null}`,
		`{"to":{"Users":["a"]},"data":true}`,
		`{"data":{},"ttl":-1}`,
		`{"data":{},"ttl":012}`,
		`{"data":{},"extra":1}`,
		`{"data":{}}{}`,
		`{"data":{}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast, std pushBody
		if !json.Valid(body) || !scanPush(body, &fast) {
			return
		}
		if err := strictUnmarshal(body, &std); err != nil {
			t.Fatalf("%q: scanned %+v, encoding/json refuses it: %v", body, fast, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q:\nscanned %+v\n   json %+v", body, fast, std)
		}
	})
}

// TestScanPushTakesTheCommonBody: the Go SDK's push body takes the fast path.
func TestScanPushTakesTheCommonBody(t *testing.T) {
	body := []byte(`{"to":{"users":["alice"]},"data":{"n":1},"ttl":3600,"offline":true,"id":"order-7"}`)
	var b pushBody
	if !scanPush(body, &b) {
		t.Fatalf("scanPush refused %s", body)
	}
	if b.To.Users[0] != "alice" || string(b.Data) != `{"n":1}` || *b.TTL != 3600 || !b.Offline || b.ID != "order-7" {
		t.Fatalf("scanned %+v", b)
	}
}
