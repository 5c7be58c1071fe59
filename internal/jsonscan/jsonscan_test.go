package jsonscan

import (
	"reflect"
	"testing"
)

// TestScanTakesItsSubset reads one object of every value kind the scanner
// takes, with white space anywhere JSON allows it.
func TestScanTakesItsSubset(t *testing.T) {
	s := New([]byte(" {\"s\" : \"ü x\", \"l\":[ \"a\" ,\"\" ], \"e\":[], \"b\":true,\"f\":false, \"n\":1234, \"z\":0,\n\"o\":{\"k\":\"v\"}, \"r\": [1, {\"x\":\"]}\\\"\"}] , \"q\":\"y\"} \n"))
	got := map[string]any{}
	for {
		k, ok := s.Key()
		if !ok {
			break
		}
		switch string(k) {
		case "s", "q":
			got[string(k)] = s.String()
		case "l", "e":
			got[string(k)] = s.Strings()
		case "b", "f":
			got[string(k)] = s.Bool()
		case "n", "z":
			got[string(k)] = s.Uint()
		case "o":
			s.Object()
			k, _ := s.Key()
			got["o."+string(k)] = s.String()
			if _, more := s.Key(); more {
				t.Fatal("nested object has one key")
			}
		case "r":
			got["r"] = string(s.Raw())
		}
	}
	if !s.Done() {
		t.Fatal("scan failed")
	}
	want := map[string]any{"s": "ü x", "q": "y", "l": []string{"a", ""}, "e": []string{}, "b": true, "f": false,
		"n": uint64(1234), "z": uint64(0), "o.k": "v", "r": `[1, {"x":"]}\""}]`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// TestScanRefusesTheRest: what encoding/json must decide is refused.
func TestScanRefusesTheRest(t *testing.T) {
	for _, body := range []string{
		`{"s":"a\"b"}`, `{"s":"a\u0041"}`, "{\"s\":\"\xff\"}", "{\"s\":\"\x01\"}", `{"s":null}`,
		`{"n":-1}`, `{"n":1.5}`, `{"n":1e3}`, `{"n":01}`, `{"n":1234567890123456789}`,
		`{"b":1}`, `{"l":["a",1]}`, `{"s":"a"}x`, `{"s":"a"`, `["s"]`, ``,
	} {
		s := New([]byte(body))
		for {
			k, ok := s.Key()
			if !ok {
				break
			}
			switch string(k) {
			case "s":
				_ = s.String()
			case "n":
				_ = s.Uint()
			case "b":
				_ = s.Bool()
			case "l":
				_ = s.Strings()
			}
		}
		if s.Done() {
			t.Errorf("%q was taken", body)
		}
	}
}
