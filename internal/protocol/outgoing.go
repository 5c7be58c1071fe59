package protocol

import "sync/atomic"

// Outgoing is one encoded server frame, shared by every recipient: it is
// built once per push and never modified after, so any number of connection
// queues may hold it.
type Outgoing struct {
	// Frame is the whole WebSocket frame, header included, ready to write.
	Frame []byte
	// Msg, set on push messages only, is the message object inside Frame's
	// msgs array, so that a writer can merge several queued messages into
	// one push frame without re-encoding them.
	Msg []byte
	// Seq is the user's sequence of a stored message, or with Room set the
	// room history position (0 for others), so that a connection replaying
	// can drop live copies it replays.
	Seq  uint64
	Room string
	// Member, on a Pusher member event (an Alt frame), is the user it is
	// about; Room is then its channel.
	Member string

	// alt is the frame in the other wire protocol (Pusher), built by the
	// first connection of that protocol that takes it (see Alt).
	alt atomic.Pointer[Outgoing]
}

// Alt returns the frame re-encoded for the Pusher wire protocol: build
// makes it on first use (it may return nil: nothing to send), and every
// later caller shares it, so a push is encoded once per protocol.
func (o *Outgoing) Alt(build func(*Outgoing) *Outgoing) *Outgoing {
	if a := o.alt.Load(); a != nil {
		return a
	}
	a := build(o)
	if a == nil {
		a = noAlt
	}
	if !o.alt.CompareAndSwap(nil, a) {
		a = o.alt.Load()
	}
	return a
}

// noAlt marks a frame with nothing to send in the other protocol.
var noAlt = &Outgoing{}

// IsNone reports whether o is Alt's "nothing to send".
func (o *Outgoing) IsNone() bool { return o == noAlt }

// NewText wraps a JSON payload in a text frame.
func NewText(payload []byte) *Outgoing { return &Outgoing{Frame: Frame(OpText, payload)} }

// NewPush builds the push frame for one message object (see AppendMessage).
func NewPush(msg []byte) *Outgoing {
	n := len(PushPrefix) + len(msg) + len(PushSuffix)
	b := AppendHeader(make([]byte, 0, MaxHeaderLen+n), OpText, n)
	b = append(b, PushPrefix...)
	start := len(b)
	b = append(b, msg...)
	end := len(b)
	b = append(b, PushSuffix...)
	return &Outgoing{Frame: b, Msg: b[start:end:end]}
}
