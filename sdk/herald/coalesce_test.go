package herald

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
)

// TestStreamBodyPassesEverything: what is sent comes out of the body as
// gRPC-framed messages, whole and in order, then io.EOF; a closed body
// fails the next send and reads nothing more.
func TestStreamBodyPassesEverything(t *testing.T) {
	b := newStreamBody()
	const total = 5000 // over streamBodyMax in all: the sender waits for the reader
	go func() {
		for i := range total {
			m := &heraldv1.PushStreamRequest{Push: &heraldv1.PushRequest{Id: "p", Data: string(make([]byte, i%200))}}
			if err := b.send(m); err != nil {
				t.Error(err)
			}
		}
		b.closeWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if len(got) < 5 || got[0] != 0 {
			t.Fatalf("message %d: no frame header in %d bytes", i, len(got))
		}
		n := int(binary.BigEndian.Uint32(got[1:5]))
		var m heraldv1.PushStreamRequest
		if err := proto.Unmarshal(got[5:5+n], &m); err != nil || len(m.GetPush().GetData()) != i%200 {
			t.Fatalf("message %d: %d bytes of data, %v", i, len(m.GetPush().GetData()), err)
		}
		got = got[5+n:]
	}
	if len(got) != 0 {
		t.Fatalf("%d bytes after the last message", len(got))
	}
	if err := b.send(&heraldv1.PushStreamRequest{}); !errors.Is(err, io.EOF) {
		t.Fatalf("send after closeWrite: %v", err)
	}

	b = newStreamBody()
	if err := b.send(&heraldv1.PushStreamRequest{}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.send(&heraldv1.PushStreamRequest{}); !errors.Is(err, io.EOF) {
		t.Fatalf("send after Close: %v", err)
	}
	if n, err := b.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read after Close: %d, %v", n, err)
	}
}
