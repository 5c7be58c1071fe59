package enginetest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

func (s *inboxSuite) testPayloads(t *testing.T) {
	b := s.inbox(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, InboxBigPayload)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	cases := []struct {
		id      string
		payload []byte
	}{
		{"", nil},
		{"empty", []byte{}},
		{"nul", []byte{0}},
		{"bytes\x00\xff", all},
		{"json", []byte(`{"a":[1,2,"\u00fc"],"b":null}` + "\r\n")},
		{"ü 日本語 🙂", []byte("NATS/1.0\r\nStatus: 404\r\n\r\n")},
		{"big", big},
	}
	for _, c := range cases {
		b.append("app", []string{"bin", "bin2"}, c.id, c.payload, longTTL)
	}
	for _, user := range []string{"bin", "bin2"} {
		p := b.read("app", user, 0, 0)
		expectPage(t, "payloads of "+user, p, seqRange(1, uint64(len(cases))), uint64(len(cases)), true)
		for i, c := range cases {
			if m := p.Msgs[i]; m.ID != c.id || !bytes.Equal(m.Payload, c.payload) {
				t.Fatalf("%s message %d: id %q, %d payload bytes; want id %q, %d bytes", user, i+1, m.ID, len(m.Payload), c.id, len(c.payload))
			}
		}
	}
}

// inboxNames are app and user names that are awkward for a backend's key
// syntax.
var inboxNames = []string{"", "a", "A", ".", "a.b", "*", ">", "~", "~YQ", "a b", "\x00", "ü", "hrl.inbox.a.b"}

func (s *inboxSuite) testInboxNames(t *testing.T) {
	b := s.inbox(t)
	for _, app := range inboxNames {
		for _, user := range inboxNames {
			b.append(app, []string{user}, "", []byte(app+"|"+user), longTTL)
		}
	}
	for _, app := range inboxNames {
		for _, user := range inboxNames {
			p := b.read(app, user, 0, 0)
			if len(p.Msgs) != 1 || string(p.Msgs[0].Payload) != app+"|"+user || p.Latest != 1 {
				t.Fatalf("inbox (%q, %q): %d messages, first %q, Latest %d", app, user, len(p.Msgs), firstPayload(p), p.Latest)
			}
		}
	}
}

func firstPayload(p engine.Page) string {
	if len(p.Msgs) == 0 {
		return ""
	}
	return string(p.Msgs[0].Payload)
}

func (s *inboxSuite) testInvalid(t *testing.T) {
	b := s.inbox(t)
	ctx, cancel := callCtx(t)
	defer cancel()
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := b.ib.Append(ctx, "app", []string{"u"}, "x", nil, ttl); !errors.Is(err, engine.ErrInvalidArgument) {
			t.Fatalf("Append with ttl %v: %v, want engine.ErrInvalidArgument", ttl, err)
		}
	}
	if latest, _ := b.state("app", "u"); latest != 0 {
		t.Fatalf("a refused Append assigned seq %d", latest)
	}
	seqs, err := b.ib.Append(ctx, "app", nil, "x", nil, longTTL)
	if err != nil || len(seqs) != 0 {
		t.Fatalf("Append to no users = %v, %v", seqs, err)
	}
}
