package fastlane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkKeepAlivePush: one keep-alive connection sending a push-sized
// POST and reading its answer, served by net/http alone and by the lane
// (client and server in this process: ns/op and allocs/op are both sides).
func BenchmarkKeepAlivePush(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"m_0123456789"}`))
	})
	req := []byte(post("/push", `{"to":{"users":["u1"]},"data":{"i":1,"t":1,"p":"0123456789012345678901234567890123456789"}}`,
		"Authorization: Bearer 0123456789abcdef\r\nContent-Type: application/json\r\n"))
	for _, name := range []string{"net/http", "lane"} {
		b.Run(name, func(b *testing.B) {
			var lane *Lane
			if name == "lane" {
				lane = New(func(m, p string) bool { return p == "/push" }, time.Minute, 10*time.Second)
			}
			nc, err := net.Dial("tcp", serve(b, lane, h, 10*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			br := bufio.NewReader(nc)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := nc.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
