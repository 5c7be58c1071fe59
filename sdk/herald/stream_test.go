package herald_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/heraldpush/herald/sdk/herald"
)

// TestPushStream sends a stream of pushes to a real node: every one is
// answered in order with its id or its error (a bad one fails alone and the
// stream goes on), a repeated id gets the first answer and is stored once,
// and the stored ones reach the user in order with their seqs. Over HTTP
// (no gRPC) the stream is refused plainly, and one with a wrong key is
// answered with unauthorized.
func TestPushStream(t *testing.T) {
	n := startNode(t, nil)
	n.via = transports[1] // grpc
	c := n.client(apiKey)
	s, err := c.PushStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	const total = 300
	want := make([]string, 0, total)
	go func() {
		for i := range total {
			p := herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: i, Offline: true, ID: fmt.Sprintf("s-%d", i)}
			switch i {
			case 7:
				p.To = herald.Target{} // no target: refused alone
			case 8:
				p.ID = "s-6" // a repeat: answered as the first, stored once
			}
			if err := s.Send(p); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
		_ = s.Close()
	}()
	for i := 0; ; i++ {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			if i != total {
				t.Fatalf("the stream ended after %d answers, want %d", i, total)
			}
			break
		}
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if r.Index != uint64(i) {
			t.Fatalf("answer %d has index %d", i, r.Index)
		}
		switch i {
		case 7:
			if r.Err == nil || r.Err.Code != herald.CodeInvalidTarget {
				t.Fatalf("push 7 (no target): %+v, want invalid_target", r)
			}
			continue
		case 8:
			if r.Err != nil || r.ID != "s-6" {
				t.Fatalf("push 8 (repeats s-6): %+v", r)
			}
			continue
		}
		if r.Err != nil || r.ID != fmt.Sprintf("s-%d", i) {
			t.Fatalf("push %d: %+v", i, r)
		}
		want = append(want, r.ID)
	}
	conn, _ := n.dial("sam")
	for i, id := range want {
		m := next[*herald.Message](t, conn)
		if m.ID != id || m.Seq != uint64(i+1) {
			t.Fatalf("stored message %d: %s seq %d, want %s seq %d", i, m.ID, m.Seq, id, i+1)
		}
	}

	// A refused key: the stream is answered with the error, which Recv
	// returns; Send does not block on the dead stream.
	bad, err := n.client("wrong-key").PushStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: 1})
	if _, err := bad.Recv(); herald.ErrorCode(err) != herald.CodeUnauthorized {
		t.Fatalf("a stream with a wrong key: %v", err)
	}
	for i := 0; ; i++ { // the body fills up unless the transport closed it
		if err := bad.Send(herald.PushRequest{To: herald.Target{Users: []string{"sam"}}, Data: i}); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("send on a refused stream: %v", err)
			}
			break
		}
	}

	n.via = transports[0] // http
	if _, err := n.client(apiKey).PushStream(ctx(t)); !errors.Is(err, herald.ErrStreamNeedsGRPC) {
		t.Fatalf("PushStream over HTTP: %v", err)
	}
}

// TestPushStreamKeepsOrder: a client sends a whole stream before reading
// a single answer (the server works ahead of it), live and offline pushes
// mixed, to one connected user: every push is answered, and the user gets
// them all in the order they were sent, the stored ones with rising seqs.
func TestPushStreamKeepsOrder(t *testing.T) {
	n := startNode(t, nil)
	n.via = transports[1] // grpc
	conn, _ := n.dial("kim")
	next[*herald.Resumed](t, conn)
	s, err := n.client(apiKey).PushStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	const total = 1500
	for i := range total {
		p := herald.PushRequest{To: herald.Target{Users: []string{"kim"}}, Data: i, Offline: i%3 == 0}
		if err := s.Send(p); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			if i != total {
				t.Fatalf("%d answers, want %d", i, total)
			}
			break
		}
		if err != nil || r.Err != nil || r.Index != uint64(i) || r.ID == "" {
			t.Fatalf("answer %d: %+v %v", i, r, err)
		}
	}
	var seq uint64
	for i := range total {
		m := next[*herald.Message](t, conn)
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d carries %s", i, m.Data)
		}
		if stored := i%3 == 0; stored != (m.Seq > 0) || (stored && m.Seq != seq+1) {
			t.Fatalf("message %d: seq %d after %d", i, m.Seq, seq)
		}
		seq = max(seq, m.Seq)
	}
}

// BenchmarkPush compares single gRPC pushes (one round trip each, 16 at
// once) with one stream (no round trip per push), to a user of a real
// node, live pushes of 100 bytes.
func BenchmarkPush(b *testing.B) {
	n := startNode(b, nil)
	n.via = transports[1]
	c := n.client(apiKey)
	data := string(make([]byte, 100))
	p := herald.PushRequest{To: herald.Target{Users: []string{"bench"}}, Data: data}
	b.Run("unary/concurrency=16", func(b *testing.B) {
		b.SetParallelism(8) // 2 cores × 8
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Push(b.Context(), p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("stream", func(b *testing.B) {
		s, err := c.PushStream(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range b.N {
				if err := s.Send(p); err != nil {
					b.Error(err)
					return
				}
			}
			_ = s.Close()
		}()
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil || r.Err != nil {
				b.Fatal(err, r.Err)
			}
		}
	})
}
