// Package jsonscan reads the flat JSON objects of Herald's hot paths (the
// engine envelope, the body of POST /v1/push) without reflection, and
// checks a push's JSON data (Valid) as encoding/json would, faster.
//
// It takes a strict subset of JSON: strings without escapes or control
// characters, unsigned integers, true and false, arrays of such strings,
// and raw values. Anything else (null, a negative number, an escape, an
// unknown key the caller refuses) marks the scan failed, and the caller
// decodes the same bytes with encoding/json instead, which then decides —
// and words any error — exactly as it always did. So the scanner never
// needs to be right about input it does not take.
package jsonscan

import (
	"unicode/utf8"
)

// Scanner reads one JSON object. The zero value is not usable: see New.
type Scanner struct {
	b     []byte
	i     int
	first bool // no key read yet in the current object
	bad   bool
}

// New starts a scan of b, which must hold one JSON object.
func New(b []byte) Scanner {
	s := Scanner{b: b}
	s.open()
	return s
}

// Ok reports whether everything read so far was within the subset.
func (s *Scanner) Ok() bool { return !s.bad }

// Fail marks the scan failed (for a key or value the caller does not take).
func (s *Scanner) Fail() { s.bad = true }

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *Scanner) expect(c byte) bool {
	s.ws()
	if s.bad || s.i >= len(s.b) || s.b[s.i] != c {
		s.bad = true
		return false
	}
	s.i++
	return true
}

func (s *Scanner) open() {
	if s.expect('{') {
		s.first = true
	}
}

// Key returns the next key of the current object, or false at its end (or
// once the scan failed).
func (s *Scanner) Key() ([]byte, bool) {
	if s.bad {
		return nil, false
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil, false
	}
	if !s.first && !s.expect(',') {
		return nil, false
	}
	s.first = false
	k := s.str()
	if !s.expect(':') {
		return nil, false
	}
	return k, true
}

// Object enters a nested object value; read its keys with Key.
func (s *Scanner) Object() { s.open() }

// Done reports whether the scan ended well: every value read was within
// the subset and nothing but white space follows the object.
func (s *Scanner) Done() bool {
	s.ws()
	return !s.bad && s.i == len(s.b)
}

// str reads a string without escapes; its bytes alias the input.
func (s *Scanner) str() []byte {
	if !s.expect('"') {
		return nil
	}
	start := s.i
	ascii := true
	for ; s.i < len(s.b); s.i++ {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				s.bad = true // encoding/json replaces invalid UTF-8
			}
			return v
		case c == '\\' || c < 0x20:
			s.bad = true
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	s.bad = true
	return nil
}

// String reads a string value.
func (s *Scanner) String() string { return string(s.str()) }

// Strings reads an array of strings (empty: a non-nil empty slice, as
// encoding/json makes it).
func (s *Scanner) Strings() []string {
	if !s.expect('[') {
		return nil
	}
	out := []string{}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return out
	}
	for !s.bad {
		out = append(out, s.String())
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return out
		}
		s.expect(',')
	}
	return nil
}

// Bool reads true or false.
func (s *Scanner) Bool() bool {
	s.ws()
	switch {
	case s.has("true"):
		return true
	case s.has("false"):
		return false
	}
	s.bad = true
	return false
}

func (s *Scanner) has(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// Uint reads an unsigned integer of at most 18 digits (no sign, fraction
// or exponent).
func (s *Scanner) Uint() uint64 {
	s.ws()
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
	}
	n := s.i - start
	if n == 0 || n > 18 || (n > 1 && s.b[start] == '0') {
		s.bad = true
		return 0
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			s.bad = true
		}
	}
	return v
}

// Raw returns the bytes of the next value, whatever it is, aliasing the
// input. It finds the value's end but does not check the value: call it
// only on input known to be valid JSON (json.Valid).
func (s *Scanner) Raw() []byte {
	s.ws()
	if s.bad || s.i >= len(s.b) {
		s.bad = true
		return nil
	}
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			s.i++
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return s.b[start:s.i]
			}
			depth--
			s.i++
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return s.b[start:s.i]
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return s.b[start:min(s.i, len(s.b))]
		}
	}
	if depth != 0 || s.i > len(s.b) {
		s.bad = true
		return nil
	}
	return s.b[start:]
}
