package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event types.
const (
	ConnOpened       = "conn.opened"
	ConnClosed       = "conn.closed"
	UserOnline       = "user.online"
	UserOffline      = "user.offline"
	RoomOccupied     = "room.occupied"
	RoomVacated      = "room.vacated"
	PresenceJoin     = "presence.join"
	PresenceLeave    = "presence.leave"
	MessageDelivered = "message.delivered"
	MessageAcked     = "message.acked"
	MessageExpired   = "message.expired"
)

// Types lists every event type.
var Types = []string{ConnOpened, ConnClosed, UserOnline, UserOffline, RoomOccupied, RoomVacated,
	PresenceJoin, PresenceLeave, MessageDelivered, MessageAcked, MessageExpired}

// ValidType reports whether t is an event type.
func ValidType(t string) bool { return slices.Contains(Types, t) }

// Endpoint is one receiver of an app's events.
type Endpoint struct {
	App    string
	URL    string
	Key    []byte   // the decoded secret (a Pusher-format endpoint's: the app's Pusher secret)
	Events []string // empty: every type except message.*
	// PusherKey, when set, makes this a Pusher-format endpoint of the app
	// with that Pusher key: it receives the Pusher events (channel_*,
	// member_*, client_event) in batches, signed as Pusher signs them,
	// and Events must be empty.
	PusherKey string
	// PusherClientEvents: a Pusher-format endpoint also receives
	// client_event (ClientEvent).
	PusherClientEvents bool
}

// Pusher reports whether e is a Pusher-format endpoint.
func (e Endpoint) Pusher() bool { return e.PusherKey != "" }

// ID names the endpoint stably (its app and URL), for consumers, metrics
// and the dead-letter list.
func (e Endpoint) ID() string {
	id := e.App + "\x00" + e.URL
	if e.Pusher() {
		id += "\x00pusher"
	}
	h := sha256.Sum256([]byte(id))
	return "ep_" + hex.EncodeToString(h[:8])
}

// types is what the endpoint receives.
func (e Endpoint) types() []string {
	if e.Pusher() && e.PusherClientEvents {
		return pusherClientTypes
	}
	if e.Pusher() {
		return pusherTypes
	}
	if len(e.Events) > 0 {
		return e.Events
	}
	var out []string
	for _, t := range Types {
		if !strings.HasPrefix(t, "message.") {
			out = append(out, t)
		}
	}
	return out
}

// body is what is posted: one event.
type body struct {
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// encode makes an event's id and body; data gets the app.
func encode(app, typ string, at time.Time, data map[string]any) (string, []byte, error) {
	var b [12]byte
	rand.Read(b[:])
	id := "evt_" + hex.EncodeToString(b[:])
	d := make(map[string]any, len(data)+1)
	for k, v := range data {
		d[k] = v
	}
	d["app"] = app
	raw, err := json.Marshal(body{Type: typ, Timestamp: at.UTC().Format(time.RFC3339Nano), Data: d})
	if err != nil {
		return "", nil, fmt.Errorf("webhook: encoding %s: %w", typ, err)
	}
	return id, raw, nil
}
