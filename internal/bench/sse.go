package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// sseTransport returns the worker's HTTP transport for SSE streams, dialing
// from its source address; every stream holds a connection of its own.
func (w *worker) sseTransport() *http.Transport {
	w.sseOnce.Do(func() {
		local := &net.TCPAddr{IP: net.ParseIP(w.cfg.Source)}
		d := net.Dialer{LocalAddr: local, Timeout: 30 * time.Second}
		w.sse = &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: -1, DisableCompression: true}
	})
	return w.sse
}

// dialSSE opens client i's stream (with the room in ?rooms=), waits for
// its welcome (and joined), then starts its reader.
func (w *worker) dialSSE(i int) (*benchConn, error) {
	q := url.Values{}
	if w.cfg.App != "" {
		tok, err := w.token(i)
		if err != nil {
			return nil, err
		}
		q.Set("token", tok)
	} else {
		q.Set("user", w.user(i))
	}
	if w.cfg.Room != "" {
		q.Set("rooms", w.cfg.Room)
	}
	// The context ends the stream: the dial and the welcome get 30 s,
	// then the timer is stopped and the stream lasts until closed.
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(30*time.Second, cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", w.cfg.URL+"?"+q.Encode(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := w.sseTransport().RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("client %d: %s", i, resp.Status)
	}
	c := &benchConn{body: resp.Body, last: -1}
	r := bufio.NewReaderSize(resp.Body, 4096)
	want := [][]byte{[]byte(`"welcome"`)}
	if w.cfg.Room != "" {
		want = append(want, []byte(`"joined"`))
	}
	for len(want) > 0 {
		line, err := r.ReadSlice('\n')
		if err != nil {
			resp.Body.Close()
			cancel()
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		if bytes.HasPrefix(line, dataPrefix) && bytes.Contains(line, want[0]) {
			want = want[1:]
		}
	}
	if !timer.Stop() {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("client %d: no welcome in time", i)
	}
	go func() {
		defer cancel()
		w.readSSE(c, r)
	}()
	return c, nil
}

var (
	dataPrefix = []byte("data: ")
	pushPrefix = []byte(`data: {"type":"push"`)
)

// readSSE counts the pushes a stream receives until it ends.
func (w *worker) readSSE(c *benchConn, r *bufio.Reader) {
	defer w.closed.Add(1)
	var long []byte
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, pushPrefix) {
			w.count(c, line)
		}
	}
}

// sseState is the worker's shared HTTP transport for SSE.
type sseState struct {
	sseOnce sync.Once
	sse     *http.Transport
}
