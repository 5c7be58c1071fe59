package natsinbox

import (
	"encoding/binary"
	"errors"
)

// This file holds the record encoding: the payload of every message the
// Inbox stores (a message, a head, an ack, a tombstone).

// Record kinds. A record is the payload of every message the Inbox stores.
const (
	recMsg   = 'm' // a user message: in .q.m, or in the head
	recHead  = 'h' // a head that carries no message (its message was removed)
	recBatch = 'b' // a head that carries several messages, or not its latest
	recAck   = 'a' // an acked position
	recGone  = 'x' // a tombstone: the message with this seq was removed
)

// recVersion is the first byte of every record.
const recVersion = 1

// record is a decoded record. Payload aliases the buffer it was parsed from.
type record struct {
	kind    byte
	seq     uint64
	created int64 // unix nanoseconds (recMsg)
	expires int64 // unix nanoseconds (recMsg, recGone)
	id      string
	payload []byte
	msgs    []record // recBatch: the messages (each a recMsg), seq order
}

// appendRecord appends r's encoding to b:
//
//	version(1) kind(1) uvarint(seq) [varint(created) varint(expires)
//	uvarint(len(id)) id payload]
//
// where the bracketed part is present for recMsg, and only varint(expires)
// for recGone. A recBatch (seq: the head's latest) continues with
// uvarint(len(msgs)) and for each message uvarint(seq) varint(created)
// varint(expires) uvarint(len(id)) id uvarint(len(payload)) payload.
func appendRecord(b []byte, r *record) []byte {
	b = append(b, recVersion, r.kind)
	b = binary.AppendUvarint(b, r.seq)
	switch r.kind {
	case recMsg:
		b = binary.AppendVarint(b, r.created)
		b = binary.AppendVarint(b, r.expires)
		b = binary.AppendUvarint(b, uint64(len(r.id)))
		b = append(b, r.id...)
		b = append(b, r.payload...)
	case recGone:
		b = binary.AppendVarint(b, r.expires)
	case recBatch:
		b = binary.AppendUvarint(b, uint64(len(r.msgs)))
		for i := range r.msgs {
			m := &r.msgs[i]
			b = binary.AppendUvarint(b, m.seq)
			b = binary.AppendVarint(b, m.created)
			b = binary.AppendVarint(b, m.expires)
			b = binary.AppendUvarint(b, uint64(len(m.id)))
			b = append(b, m.id...)
			b = binary.AppendUvarint(b, uint64(len(m.payload)))
			b = append(b, m.payload...)
		}
	}
	return b
}

// recordMax bounds the encoded size of a message with an id and payload of
// these lengths, alone (recMsg) or within a recBatch.
func recordMax(id, payload int) int { return 2 + 5*binary.MaxVarintLen64 + id + payload }

// headRecord is the head carrying msgs (seq order) with latest seq latest:
// a recMsg when that is the one message with seq latest, else a recHead
// or recBatch.
func headRecord(latest uint64, msgs []record) record {
	switch {
	case len(msgs) == 1 && msgs[0].seq == latest:
		return msgs[0]
	case len(msgs) == 0:
		return record{kind: recHead, seq: latest}
	default:
		return record{kind: recBatch, seq: latest, msgs: msgs}
	}
}

// carried returns the messages a head carries, in seq order.
func (r *record) carried() []record {
	switch r.kind {
	case recMsg:
		return []record{*r}
	case recBatch:
		return r.msgs
	}
	return nil
}

// errBadRecord is returned for a stored payload that is not a record.
var errBadRecord = errors.New("natsinbox: malformed inbox record")

// parseRecord decodes a record; the payload aliases b.
func parseRecord(b []byte) (record, error) {
	var r record
	if len(b) < 3 || b[0] != recVersion {
		return r, errBadRecord
	}
	r.kind = b[1]
	b = b[2:]
	var n int
	if r.seq, n = binary.Uvarint(b); n <= 0 {
		return r, errBadRecord
	}
	b = b[n:]
	switch r.kind {
	case recHead, recAck:
	case recGone:
		if r.expires, n = binary.Varint(b); n <= 0 {
			return r, errBadRecord
		}
	case recMsg:
		rest, err := parseMsgFields(b, &r)
		if err != nil {
			return r, err
		}
		r.payload = rest
	case recBatch:
		count, n := binary.Uvarint(b)
		if n <= 0 || count > uint64(len(b)) {
			return r, errBadRecord
		}
		b = b[n:]
		r.msgs = make([]record, count)
		for i := range r.msgs {
			m := &r.msgs[i]
			m.kind = recMsg
			var err error
			if b, err = parseBatched(b, m); err != nil {
				return r, err
			}
			if m.seq > r.seq || i > 0 && m.seq <= r.msgs[i-1].seq {
				return r, errBadRecord
			}
		}
		if len(b) != 0 {
			return r, errBadRecord
		}
	default:
		return r, errBadRecord
	}
	return r, nil
}

// parseMsgFields decodes a message's created and expiry times and its id
// into m and returns the rest of b.
func parseMsgFields(b []byte, m *record) ([]byte, error) {
	var n int
	if m.created, n = binary.Varint(b); n <= 0 {
		return nil, errBadRecord
	}
	b = b[n:]
	if m.expires, n = binary.Varint(b); n <= 0 {
		return nil, errBadRecord
	}
	b = b[n:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, errBadRecord
	}
	m.id = string(b[n : n+int(l)])
	return b[n+int(l):], nil
}

// parseBatched decodes one message of a recBatch into m and returns the
// rest of b.
func parseBatched(b []byte, m *record) ([]byte, error) {
	var n int
	if m.seq, n = binary.Uvarint(b); n <= 0 {
		return nil, errBadRecord
	}
	b, err := parseMsgFields(b[n:], m)
	if err != nil {
		return nil, err
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, errBadRecord
	}
	m.payload = b[n : n+int(l) : n+int(l)]
	return b[n+int(l):], nil
}
