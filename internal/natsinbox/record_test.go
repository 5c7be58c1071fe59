package natsinbox

import (
	"reflect"
	"testing"
	"time"
)

// FuzzRecord checks the stored inbox record codec both ways: a record
// built from the fuzzer's fields parses back to itself (and no strict
// prefix of its encoding parses, but for a message's payload), and any
// bytes parseRecord accepts encode again to a record that parses the same.
func FuzzRecord(f *testing.F) {
	f.Add(byte(recMsg), uint64(1), int64(5), int64(-7), "m_1", []byte("{}"), uint8(0), []byte{recVersion, recAck, 1})
	f.Add(byte(recBatch), uint64(9), int64(1), int64(1<<62), "ü\x00", []byte("\r\n"), uint8(3), []byte{recVersion, recGone, 3, 84})
	f.Add(byte(recGone), uint64(1<<64-1), int64(0), int64(42), "", []byte{}, uint8(0), []byte{recVersion, recBatch, 9, 1, 5, 2, 4, 1, 'a', 1, 'x'})
	f.Add(byte(recHead), uint64(4), int64(0), int64(0), "", []byte(nil), uint8(1), []byte{recVersion, recMsg, 1, 10, 14, 3, 'm', '_', '1', '{', '}'})
	f.Fuzz(func(t *testing.T, kind byte, seq uint64, created, expires int64, id string, payload []byte, n uint8, raw []byte) {
		r := record{kind: kind, seq: seq}
		switch kind {
		case recMsg:
			r.created, r.expires, r.id, r.payload = created, expires, id, payload
		case recGone:
			r.expires = expires
		case recHead, recAck:
		case recBatch:
			// n messages with increasing seqs, the last one at most seq.
			count := min(int(n%8), int(min(seq, 8)))
			for i := range count {
				r.msgs = append(r.msgs, record{kind: recMsg, seq: seq - uint64(count-1-i), created: created + int64(i),
					expires: expires, id: id[:min(len(id), i)], payload: payload[:min(len(payload), i*3)]})
			}
		default:
			if _, err := parseRecord(appendRecord(nil, &r)); err == nil {
				t.Fatalf("record of kind %q parsed", kind)
			}
			return
		}
		b := appendRecord(nil, &r)
		got, err := parseRecord(b)
		if err != nil {
			t.Fatalf("%+v: %v (encoded %x)", r, err, b)
		}
		if !sameRecord(got, r) {
			t.Fatalf("round trip of %+v = %+v", r, got)
		}
		keep := len(b)
		if kind == recMsg {
			keep -= len(payload) // a shorter payload is still a record
		}
		for i := 0; i < keep; i++ {
			if _, err := parseRecord(b[:i]); err == nil {
				t.Fatalf("%+v cut to %d of %d bytes parsed", r, i, len(b))
			}
		}

		r1, err := parseRecord(raw)
		if err != nil {
			return
		}
		r2, err := parseRecord(appendRecord(nil, &r1))
		if err != nil || !sameRecord(r1, r2) {
			t.Fatalf("re-encoding %x: %+v, %v; want %+v", raw, r2, err, r1)
		}
	})
}

// sameRecord compares records, nil and empty payloads alike.
func sameRecord(a, b record) bool {
	if len(a.msgs) != len(b.msgs) || string(a.payload) != string(b.payload) {
		return false
	}
	for i := range a.msgs {
		if !sameRecord(a.msgs[i], b.msgs[i]) {
			return false
		}
	}
	a.payload, b.payload, a.msgs, b.msgs = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []record{
		{kind: recMsg, seq: 1, created: 5, expires: -7, id: "", payload: []byte{}},
		{kind: recMsg, seq: 1 << 62, created: time.Now().UnixNano(), expires: 1 << 62, id: "ü\x00", payload: []byte("x\r\n")},
		{kind: recHead, seq: 9},
		{kind: recAck, seq: 1<<64 - 1},
		{kind: recGone, seq: 3, expires: 42},
		{kind: recBatch, seq: 9, msgs: []record{
			{kind: recMsg, seq: 5, created: 1, expires: 2, id: "a", payload: []byte("x")},
			{kind: recMsg, seq: 7, created: -3, expires: 1 << 62, id: "", payload: []byte{}},
			{kind: recMsg, seq: 9, created: 4, expires: 5, id: "ü\x00", payload: []byte("\r\n")},
		}},
		{kind: recBatch, seq: 4},
	} {
		b := appendRecord(nil, &r)
		got, err := parseRecord(b)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got.kind != r.kind || got.seq != r.seq || got.created != r.created || got.expires != r.expires ||
			got.id != r.id || string(got.payload) != string(r.payload) || len(got.msgs) != len(r.msgs) {
			t.Fatalf("round trip of %+v = %+v", r, got)
		}
		for i, m := range r.msgs {
			g := got.msgs[i]
			if g.kind != recMsg || g.seq != m.seq || g.created != m.created || g.expires != m.expires ||
				g.id != m.id || string(g.payload) != string(m.payload) {
				t.Fatalf("round trip of %+v: message %d = %+v", r, i, g)
			}
		}
		for i := range b {
			if r.kind == recMsg && i >= len(b)-len(r.payload) {
				break // a shorter payload is still a record
			}
			if _, err := parseRecord(b[:i]); err == nil {
				t.Fatalf("%+v truncated to %d bytes parsed", r, i)
			}
		}
	}
	if _, err := parseRecord([]byte{2, recAck, 1}); err == nil {
		t.Fatal("unknown version parsed")
	}
	if _, err := parseRecord([]byte{recVersion, 'q', 1}); err == nil {
		t.Fatal("unknown kind parsed")
	}
	// A batch's seqs must increase and not pass its latest.
	for _, msgs := range [][]record{
		{{kind: recMsg, seq: 3}, {kind: recMsg, seq: 3}},
		{{kind: recMsg, seq: 4}, {kind: recMsg, seq: 2}},
		{{kind: recMsg, seq: 11}},
	} {
		b := appendRecord(nil, &record{kind: recBatch, seq: 10, msgs: msgs})
		if _, err := parseRecord(b); err == nil {
			t.Fatalf("batch of seqs %v parsed", msgs)
		}
	}
	// Heads: a single latest message is a plain message record.
	m := record{kind: recMsg, seq: 3}
	if h := headRecord(3, []record{m}); h.kind != recMsg || h.seq != 3 {
		t.Fatalf("headRecord of the latest alone = %+v", h)
	}
	if h := headRecord(4, []record{m}); h.kind != recBatch || len(h.msgs) != 1 {
		t.Fatalf("headRecord of an older one alone = %+v", h)
	}
	if h := headRecord(4, nil); h.kind != recHead || h.seq != 4 {
		t.Fatalf("headRecord of none = %+v", h)
	}
}
