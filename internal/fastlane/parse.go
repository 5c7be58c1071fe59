package fastlane

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// parseHead reads a request head (through its empty line) into r, if it is
// one the lane takes: a clean HTTP/1.1 request that take accepts (see the
// package doc). false leaves the request to net/http. (r is filled in
// place: the caller's WithContext makes the one copy a request needs.)
func parseHead(r *http.Request, head []byte, take func(method, path string) bool) bool {
	line, rest, _ := bytes.Cut(head, crlf)
	method, line, ok1 := bytes.Cut(line, sp)
	target, proto, ok2 := bytes.Cut(line, sp)
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" || !isToken(method) || len(target) == 0 || target[0] != '/' || !visible(target) {
		return false
	}
	u, err := url.ParseRequestURI(string(target))
	if err != nil || !take(string(method), u.Path) {
		return false
	}
	*r = http.Request{Method: string(method), URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, 8), RequestURI: string(target)}
	hosts, lengths := 0, 0
	for {
		line, rest, _ = bytes.Cut(rest, crlf)
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, colon)
		if !ok || !isToken(name) || !fieldValue(value) {
			return false
		}
		value = bytes.Trim(value, " \t")
		key := canonical(name)
		switch key {
		case "Host":
			if hosts++; hosts > 1 || !hostChars(value) {
				return false
			}
			r.Host = string(value)
			continue // net/http keeps it in r.Host only
		case "Content-Length":
			n, ok := digits(value)
			if lengths++; lengths > 1 || !ok {
				return false
			}
			r.ContentLength = n
		case "Transfer-Encoding", "Expect", "Upgrade":
			return false
		case "Connection":
			if !asciiEqualFold(string(value), "keep-alive") || len(r.Header["Connection"]) > 0 {
				return false
			}
		}
		r.Header[key] = append(r.Header[key], string(value))
	}
	if hosts == 0 {
		return false
	}
	// As net/http reads a request: Pragma: no-cache implies Cache-Control.
	if p := r.Header["Pragma"]; len(p) > 0 && p[0] == "no-cache" && len(r.Header["Cache-Control"]) == 0 {
		r.Header["Cache-Control"] = []string{"no-cache"}
	}
	return true
}

var (
	crlf  = []byte("\r\n")
	sp    = []byte(" ")
	colon = []byte(":")
)

// common are header names requests carry most, canonical: looked up
// without allocating.
var common = []string{"Host", "Content-Length", "Content-Type", "Authorization", "User-Agent", "Accept",
	"Accept-Encoding", "Connection", "Idempotency-Key", "X-Request-Id", "X-Forwarded-For", "Traceparent"}

func canonical(name []byte) string {
	for _, c := range common {
		if len(c) == len(name) && asciiEqualFold(string(name), c) {
			return c
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// isToken: RFC 9110 token characters, at least one.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar(c) {
			return false
		}
	}
	return true
}

func tokenChar(c byte) bool { return tokenChars[c] }

// tokenChars marks RFC 9110's token characters.
var tokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c != 0 && strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// validName reports a header name net/http would write.
func validName(k string) bool { return isToken([]byte(k)) }

// visible: no spaces or control characters.
func visible(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// fieldValue: tabs, visible ASCII, spaces and bytes of 0x80 and up.
func fieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// hostChars: a non-empty host[:port] of letters, digits and the few
// punctuation marks a host or an IPv6 literal uses.
func hostChars(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-._~:[]"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// digits parses a Content-Length: 1 to 18 decimal digits.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// asciiEqualFold compares ASCII case-insensitively.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
