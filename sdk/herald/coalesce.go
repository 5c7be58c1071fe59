package herald

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
)

// coalescing is the RoundTripper of the gRPC client: it gives a PushStream
// request the stream's own body (streamBody), which PushStream.Send fills
// directly, instead of connect's pipe. The HTTP/2 transport writes (and
// flushes) one frame per read of the body; through connect's pipe every
// push was two reads (its 5-byte prefix, then the message), so two frames
// and two writes on the client and four reads on the server. A streamBody
// hands the transport every push sent so far in one read: one frame per
// run of pushes.
type coalescing struct{ base http.RoundTripper }

// streamBodyKey carries a PushStream's body in its call's context, from
// Client.PushStream to RoundTrip.
type streamBodyKey struct{}

func (c coalescing) RoundTrip(r *http.Request) (*http.Response, error) {
	if b, ok := r.Context().Value(streamBodyKey{}).(*streamBody); ok &&
		strings.HasSuffix(r.URL.Path, heraldv1connect.HeraldServicePushStreamProcedure) {
		if r.Body != nil {
			_ = r.Body.Close() // connect's pipe: nothing is written to it
		}
		r = r.WithContext(r.Context()) // a copy: a RoundTripper leaves the request as it is
		r.Body = b
		return b.roundTrip(c.base, r)
	}
	return c.base.RoundTrip(r)
}

// roundTrip starts the stream's call with b as its body. The call's
// context (the caller's, with the client's timeout) ends the stream when
// it ends: the transport watches it only between reads of the body, so b
// is aborted (a waiting Read or send returns) and the response body closed
// (a transport waiting for flow control returns). A call that failed or
// was not answered as a gRPC stream ends b at once, so that Send fails
// instead of buffering pushes nobody will read.
func (b *streamBody) roundTrip(base http.RoundTripper, r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	stopAbort := context.AfterFunc(ctx, func() { b.abort(ctx.Err()) })
	resp, err := base.RoundTrip(r)
	if err != nil {
		stopAbort()
		b.abort(err)
		return nil, err
	}
	if resp.ProtoMajor < 2 || resp.StatusCode != http.StatusOK {
		b.abort(io.EOF)
	}
	body := resp.Body
	stopClose := context.AfterFunc(ctx, func() { _ = body.Close() })
	resp.Body = &streamResponse{ReadCloser: body, stop: func() { stopAbort(); stopClose() }}
	return resp, nil
}

// streamResponse is a stream's response body: closing it stops watching
// the call's context (a long-lived context would keep the stream's buffer).
type streamResponse struct {
	io.ReadCloser
	stop func()
}

func (r *streamResponse) Close() error {
	r.stop()
	return r.ReadCloser.Close()
}

// streamBodyMax bounds the bytes a streamBody holds; past it the sender
// waits, as it would for the transport.
const streamBodyMax = 256 << 10

// streamBody is the request body of a PushStream: each push, framed as
// gRPC frames a message (a flag byte and a 4-byte length), is appended to
// a buffer that Read empties at once.
type streamBody struct {
	mu     sync.Mutex
	cond   sync.Cond // Read waits for a push; send waits for room
	buf    []byte
	eof    bool  // closeWrite was called: Read ends with io.EOF once buf is empty
	closed bool  // the transport closed the body, or the stream ended: nothing more is read
	err    error // why the stream ended (abort), for the transport's Read
}

func newStreamBody() *streamBody {
	b := &streamBody{}
	b.cond.L = &b.mu
	return b
}

// send appends one message; io.EOF once the body is closed or ended.
func (b *streamBody) send(m proto.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) >= streamBodyMax && !b.closed && !b.eof {
		b.cond.Wait()
	}
	if b.closed || b.eof {
		return io.EOF
	}
	at := len(b.buf)
	buf, err := proto.MarshalOptions{}.MarshalAppend(append(b.buf, 0, 0, 0, 0, 0), m)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(buf[at+1:], uint32(len(buf)-at-5))
	b.buf = buf
	if at == 0 {
		b.cond.Broadcast() // Read waits only on an empty buffer
	}
	return nil
}

// abort ends the body now with err: a waiting send returns io.EOF, and the
// transport's Read fails with err (so it resets the stream).
func (b *streamBody) abort(err error) {
	b.mu.Lock()
	if !b.closed {
		b.closed, b.err = true, err
		b.buf = nil
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// closeWrite ends the body after what was sent.
func (b *streamBody) closeWrite() {
	b.mu.Lock()
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Read returns what is buffered, waiting for something if nothing is.
func (b *streamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 && !b.eof && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.ErrClosedPipe
	}
	if len(b.buf) == 0 {
		return 0, io.EOF
	}
	full := len(b.buf) >= streamBodyMax
	n := copy(p, b.buf)
	b.buf = b.buf[:copy(b.buf, b.buf[n:])]
	if full {
		b.cond.Broadcast() // the sender may wait for room
	}
	return n, nil
}

// Close is the transport's: the stream is over, the next send fails.
func (b *streamBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}
