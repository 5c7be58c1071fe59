package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/heraldpush/herald/internal/jsonscan"
	"github.com/heraldpush/herald/internal/protocol"
)

// envelope says which local connections an engine payload is for. It
// travels as one JSON line followed by the encoded message object.
type envelope struct {
	App    string   `json:"a,omitempty"`
	Users  []string `json:"u,omitempty"`
	Conns  []string `json:"c,omitempty"`
	Rooms  []string `json:"r,omitempty"`
	Whole  bool     `json:"w,omitempty"`
	All    bool     `json:"x,omitempty"`
	ID     string   `json:"i"`
	Dedup  bool     `json:"d,omitempty"`  // published on several topics: deliver once per node
	Except string   `json:"e,omitempty"`  // the sending connection
	Skip   []string `json:"su,omitempty"` // users whose connections get this push another way
	Seq    uint64   `json:"s,omitempty"`  // the user's sequence of a stored message
	Pos    uint64   `json:"p,omitempty"`  // the room history position of a room message
	Kind   string   `json:"k,omitempty"`  // "" a push; else msg is a ready frame (kindRecall, kindPresence)
}

// Envelope kinds whose message is a ready frame, not a push: a recall
// notice, a presence room's join or leave.
const (
	kindRecall   = "recall"
	kindPresence = "presence"
)

var errBadEnvelope = errors.New("push: malformed engine payload")

// appendEnvelope appends e as the JSON that encoding/json would make of it
// (without reflection: this runs for every push), a newline and msg.
func appendEnvelope(b []byte, e *envelope, msg []byte) []byte {
	b = append(b, `{"i":`...)
	b = protocol.AppendString(b, e.ID)
	str := func(key, v string) {
		if v != "" {
			b = append(b, `,"`+key+`":`...)
			b = protocol.AppendString(b, v)
		}
	}
	list := func(key string, vs []string) {
		if len(vs) > 0 {
			b = append(b, `,"`+key+`":[`...)
			for i, v := range vs {
				if i > 0 {
					b = append(b, ',')
				}
				b = protocol.AppendString(b, v)
			}
			b = append(b, ']')
		}
	}
	flag := func(key string, v bool) {
		if v {
			b = append(b, `,"`+key+`":true`...)
		}
	}
	num := func(key string, v uint64) {
		if v != 0 {
			b = append(b, `,"`+key+`":`...)
			b = strconv.AppendUint(b, v, 10)
		}
	}
	str("a", e.App)
	list("u", e.Users)
	list("c", e.Conns)
	list("r", e.Rooms)
	flag("w", e.Whole)
	flag("x", e.All)
	flag("d", e.Dedup)
	str("e", e.Except)
	list("su", e.Skip)
	num("s", e.Seq)
	num("p", e.Pos)
	str("k", e.Kind)
	b = append(b, '}', '\n')
	return append(b, msg...)
}

func splitEnvelope(payload []byte) (envelope, []byte, error) {
	var e envelope
	i := bytes.IndexByte(payload, '\n')
	if i < 0 {
		return e, nil, errBadEnvelope
	}
	if !scanEnvelope(payload[:i], &e) {
		e = envelope{}
		if err := json.Unmarshal(payload[:i], &e); err != nil {
			return e, nil, errors.Join(errBadEnvelope, err)
		}
	}
	return e, payload[i+1:], nil
}

// scanEnvelope decodes an envelope as appendEnvelope writes it, without
// reflection; false: the line needs encoding/json.
func scanEnvelope(line []byte, e *envelope) bool {
	s := jsonscan.New(line)
	for {
		k, ok := s.Key()
		if !ok {
			break
		}
		switch string(k) {
		case "i":
			e.ID = s.String()
		case "a":
			e.App = s.String()
		case "u":
			e.Users = s.Strings()
		case "c":
			e.Conns = s.Strings()
		case "r":
			e.Rooms = s.Strings()
		case "w":
			e.Whole = s.Bool()
		case "x":
			e.All = s.Bool()
		case "d":
			e.Dedup = s.Bool()
		case "e":
			e.Except = s.String()
		case "su":
			e.Skip = s.Strings()
		case "s":
			e.Seq = s.Uint()
		case "p":
			e.Pos = s.Uint()
		case "k":
			e.Kind = s.String()
		default:
			s.Fail()
		}
	}
	return s.Done()
}
