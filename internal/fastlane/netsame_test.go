package fastlane

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// echo answers what it saw of a request, or misbehaves as ?mode= says, the
// same whoever serves it.
func echo(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Query().Get("mode") {
	case "204body":
		w.WriteHeader(204)
		_, err := w.Write([]byte("x"))
		fmt.Fprint(w, err)
	case "badlength":
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("abc"))
	case "headers":
		w.Header().Set("X-Split", "a\r\nSet-Cookie: x=1")
		w.Header().Set("X-Pad", "  padded \t")
		w.Header().Set("Bad Name", "v")
		_, _ = w.Write([]byte("ok"))
	case "status999":
		w.WriteHeader(999)
	case "keepalive":
		w.Header().Set("Connection", "keep-alive")
		_, _ = w.Write([]byte("ok"))
	case "sniff":
		_, _ = w.Write([]byte("<html><body>hi"))
	case "encoded":
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write([]byte("<html>"))
	case "nothing":
	case "skip":
		_, _ = w.Write([]byte("skipped"))
	case "304":
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(304)
	case "twice":
		w.WriteHeader(202)
		w.WriteHeader(500)
	case "close":
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("bye"))
	default:
		b, err := io.ReadAll(r.Body)
		var hdr []string
		for k, v := range r.Header {
			hdr = append(hdr, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(hdr)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %q %q host=%q length=%d close=%v proto=%s %v body=%d %q err=%v",
			r.Method, r.RequestURI, r.URL, r.Host, r.ContentLength, r.Close, r.Proto, hdr, len(b), b[:min(len(b), 16)], err)
	}
}

// TestAnswersLikeNetHTTP sends the same bytes — a push that puts the
// connection on the lane, the case, and a last request that closes — to a
// plain net/http server and to one behind the lane: every answer, and
// where the connection ends, must be the same.
func TestAnswersLikeNetHTTP(t *testing.T) {
	plain := serve(t, nil, http.HandlerFunc(echo), 5*time.Second)
	lane := serve(t, New(func(m, p string) bool { return m == "POST" && p == "/push" }, time.Minute, 5*time.Second),
		http.HandlerFunc(echo), 5*time.Second)
	const first = "POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nfirst"
	const last = "POST /push HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast"
	head := func(extra string) string {
		return "POST /push HTTP/1.1\r\nHost: h\r\n" + extra + "Content-Length: 1\r\n\r\nz"
	}
	cases := []string{
		head(""), head("Pragma: no-cache\r\n"), head("X-A: \x80\xff\r\n"), head("X-A:\tv\t\r\n"), head("X-A: a\r\n b\r\n"),
		head("Cookie: a=1\r\nCookie: b=2\r\n"), head("Content-Length: 1\r\n"), head("Content-Length: 2\r\n"),
		head("Host: h\r\n"), head("Connection: Keep-Alive\r\n"), head("Connection: close\r\n"),
		head("Transfer-Encoding: chunked\r\n"), head("Expect: 100-continue\r\n"), head("X:\x0bv\r\n"),
		head("X-\x7fA: 1\r\n"), head("HTTP2-Settings: x\r\n"), head("Keep-Alive: timeout=1\r\n"), head("X-A : 1\r\n"),
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\nabcdefg",
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nz",
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 1 \r\n\r\nz",
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999\r\n\r\n",
		"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("z", 300000),
		"POST /push HTTP/1.1\r\nHost: h:\r\nContent-Length: 0\r\n\r\n",
		"POST /push HTTP/1.1\r\nHost: [::1\r\nContent-Length: 0\r\n\r\n",
		"POST /push HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"POST /push?a=%zz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST /p%zzush HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST /push?\x80=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST /./push HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST * HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
		"POST /push HTTP/1.0\r\nHost: h\r\nContent-Length: 1\r\n\r\nz",
		"POST /push HTTP/1.1\nHost: h\nContent-Length: 1\n\nz",
		"\r\n" + head(""), "\r\n\r\n" + head(""), "\r\n\r\n\r\n" + head(""),
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
		"GET /push HTTP/1.1\r\nHost: h\r\n\r\n",
	}
	for _, m := range []string{"204body", "badlength", "headers", "status999", "keepalive", "sniff", "encoded",
		"nothing", "skip", "304", "twice", "close"} {
		cases = append(cases, "POST /push?mode="+m+" HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			want, got := exchange(t, plain, first+c+last), exchange(t, lane, first+c+last)
			if got != want {
				t.Errorf("input %.200q\nnet/http: %s\nlane:     %s", c, want, got)
			}
		})
	}
}

// exchange writes raw on a new connection and describes every answer read
// until the server closes it (or 3 s pass: "still open").
func exchange(t *testing.T, addr, raw string) string {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() { _, _ = io.WriteString(nc, raw) }()
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	data, err := io.ReadAll(nc)
	end := "closed"
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		end = "still open"
	}
	br := bufio.NewReader(bytes.NewReader(data))
	var out []string
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if rest, _ := io.ReadAll(br); len(rest) > 0 {
				out = append(out, fmt.Sprintf("unreadable %q", rest))
			}
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Header.Del("Date")
		var hdr []string
		for k, v := range resp.Header {
			hdr = append(hdr, fmt.Sprintf("%s=%q", k, v))
		}
		slices.Sort(hdr)
		out = append(out, fmt.Sprintf("%d %v %q", resp.StatusCode, hdr, body))
	}
	return strings.Join(out, " | ") + " | " + end
}
