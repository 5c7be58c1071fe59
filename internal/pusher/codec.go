package pusher

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/internal/protocol"
)

// Pusher error codes sent in pusher:error frames and close frames
// (Pusher's protocol: 4000–4099 never reconnect, 4100–4199 reconnect
// after a back-off, 4200–4299 reconnect at once).
const (
	CodeUnknownApp       = 4001 // app key not found: close
	CodeTerminated       = 4009 // connection terminated (or unauthorized): close, no reconnect
	CodeUnsupported      = 4007 // unsupported protocol version: close
	CodeNoProtocol       = 4008 // no protocol version given: close
	CodeOverCapacity     = 4100 // over capacity (slow consumer): reconnect after back-off
	CodeReconnect        = 4200 // generic reconnect (drain)
	CodePongTimeout      = 4201 // pong reply not received (heartbeat)
	CodeClientEventRate  = 4301 // client event rejected: over the rate; stays open
	CodeClientEventError = 4009 // client event refused (public channel, bad name); stays open
)

// Device is the device label of a Pusher connection (hub.Conn.Device).
const Device = "pusher"

// MaxNameLen is the longest channel or event name Pusher allows.
const MaxNameLen = 200

// Frame is one decoded Pusher client frame.
type Frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// ErrBadFrame is a client frame that is not a Pusher event object.
var ErrBadFrame = errors.New("pusher: frame is not a JSON object with an event")

// Decode parses a client frame.
func Decode(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil || f.Event == "" {
		return Frame{}, ErrBadFrame
	}
	return f, nil
}

// Subscribe is the data of a pusher:subscribe frame.
type Subscribe struct {
	Channel     string `json:"channel"`
	Auth        string `json:"auth"`
	ChannelData string `json:"channel_data"`
}

// DecodeData parses a frame's data into v: data may be the object itself
// or, from older clients, a JSON string holding it.
func DecodeData(data json.RawMessage, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return ErrBadFrame
		}
		data = []byte(s)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return ErrBadFrame
	}
	return nil
}

// ValidChannel reports whether name is a Pusher channel name: 1 to 200
// characters of A-Z a-z 0-9 _ - = @ , . ; — or #server-to-user- and a
// user id (any characters but control ones, at most MaxUserIDLen: the
// server SDKs' sendToUser takes any string).
func ValidChannel(name string) bool {
	if user, ok := strings.CutPrefix(name, UserPrefix); ok {
		return user != "" && len(user) <= MaxUserIDLen && ValidName(user)
	}
	if name == "" || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_-=@,.;", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidEvent reports whether name is an acceptable event name: 1 to 200
// bytes without control characters.
func ValidEvent(name string) bool {
	return len(name) <= MaxNameLen && protocol.ValidName("event", name) == nil
}

// AppendData appends a JSON value as Pusher's data string: a JSON string
// stays as it is, any other value becomes the string of its JSON text.
func AppendData(b []byte, data json.RawMessage) []byte {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		return append(b, data...)
	}
	return protocol.AppendString(b, string(data))
}

// Event encodes a server event frame; channel and userID are left out
// when empty; data is a JSON value (see AppendData).
func Event(event, channel string, data json.RawMessage, userID string) []byte {
	b := make([]byte, 0, 48+len(event)+len(channel)+len(data)+len(data)/8)
	b = append(b, `{"event":`...)
	b = protocol.AppendString(b, event)
	if channel != "" {
		b = append(b, `,"channel":`...)
		b = protocol.AppendString(b, channel)
	}
	b = append(b, `,"data":`...)
	b = AppendData(b, data)
	if userID != "" {
		b = append(b, `,"user_id":`...)
		b = protocol.AppendString(b, userID)
	}
	return append(b, '}')
}

// message is the part of a Herald message object a Pusher event needs.
type message struct {
	Room  string          `json:"room"`
	From  string          `json:"from"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// FromMessage turns a Herald message object (protocol.AppendMessage) into
// the Pusher event frame of its room, or nil if it has no room. The event
// is the message's event, "message" when it has none; a client- event
// from a presence channel member carries its user_id.
func FromMessage(msg []byte) []byte {
	var m message
	if err := json.Unmarshal(msg, &m); err != nil || m.Room == "" {
		return nil
	}
	if m.Event == "" {
		m.Event = "message"
	}
	user := ""
	if m.From != "" && strings.HasPrefix(m.Room, PresencePrefix) {
		user = m.From
	}
	return Event(m.Event, m.Room, m.Data, user)
}

// ConnectionEstablished is the first frame of a connection.
func ConnectionEstablished(socketID string, activityTimeout int) []byte {
	inner := `{"socket_id":` + strconv.Quote(socketID) + `,"activity_timeout":` + strconv.Itoa(activityTimeout) + `}`
	return Event("pusher:connection_established", "", json.RawMessage(strconv.Quote(inner)), "")
}

// Error encodes a pusher:error frame.
func Error(code int, message string) []byte {
	b := append(make([]byte, 0, 64+len(message)), `{"event":"pusher:error","data":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = protocol.AppendString(b, message)
	return append(b, `}}`...)
}

// SubscriptionSucceeded answers a subscribe that succeeded.
func SubscriptionSucceeded(channel string) []byte {
	return Event("pusher_internal:subscription_succeeded", channel, json.RawMessage(`"{}"`), "")
}

// SubscriptionError answers a refused subscribe: type is "AuthError" for a
// bad signature; status is the HTTP-like status pusher-js reports.
func SubscriptionError(channel, typ, message string, status int) []byte {
	b := append(make([]byte, 0, 96+len(channel)+len(message)), `{"event":"pusher:subscription_error","channel":`...)
	b = protocol.AppendString(b, channel)
	b = append(b, `,"data":{"type":`...)
	b = protocol.AppendString(b, typ)
	b = append(b, `,"error":`...)
	b = protocol.AppendString(b, message)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return append(b, `}}`...)
}

// Pong answers pusher:ping.
var Pong = []byte(`{"event":"pusher:pong","data":"{}"}`)
