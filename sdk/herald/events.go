package herald

import (
	"encoding/json"
	"strconv"
	"time"
)

// Event is something that happened on a Conn: one of *Connected,
// *Disconnected, *Message, *Recall, *Resumed, *Joined, *Left or
// *RequestError. More may be added; ignore the ones you do not know.
type Event interface{ event() }

// Connected: a session began; the server welcomed the connection.
type Connected struct {
	Conn      string        // this session's connection id, usable in the server API
	User      string        // who the server says the connection is
	Seq       uint64        // the latest sequence ever assigned in the user's inbox
	Heartbeat time.Duration // how often the Conn pings
}

// Disconnected: a session ended, or an attempt to start one failed.
type Disconnected struct {
	// Err says why: a *CloseError with the server's close code, an *Error
	// for a refused handshake, or a network error.
	Err error
	// Retry tells whether the Conn reconnects (after Delay); when false the
	// Conn has stopped and its events channel is closed next.
	Retry bool
	Delay time.Duration
}

// Message is one pushed message. A stored message (an offline push) has
// its Seq in the user's inbox; a message through a room that keeps
// history has Room and Pos.
type Message struct {
	ID   string
	Seq  uint64
	Room string
	Pos  uint64
	From string // the sending user, on messages a client sent
	// Event is the message's event name (a push's Event, or a Pusher
	// client event's); empty for "message".
	Event string
	Data  json.RawMessage
	Time  time.Time // when the server accepted the push
}

// Recall: stored message ID was withdrawn; remove it from view.
type Recall struct{ ID string }

// Resumed ends a replay: of the user's inbox (Room empty) after every
// connect, or of a room's history after a join from a position. Complete
// false means messages after Since are gone for good (expired or dropped):
// refetch your state from your backend.
type Resumed struct {
	Room     string
	Since    uint64
	To       uint64
	Complete bool
}

// Joined: the connection is in Room, by its own Join or the server API.
// In a presence room, Members lists the users present (this one
// included; sorted, up to the server's presence_members, More when there
// are others); then Presence events tell who arrives and leaves. Apply
// them as set operations: one may repeat what Members already shows.
type Joined struct {
	Room    string
	Members []string // nil outside presence rooms
	More    bool
}

// Presence: in a presence room the connection is in, users became present
// (Join: their first connection anywhere joined it) or are no longer
// (Leave: their last one left, or its node died). Never about the
// connection's own user.
type Presence struct {
	Room  string
	Join  []string
	Leave []string
}

// Left: the connection left Room, by its own Leave or the server API.
type Left struct{ Room string }

// RequestError: the server refused a request of the connection (an error
// frame); the connection stays open. Op is the request ("join", "resume"),
// Room its room if any.
type RequestError struct {
	Code   int // ErrCodeForbidden, ErrCodeInvalidArgument, …
	Reason string
	Op     string
	Room   string
}

// Error returns the code, request and reason.
func (e *RequestError) Error() string {
	s := "herald: " + e.Op
	if e.Room != "" {
		s += " " + strconv.Quote(e.Room)
	}
	return s + " refused with " + strconv.Itoa(e.Code) + ": " + e.Reason
}

func (*Connected) event()    {}
func (*Disconnected) event() {}
func (*Message) event()      {}
func (*Recall) event()       {}
func (*Resumed) event()      {}
func (*Joined) event()       {}
func (*Left) event()         {}
func (*Presence) event()     {}
func (*RequestError) event() {}
