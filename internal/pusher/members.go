package pusher

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/internal/protocol"
)

// Channel name prefixes with a meaning in Pusher's protocol.
const (
	PrivatePrefix   = "private-"
	EncryptedPrefix = "private-encrypted-"
	PresencePrefix  = "presence-"
	UserPrefix      = "#server-to-user-"
)

// Pusher's limits on presence members.
const (
	MaxUserIDLen = 128  // characters of a user_id
	MaxUserInfo  = 1024 // bytes of a member's user_info
)

// UserAuthOK checks a pusher:signin's auth "<key>:<signature>", signed
// over "<socket_id>::user::<user_data>", in constant time.
func UserAuthOK(key, secret, auth, socketID, userData string) bool {
	k, sig, ok := strings.Cut(auth, ":")
	return ok && k == key && hmac.Equal([]byte(sig), []byte(Sign(secret, socketID+"::user::"+userData)))
}

// Signin is the data of a pusher:signin frame.
type Signin struct {
	Auth     string `json:"auth"`
	UserData string `json:"user_data"`
}

// Member is a presence channel member as its channel_data (or its signed-in
// user_data) names it.
type Member struct {
	ID   string
	Info json.RawMessage // a JSON value, or nil
}

// ErrMember is channel_data or user_data without a usable user id.
var ErrMember = errors.New("pusher: user_id must be a non-empty string or number of at most 128 characters, user_info at most 1 KiB")

// ParseChannelData reads a presence subscription's channel_data:
// {"user_id": string or number, "user_info": any}.
func ParseChannelData(s string) (Member, error) {
	var d struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return Member{}, ErrMember
	}
	return member(d.UserID, d.UserInfo)
}

// ParseUserData reads a pusher:signin's user_data: {"id": string, …,
// "user_info": any}.
func ParseUserData(s string) (Member, error) {
	var d struct {
		ID       json.RawMessage `json:"id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal([]byte(s), &d); err != nil || len(d.ID) == 0 || d.ID[0] != '"' {
		return Member{}, ErrMember
	}
	return member(d.ID, d.UserInfo)
}

func member(id, info json.RawMessage) (Member, error) {
	var m Member
	var s string
	switch {
	case len(id) > 0 && id[0] == '"':
		if json.Unmarshal(id, &s) != nil {
			return m, ErrMember
		}
	case len(id) > 0 && (id[0] == '-' || id[0] >= '0' && id[0] <= '9'):
		s = string(id)
	}
	if s == "" || len(s) > MaxUserIDLen || len(info) > MaxUserInfo || !ValidName(s) {
		return m, ErrMember
	}
	m.ID = s
	if info = bytes.TrimSpace(info); len(info) > 0 {
		m.Info = info
	}
	return m, nil
}

// ValidName reports whether s is a usable user id: no control
// characters, valid UTF-8.
func ValidName(s string) bool { return protocol.ValidName("user", s) == nil }

// PresenceSucceeded answers a presence subscription: the members (ids in
// order, each with its info in infos) as pusher-js reads them.
func PresenceSucceeded(channel string, ids []string, infos map[string]json.RawMessage) []byte {
	d := append(make([]byte, 0, 64+len(ids)*32), `{"presence":{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			d = append(d, ',')
		}
		d = protocol.AppendString(d, id)
	}
	d = append(d, `],"hash":{`...)
	for i, id := range ids {
		if i > 0 {
			d = append(d, ',')
		}
		d = append(protocol.AppendString(d, id), ':')
		d = appendInfo(d, infos[id])
	}
	d = append(d, `},"count":`...)
	d = strconv.AppendInt(d, int64(len(ids)), 10)
	d = append(d, `}}`...)
	return Event("pusher_internal:subscription_succeeded", channel, d, "")
}

func appendInfo(b []byte, info json.RawMessage) []byte {
	if len(info) == 0 {
		return append(b, "null"...)
	}
	return append(b, info...)
}

// MemberAdded announces a user's arrival in a presence channel.
func MemberAdded(channel, user string, info json.RawMessage) []byte {
	d := append(protocol.AppendString(append(make([]byte, 0, 32+len(user)+len(info)), `{"user_id":`...), user), `,"user_info":`...)
	d = append(appendInfo(d, info), '}')
	return Event("pusher_internal:member_added", channel, d, "")
}

// MemberRemoved announces a user's departure from a presence channel.
func MemberRemoved(channel, user string) []byte {
	d := append(protocol.AppendString(append(make([]byte, 0, 16+len(user)), `{"user_id":`...), user), '}')
	return Event("pusher_internal:member_removed", channel, d, "")
}

// SigninSuccess answers a pusher:signin that succeeded.
func SigninSuccess(userData string) []byte {
	d := append(protocol.AppendString(append(make([]byte, 0, 24+len(userData)), `{"user_data":`...), userData), '}')
	return Event("pusher:signin_success", "", d, "")
}

// notice is a Herald presence frame (protocol.Presence, with the info of
// push's PresenceNoticeInfo).
type notice struct {
	Type  string          `json:"type"`
	Room  string          `json:"room"`
	Join  []string        `json:"join"`
	Leave []string        `json:"leave"`
	Info  json.RawMessage `json:"info"`
}

// FromPresence turns a Herald presence frame of a presence- channel into
// its member_added or member_removed event and the user it is about; nil
// for any other frame.
func FromPresence(payload []byte) (event []byte, channel, user string) {
	if !bytes.HasPrefix(payload, []byte(`{"type":"presence",`)) {
		return nil, "", ""
	}
	var n notice
	if json.Unmarshal(payload, &n) != nil || !strings.HasPrefix(n.Room, PresencePrefix) {
		return nil, "", ""
	}
	switch {
	case len(n.Join) == 1:
		return MemberAdded(n.Room, n.Join[0], n.Info), n.Room, n.Join[0]
	case len(n.Leave) == 1:
		return MemberRemoved(n.Room, n.Leave[0]), n.Room, n.Leave[0]
	}
	return nil, "", ""
}

// FromUserMessage turns a message of the user's inbox (protocol
// AppendMessage) into an event on the user's #server-to-user- channel:
// its event ("message" if none) and data.
func FromUserMessage(user string, msg []byte) []byte {
	var m message
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil
	}
	if m.Event == "" {
		m.Event = "message"
	}
	return Event(m.Event, UserPrefix+user, m.Data, "")
}
