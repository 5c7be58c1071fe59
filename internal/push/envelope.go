package push

import (
	"bytes"
	"encoding/json"
	"errors"
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
	Kind   string   `json:"k,omitempty"`  // "" a push; kindRecall: msg is a recall notice
}

// kindRecall marks an envelope whose message is a recall frame.
const kindRecall = "recall"

var errBadEnvelope = errors.New("push: malformed engine payload")

func appendEnvelope(b []byte, e *envelope, msg []byte) []byte {
	head, _ := json.Marshal(e) // plain strings and bools: cannot fail
	b = append(b, head...)
	b = append(b, '\n')
	return append(b, msg...)
}

func splitEnvelope(payload []byte) (envelope, []byte, error) {
	var e envelope
	i := bytes.IndexByte(payload, '\n')
	if i < 0 {
		return e, nil, errBadEnvelope
	}
	if err := json.Unmarshal(payload[:i], &e); err != nil {
		return e, nil, errors.Join(errBadEnvelope, err)
	}
	return e, payload[i+1:], nil
}
