package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// MaxNameLen is the longest user, room or device name the protocol accepts.
const MaxNameLen = 256

// SendTarget names the recipients of a client "send" frame.
type SendTarget struct {
	Users []string `json:"users,omitempty"`
	Rooms []string `json:"rooms,omitempty"`
}

// ClientFrame is one decoded client → server frame.
type ClientFrame struct {
	Type  string          `json:"type"`
	Token string          `json:"token,omitempty"`
	Room  string          `json:"room,omitempty"`
	Since *uint64         `json:"since,omitempty"`
	Seq   uint64          `json:"seq,omitempty"`
	To    *SendTarget     `json:"to,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	// Event, set only by the Pusher wire (never decoded), makes a send a
	// Pusher client event named Event to the room Room.
	Event string `json:"-"`
}

// Client frame types.
const (
	TypePing   = "ping"
	TypeAuth   = "auth"
	TypeJoin   = "join"
	TypeLeave  = "leave"
	TypeAck    = "ack"
	TypeResume = "resume"
	TypeSend   = "send"
)

// DecodeClient parses and validates one client text frame. A nil error means
// every field the frame's type needs is present and well formed.
func DecodeClient(b []byte) (ClientFrame, *FrameError) {
	var f ClientFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return f, invalidFrame("malformed JSON frame")
	}
	switch f.Type {
	case TypePing:
	case TypeAuth:
		if f.Token == "" {
			return f, invalidArgument("auth needs a token")
		}
	case TypeJoin, TypeLeave:
		if err := ValidName("room", f.Room); err != nil {
			return f, invalidArgument(err.Error())
		}
	case TypeAck:
		if f.Seq == 0 {
			return f, invalidArgument("ack needs a seq above 0")
		}
	case TypeResume:
		if f.Since == nil {
			return f, invalidArgument("resume needs since")
		}
	case TypeSend:
		if f.To == nil || len(f.To.Users)+len(f.To.Rooms) == 0 {
			return f, invalidArgument("send needs to.users or to.rooms")
		}
		if len(f.Data) == 0 {
			return f, invalidArgument("send needs data")
		}
		for _, u := range f.To.Users {
			if err := ValidName("user", u); err != nil {
				return f, invalidArgument(err.Error())
			}
		}
		for _, r := range f.To.Rooms {
			if err := ValidName("room", r); err != nil {
				return f, invalidArgument(err.Error())
			}
		}
	case "":
		return f, invalidFrame("frame has no type")
	default:
		return f, invalidFrame("unknown frame type " + strconv.Quote(f.Type))
	}
	return f, nil
}

// NameError says why a user, room or device name was refused.
type NameError struct{ What, Reason string }

// Error returns a sentence naming the field.
func (e *NameError) Error() string { return e.What + " " + e.Reason }

// ValidName checks a user, room or device name: non-empty, valid UTF-8, at
// most MaxNameLen bytes, no control characters.
func ValidName(what, s string) error {
	switch {
	case s == "":
		return &NameError{what, "is empty"}
	case len(s) > MaxNameLen:
		return &NameError{what, "is longer than " + strconv.Itoa(MaxNameLen) + " bytes"}
	case !utf8.ValidString(s):
		return &NameError{what, "is not valid UTF-8"}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return &NameError{what, "has a control character"}
		}
	}
	return nil
}

// Welcome encodes the first frame of every session.
func Welcome(conn, user string, heartbeatSec int, seq uint64) []byte {
	b := append(make([]byte, 0, 96), `{"type":"welcome","conn":`...)
	b = AppendString(b, conn)
	b = append(b, `,"user":`...)
	b = AppendString(b, user)
	b = append(b, `,"heartbeat":`...)
	b = strconv.AppendInt(b, int64(heartbeatSec), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

// Resumed encodes the frame that ends a replay.
func Resumed(since, to uint64, complete bool) []byte {
	b := append(make([]byte, 0, 64), `{"type":"resumed","since":`...)
	b = strconv.AppendUint(b, since, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendUint(b, to, 10)
	b = append(b, `,"complete":`...)
	b = strconv.AppendBool(b, complete)
	return append(b, '}')
}

// RoomResumed encodes the frame that ends a room history replay.
func RoomResumed(room string, since, to uint64, complete bool) []byte {
	b := append(make([]byte, 0, 80+len(room)), `{"type":"resumed","room":`...)
	b = AppendString(b, room)
	b = append(b, Resumed(since, to, complete)[len(`{"type":"resumed"`):]...)
	return b
}

// Joined encodes a room-joined notice.
func Joined(room string) []byte { return roomFrame("joined", room) }

// JoinedMembers encodes the joined notice of a presence room: the users
// present in it (at most the configured cap; more: there are others).
func JoinedMembers(room string, members []string, more bool) []byte {
	b := Joined(room)
	b = appendList(append(b[:len(b)-1], `,"members":`...), members)
	if more {
		b = append(b, `,"more":true`...)
	}
	return append(b, '}')
}

// Presence encodes a presence room's change: users became present (join)
// or are no longer present (leave).
func Presence(room string, join bool, users []string) []byte {
	b := append(make([]byte, 0, 48+len(room)), `{"type":"presence","room":`...)
	b = AppendString(b, room)
	if join {
		b = append(b, `,"join":`...)
	} else {
		b = append(b, `,"leave":`...)
	}
	return append(appendList(b, users), '}')
}

// appendList appends a JSON array of strings.
func appendList(b []byte, vs []string) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, v)
	}
	return append(b, ']')
}

// Left encodes a room-left notice.
func Left(room string) []byte { return roomFrame("left", room) }

// Recall encodes a notice that message id was recalled.
func Recall(id string) []byte {
	b := AppendString(append(make([]byte, 0, 40+len(id)), `{"type":"recall","id":`...), id)
	return append(b, '}')
}

func roomFrame(typ, room string) []byte {
	b := append(make([]byte, 0, 32+len(room)), `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","room":`...)
	b = AppendString(b, room)
	return append(b, '}')
}

// Pong is the answer to a client ping frame.
var Pong = []byte(`{"type":"pong"}`)

// ErrorFrame encodes an error frame.
func ErrorFrame(code int, reason string) []byte {
	b := append(make([]byte, 0, 48+len(reason)), `{"type":"error","code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"reason":`...)
	b = AppendString(b, reason)
	return append(b, '}')
}

// Message is one pushed message as a client sees it.
type Message struct {
	ID   string
	Seq  uint64 // 0: not stored in an inbox
	Room string // set on room messages
	Pos  uint64 // 0: room keeps no history
	From string // sending user, on client-sent messages
	// Event names the message for Pusher clients (their event name); ""
	// is "message" and is left out of the encoding.
	Event string
	Data  json.RawMessage
	TS    int64 // unix milliseconds
}

// AppendMessage appends the JSON object for m, as it stands in a push
// frame's msgs array. Data must already be valid JSON.
func AppendMessage(b []byte, m *Message) []byte {
	b = append(b, `{"id":`...)
	b = AppendString(b, m.ID)
	if m.Seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
	}
	if m.Room != "" {
		b = append(b, `,"room":`...)
		b = AppendString(b, m.Room)
		if m.Pos > 0 {
			b = append(b, `,"pos":`...)
			b = strconv.AppendUint(b, m.Pos, 10)
		}
	}
	if m.From != "" {
		b = append(b, `,"from":`...)
		b = AppendString(b, m.From)
	}
	if m.Event != "" {
		b = append(b, `,"event":`...)
		b = AppendString(b, m.Event)
	}
	b = append(b, `,"data":`...)
	b = append(b, bytes.TrimSpace(m.Data)...)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.TS, 10)
	return append(b, '}')
}

// Push-frame pieces: a push frame is PushPrefix, messages joined by commas,
// then PushSuffix. The gateway assembles them at write time so that messages
// queued together share one frame without being re-encoded.
var (
	PushPrefix = []byte(`{"type":"push","msgs":[`)
	PushSuffix = []byte(`]}`)
	Comma      = []byte(`,`)
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendWithSeq appends stored, a message object encoded by AppendMessage
// without a seq, with its "seq" set: the stored encoding is shared by every
// inbox the message lands in, and each user's copy only splices in its own
// number.
func AppendWithSeq(b, stored []byte, seq uint64) []byte {
	return appendWithNumber(b, stored, `,"seq":`, seq)
}

// AppendWithPos is AppendWithSeq for a room message's history position.
func AppendWithPos(b, stored []byte, pos uint64) []byte {
	return appendWithNumber(b, stored, `,"pos":`, pos)
}

// appendWithNumber splices field (`,"name":`) and n in right after the id.
func appendWithNumber(b, stored []byte, field string, n uint64) []byte {
	end := len(`{"id":"`)
	for end < len(stored) && stored[end] != '"' {
		if stored[end] == '\\' {
			end++
		}
		end++
	}
	end = min(end+1, len(stored))
	b = append(b, stored[:end]...)
	b = append(b, field...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, stored[end:]...)
}
