package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/protocol"
)

func pushOf(data string) *protocol.Outgoing {
	return protocol.NewPush(protocol.AppendMessage(nil, &protocol.Message{ID: "m_" + data, Data: []byte(`"` + data + `"`), TS: 1}))
}

// frames decodes written bytes back into text frames.
func frames(t *testing.T, vecs [][]byte) []string {
	t.Helper()
	r := bytes.NewReader(bytes.Join(vecs, nil))
	var out []string
	for r.Len() > 0 {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(f.Payload))
	}
	return out
}

func TestAppendBatchMergesConsecutivePushes(t *testing.T) {
	var hdrs []byte
	batch := []*protocol.Outgoing{pushOf("a"), pushOf("b"), protocol.NewText(protocol.Joined("r")), pushOf("c"), pushOf("d"), pushOf("e")}
	got := frames(t, appendBatch(nil, batch, &hdrs))
	if len(got) != 3 {
		t.Fatalf("%d frames: %q", len(got), got)
	}
	want := [][]string{{"a", "b"}, nil, {"c", "d", "e"}}
	for i, f := range got {
		if want[i] == nil {
			if f != string(protocol.Joined("r")) {
				t.Fatalf("frame %d %s", i, f)
			}
			continue
		}
		var p struct {
			Type string
			Msgs []struct{ Data string }
		}
		if err := json.Unmarshal([]byte(f), &p); err != nil || p.Type != "push" || len(p.Msgs) != len(want[i]) {
			t.Fatalf("frame %d %s: %v", i, f, err)
		}
		for k, m := range p.Msgs {
			if m.Data != want[i][k] {
				t.Fatalf("frame %d message %d is %q, want %q", i, k, m.Data, want[i][k])
			}
		}
	}
	// A lone push is written as its own prebuilt frame, untouched.
	if v := appendBatch(nil, batch[:1], &hdrs); len(v) != 1 || &v[0][0] != &batch[0].Frame[0] {
		t.Fatal("a single push was not written from its shared frame")
	}
}

func TestAppendBatchRespectsMergeLimits(t *testing.T) {
	batch := make([]*protocol.Outgoing, maxMergeMsgs+10)
	for i := range batch {
		batch[i] = pushOf(fmt.Sprint(i))
	}
	got := frames(t, appendBatch(nil, batch, nil))
	if len(got) != 2 || strings.Count(got[0], `"id"`) != maxMergeMsgs {
		t.Fatalf("%d frames, first holds %d messages", len(got), strings.Count(got[0], `"id"`))
	}
	big := strings.Repeat("x", maxMergeBytes/3)
	got = frames(t, appendBatch(nil, []*protocol.Outgoing{pushOf(big), pushOf(big), pushOf(big), pushOf(big)}, nil))
	for _, f := range got {
		if len(f) > maxMergeBytes+64 {
			t.Fatalf("merged frame of %d bytes", len(f))
		}
	}
	if len(got) < 2 {
		t.Fatal("frames over the byte limit were merged")
	}
}

func TestAdvance(t *testing.T) {
	vecs := [][]byte{[]byte("abc"), []byte("de"), []byte("f")}
	for n, want := range map[int]string{0: "abcdef", 2: "cdef", 3: "def", 4: "ef", 6: ""} {
		v := advance(append([][]byte(nil), vecs...), n)
		if got := string(bytes.Join(v, nil)); got != want {
			t.Errorf("advance %d: %q, want %q", n, got, want)
		}
	}
}

// BenchmarkAppendBatch measures building the write vectors of one drain.
func BenchmarkAppendBatch(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("frames=%d", n), func(b *testing.B) {
			batch := make([]*protocol.Outgoing, n)
			for i := range batch {
				batch[i] = pushOf(strings.Repeat("x", 100))
			}
			var w writerScratch
			b.ReportAllocs()
			for b.Loop() {
				w.hdrs = w.hdrs[:0]
				w.vecs = w.appendBatch(w.vecs[:0], batch)
			}
		})
	}
}
