package herald_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// within waits for a result that must come (a hang fails the test).
func within(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still waiting 20 s later", what)
		return nil
	}
}

// TestPushStreamEndsWithItsContext: canceling a stream's context ends it
// for a Recv already waiting, and every Send after that fails (nothing is
// buffered for a stream that is over).
func TestPushStreamEndsWithItsContext(t *testing.T) {
	n := startNode(t, nil)
	n.via = transports[1]
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := n.client(apiKey).PushStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: 1}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || r.Err != nil {
		t.Fatal(r, err)
	}
	recv := make(chan error, 1)
	go func() { _, err := s.Recv(); recv <- err }()
	cancel()
	if err := within(t, "Recv after cancel", recv); err == nil {
		t.Fatal("Recv answered after the stream's context was canceled")
	}
	if err := s.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: 2}); err == nil {
		t.Fatal("Send accepted a push after the stream ended")
	}
}

// TestPushStreamFailedSendFails: once Recv has reported the stream's error
// (a wrong key), Send fails at once instead of buffering pushes.
func TestPushStreamFailedSendFails(t *testing.T) {
	n := startNode(t, nil)
	n.via = transports[1]
	s, err := n.client("wrong-key-0123456789").PushStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: 1})
	if _, err := s.Recv(); err == nil {
		t.Fatal("a stream with a wrong key answered")
	}
	if err := s.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: 2}); err == nil {
		t.Fatal("Send accepted a push after Recv reported the stream's error")
	}
}

// TestPushStreamBlockedSendEndsWithItsContext: a Send waiting for room
// (a server that answers the stream's headers and never reads its body)
// returns when the stream's context is canceled.
func TestPushStreamBlockedSendEndsWithItsContext(t *testing.T) {
	release := make(chan struct{})
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })
	c, err := herald.NewClient("http://"+ln.Addr().String(), "key", herald.WithGRPC())
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.PushStream(sctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		data := strings.Repeat("x", 1000)
		for i := 0; ; i++ {
			if i == 2000 { // ~2 MB: past the body's buffer and HTTP/2's window
				sent <- i
			}
			if err := s.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: data}); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-sent:
		t.Fatal("2,000 pushes of 1 KB went into a stream nobody reads: Send never waits")
	case err := <-done:
		t.Fatalf("Send failed before the cancel: %v", err)
	case <-time.After(2 * time.Second): // Send is waiting for room (polling the state, no timing asserted)
	}
	cancel()
	if err := within(t, "a blocked Send after cancel", done); err == nil {
		t.Fatal("a blocked Send returned no error after its stream's context was canceled")
	}
}
