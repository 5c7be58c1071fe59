package herald

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestCoalescerPassesEverything: what is written to the body comes out of
// the coalescer whole and in order, then io.EOF; a closed coalescer fails
// the writer's next write and reads nothing more.
func TestCoalescerPassesEverything(t *testing.T) {
	pr, pw := io.Pipe()
	c := newCoalescer(pr)
	var want bytes.Buffer
	go func() {
		for i := range 2000 {
			msg := fmt.Appendf(nil, "push %d;", i)
			want.Write(msg)
			if _, err := pw.Write(msg); err != nil {
				t.Error(err)
			}
		}
		pw.Close()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, want.Len())
	}

	pr, pw = io.Pipe()
	c = newCoalescer(pr)
	if _, err := pw.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := pw.Write([]byte("two")); err == nil {
		t.Fatal("a write after Close went through")
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read after Close: %d, %v", n, err)
	}
}
