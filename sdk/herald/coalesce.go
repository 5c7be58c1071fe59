package herald

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
)

// coalescing is the RoundTripper of the gRPC client: it gives a PushStream
// request a body that hands the HTTP/2 transport everything sent so far in
// one read. The transport writes (and flushes) one frame per read, so
// pushes sent while the previous frame was being written go out together
// in the next one, instead of a frame and a write per push — which also
// spares the server a read per push.
type coalescing struct{ base http.RoundTripper }

func (c coalescing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody && strings.HasSuffix(r.URL.Path, heraldv1connect.HeraldServicePushStreamProcedure) {
		r = r.WithContext(r.Context()) // a copy: a RoundTripper leaves the request as it is
		r.Body = newCoalescer(r.Body)
	}
	return c.base.RoundTrip(r)
}

// coalescerMax bounds the bytes a coalescer holds; past it the sender
// waits, as it would for the transport.
const coalescerMax = 256 << 10

// coalescer reads src on a goroutine of its own into a buffer that Read
// empties at once.
type coalescer struct {
	src  io.ReadCloser
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	err  error // src's error (io.EOF at its end), reported after buf
	done bool  // Close was called
}

func newCoalescer(src io.ReadCloser) *coalescer {
	c := &coalescer{src: src}
	c.cond.L = &c.mu
	go c.fill()
	return c
}

func (c *coalescer) fill() {
	chunk := make([]byte, 32<<10)
	for {
		n, err := c.src.Read(chunk)
		c.mu.Lock()
		for len(c.buf) >= coalescerMax && !c.done {
			c.cond.Wait()
		}
		c.buf = append(c.buf, chunk[:n]...)
		if err != nil {
			c.err = err
		}
		c.cond.Broadcast()
		stop := c.err != nil || c.done
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// Read returns what is buffered, waiting for something if nothing is.
func (c *coalescer) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) == 0 && c.err == nil && !c.done {
		c.cond.Wait()
	}
	if c.done {
		return 0, io.ErrClosedPipe
	}
	n := copy(p, c.buf)
	c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	c.cond.Broadcast()
	if len(c.buf) == 0 && c.err != nil {
		return n, c.err
	}
	return n, nil
}

// Close ends the body: the sender's next push fails, and the goroutine
// ends once src returns.
func (c *coalescer) Close() error {
	c.mu.Lock()
	c.done = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.src.Close()
}
