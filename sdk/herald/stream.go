package herald

import (
	"context"
	"errors"
	"sync"

	"connectrpc.com/connect"
	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
)

// ErrStreamNeedsGRPC is returned by PushStream on a Client made without
// WithGRPC: the stream is a gRPC call (HTTP/2).
var ErrStreamNeedsGRPC = errors.New("herald: PushStream needs a client made WithGRPC")

// PushStream is an open stream of pushes (Client.PushStream): Send pushes
// without waiting for an answer, Recv returns the answers in the order of
// the pushes. Send and Recv may run on two goroutines; neither may be
// called from two at once. Close ends the stream; the answers still due
// can be read with Recv until it returns io.EOF.
type PushStream struct {
	c      *Client
	s      *connect.BidiStreamForClient[heraldv1.PushStreamRequest, heraldv1.PushStreamResponse]
	body   *streamBody // the request body: Send writes to it, not through connect
	closed sync.Once
}

// StreamResult answers one push of a stream: its message id, or why it
// failed (an *Error with Status 0, as a batch item's).
type StreamResult struct {
	Index uint64 // the push's place in the stream, from 0
	ID    string
	Err   *Error
}

// PushStream opens a stream of pushes: each handled by the server exactly
// as Push (validation, idempotency by id, offline storage) and answered in
// order, without a round trip per push. ctx bounds the stream's life (the
// client's request timeout does not: a stream may stay open for hours);
// canceling it ends the stream, and a waiting Send or Recv returns. It is
// not retried: after an error of the stream itself, push what was not
// answered again (with ids, a repeat is answered as the first push was).
func (c *Client) PushStream(ctx context.Context) (*PushStream, error) {
	t, ok := c.t.(*grpcTransport)
	if !ok {
		return nil, ErrStreamNeedsGRPC
	}
	body := newStreamBody()
	s := t.stream.PushStream(context.WithValue(ctx, streamBodyKey{}, body))
	if t.key != "" {
		s.RequestHeader().Set("Authorization", "Bearer "+t.key)
	}
	if err := s.Send(nil); err != nil { // starts the call, whose body is body (coalescing)
		return nil, grpcError(err)
	}
	return &PushStream{c: c, s: s, body: body}, nil
}

// Send pushes p on the stream: it waits only while a large backlog of
// pushes is still unsent. After the stream ended it returns io.EOF (Recv
// tells why).
func (p *PushStream) Send(r PushRequest) error {
	b, err := p.c.pushBody(&r)
	if err != nil {
		return err
	}
	return p.body.send(&heraldv1.PushStreamRequest{Push: pushProto(b)})
}

// Recv returns the next answer; io.EOF once the stream is closed and every
// answer was read.
func (p *PushStream) Recv() (StreamResult, error) {
	m, err := p.s.Receive()
	if err != nil {
		p.body.abort(err)       // Send fails from now on
		_ = p.s.CloseResponse() // the stream is over: free it
		return StreamResult{}, grpcError(err)
	}
	out := StreamResult{Index: m.GetIndex(), ID: m.GetResult().GetId()}
	if e := m.GetResult().GetError(); e != nil {
		out.Err = &Error{Code: e.GetCode(), Message: e.GetMessage()}
	}
	return out, nil
}

// Close says no more pushes will come (the answers still due stay
// readable with Recv).
func (p *PushStream) Close() error {
	var err error
	p.closed.Do(func() {
		p.body.closeWrite()
		err = p.s.CloseRequest()
	})
	return err
}
