package enginetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// ControlPair returns two started controls of one backend: the first is
// node "a", the second node "b". It must arrange, through t.Cleanup, for
// them to be stopped when t ends.
type ControlPair func(t *testing.T) (a, b engine.Control)

// RunControl runs the conformance suite of engine.Control, with a fresh
// pair per subtest. Besides the documented contract it requires that
// answers and requests arrive byte for byte (empty and 512 KiB ones too),
// that a node may ask itself, and that concurrent asks each get their own
// answer.
func RunControl(t *testing.T, pair ControlPair) {
	t.Helper()
	t.Run("Ask", func(t *testing.T) {
		a, b := pair(t)
		serve(t, b, func(req []byte) []byte { return append([]byte("b:"), req...) })
		for _, req := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0, 1, 2, 255}, 128<<10)} {
			got := ask(t, a, "b", req)
			if want := append([]byte("b:"), req...); !bytes.Equal(got, want) {
				t.Fatalf("answer to a %d-byte request: %d bytes, want %d", len(req), len(got), len(want))
			}
		}
	})
	t.Run("AskSelf", func(t *testing.T) {
		a, _ := pair(t)
		serve(t, a, func([]byte) []byte { return []byte("a") })
		if got := ask(t, a, "a", []byte("?")); string(got) != "a" {
			t.Fatalf("a asking itself: %q", got)
		}
	})
	t.Run("NoNode", func(t *testing.T) {
		a, b := pair(t)
		serve(t, b, func([]byte) []byte { return []byte("b") })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// "a" never served; "c" does not exist.
		for _, node := range []string{"a", "c"} {
			if _, err := a.Ask(ctx, node, []byte("?")); !errors.Is(err, engine.ErrNoNode) {
				t.Fatalf("Ask(%q), which no node serves: %v, want ErrNoNode", node, err)
			}
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		a, b := pair(t)
		release := make(chan struct{})
		serve(t, b, func([]byte) []byte { <-release; return nil })
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := a.Ask(ctx, "b", []byte("?"))
		if err == nil || errors.Is(err, engine.ErrNoNode) || ctx.Err() == nil {
			t.Fatalf("Ask of a node that does not answer: %v (ctx %v), want the deadline's error", err, ctx.Err())
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		a, b := pair(t)
		serve(t, b, func(req []byte) []byte { return append([]byte("re:"), req...) })
		ask(t, a, "b", nil) // b is known
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			wg.Go(func() {
				req := fmt.Sprint(i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				got, err := a.Ask(ctx, "b", []byte(req))
				if err == nil && string(got) != "re:"+req {
					err = fmt.Errorf("request %q answered %q", req, got)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func serve(t *testing.T, c engine.Control, h engine.ControlHandler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Serve(ctx, h); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// ask asks node until it answers: a fresh Serve may take a moment to be
// known across the backend, and until then the node is absent.
func ask(t *testing.T, c engine.Control, node string, req []byte) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := c.Ask(ctx, node, req)
		cancel()
		if err == nil {
			return got
		}
		if !errors.Is(err, engine.ErrNoNode) || time.Now().After(deadline) {
			t.Fatalf("Ask(%q): %v", node, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
