package push

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestEnvelopeEveryField: the hand-written encoding decodes to the same
// envelope as encoding/json's, for every field, empty or not.
func TestEnvelopeEveryField(t *testing.T) {
	for _, e := range []envelope{
		{ID: "m_1"},
		{App: "shop", Users: []string{"alice", `q"u\o`, "ü→"}, Conns: []string{"c_n1_2"}, Rooms: []string{"r1", "r 2"},
			Whole: true, All: true, ID: "x", Dedup: true, Except: "c_n1_3", Skip: []string{"bob"}, Seq: 1<<64 - 1, Pos: 7, Kind: kindRecall},
		{App: "a", Users: []string{""}, ID: "", Seq: 1},
	} {
		b := appendEnvelope(nil, &e, []byte(`{"m":1}`))
		got, msg, err := splitEnvelope(b)
		if err != nil || string(msg) != `{"m":1}` || !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip of %+v: %+v, %q, %v (encoded %s)", e, got, msg, err, b)
		}
		var viaJSON envelope
		head, _ := json.Marshal(&e)
		if err := json.Unmarshal(head, &viaJSON); err != nil || !reflect.DeepEqual(viaJSON, got) {
			t.Fatalf("encoding/json reads %+v differently: %+v", e, viaJSON)
		}
	}
}
