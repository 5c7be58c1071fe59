package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// ClientEvent is the event type of a Pusher client's client- event. Only
// Pusher-format endpoints with PusherClientEvents receive it (it is not in
// Types).
const ClientEvent = "client.event"

// Pusher-format endpoints receive these types, as Pusher's events.
var pusherNames = map[string]string{
	RoomOccupied:  "channel_occupied",
	RoomVacated:   "channel_vacated",
	PresenceJoin:  "member_added",
	PresenceLeave: "member_removed",
	ClientEvent:   "client_event",
}

// pusherTypes are what every Pusher-format endpoint receives;
// pusherClientTypes, one with PusherClientEvents.
var (
	pusherTypes       = []string{RoomOccupied, RoomVacated, PresenceJoin, PresenceLeave}
	pusherClientTypes = append(slices.Clip(pusherTypes), ClientEvent)
)

// A Pusher-format endpoint gets up to pusherBatch events in one request,
// the first of them held back at most pusherWindow for the others.
const (
	pusherBatch  = 20
	pusherWindow = 250 * time.Millisecond
	// pusherGroup is the priority group of a Pusher-format endpoint's
	// consumer: one node is pinned to it and pulls alone.
	pusherGroup = "pusher"
	// pinPull bounds the pull that keeps a retrying node's pin.
	pinPull = 100 * time.Millisecond
)

// pusherEvent is one event of a Pusher webhook.
type pusherEvent struct {
	Name     string  `json:"name"`
	Channel  string  `json:"channel"`
	UserID   string  `json:"user_id,omitempty"`
	Event    string  `json:"event,omitempty"`
	Data     *string `json:"data,omitempty"` // a client_event's, always (Pusher sends it)
	SocketID string  `json:"socket_id,omitempty"`
}

// pusherEventOf turns a stored event (the Herald-format body) into
// Pusher's form.
func pusherEventOf(raw []byte) (pusherEvent, error) {
	var b struct {
		Type string `json:"type"`
		Data struct {
			Room     string  `json:"room"`
			User     string  `json:"user"`
			Event    string  `json:"event"`
			Data     *string `json:"data"`
			SocketID string  `json:"socket_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return pusherEvent{}, fmt.Errorf("webhook: stored event: %w", err)
	}
	name, ok := pusherNames[b.Type]
	if !ok || b.Data.Room == "" {
		return pusherEvent{}, fmt.Errorf("webhook: stored event of type %q has no Pusher form", b.Type)
	}
	d := b.Data
	return pusherEvent{Name: name, Channel: d.Room, UserID: d.User, Event: d.Event, Data: d.Data, SocketID: d.SocketID}, nil
}

// pusherBody is the request body of a batch: {"time_ms","events"}, the
// time it was built and the events.
func pusherBody(events []pusherEvent, now time.Time) ([]byte, error) {
	return json.Marshal(struct {
		TimeMS int64         `json:"time_ms"`
		Events []pusherEvent `json:"events"`
	}{now.UnixMilli(), events})
}

// PusherSignature is the X-Pusher-Signature of a webhook body: the hex
// HMAC-SHA256 of the body under the app's Pusher secret.
func PusherSignature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// postPusher makes one attempt of a Pusher-format request.
func (o *Outbox) postPusher(ctx context.Context, s *sender, body []byte) (int, error) {
	return o.attempt(ctx, s.ep.URL, body, map[string]string{"X-Pusher-Key": s.ep.PusherKey,
		"X-Pusher-Signature": PusherSignature(s.ep.Key, body)})
}
