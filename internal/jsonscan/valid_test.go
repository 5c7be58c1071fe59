package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

var validSeeds = []string{
	``, ` `, `0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5e`, `1e+`, `1E-7`, `-12.5e+30`, `+1`, `1 2`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `nulll`,
	`""`, `"`, `"a\"b"`, `"\u00e9\uD83D"`, `"\u12"`, `"\u12G4"`, `"\x"`, `"\/\b\f\n\r\t\\"`, "\"\x01\"", "\"\xff\xfe\"", "\"tab\there\"",
	`{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":1}}`,
	`[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[[[]]]`, `[[[]]`, ` [1, "two", {"three": 3.0}, [true, false, null]] `,
	"\t\r\n{\"x\":\n1}\n", "{\"i\":1, \"s\":\"" + strings.Repeat("x", 100) + "\"}",
}

// TestValidIsEncodingJSONValid: Valid agrees with encoding/json.Valid on
// the seeds, and on nesting at and past encoding/json's depth limit.
func TestValidIsEncodingJSONValid(t *testing.T) {
	for _, s := range validSeeds {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			close := map[string]string{"[": "]", `{"k":`: "}"}[open]
			b := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(close, depth))
			if got, want := Valid(b), json.Valid(b); got != want || want != (depth <= maxDepth) {
				t.Errorf("depth %d of %s: Valid %v, encoding/json %v", depth, open, got, want)
			}
		}
	}
}

// FuzzValid: Valid accepts exactly what encoding/json.Valid accepts.
func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// BenchmarkValid compares Valid with encoding/json.Valid on a push's data
// of about 100 bytes.
func BenchmarkValid(b *testing.B) {
	data := []byte(`{"i":1099511627776,"t":1733500000000,"pad":"` + strings.Repeat("x", 60) + `"}`)
	b.Run("jsonscan", func(b *testing.B) {
		for b.Loop() {
			Valid(data)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			json.Valid(data)
		}
	})
}
