// Package lifecycle turns what the gateway sees (connections opening and
// closing, joining and leaving rooms) into cluster-wide presence
// (internal/presence) and lifecycle webhook events (internal/webhook).
//
// It owns the mapping from connections to presence scopes (a user, a room,
// a user in a presence room) and from presence changes to event types.
// It must not block the gateway: its gateway-facing methods only update
// the tracker's in-memory counts; engine work and event storage happen on
// the tracker's workers, which call the Sink methods. Safe for concurrent
// use.
package lifecycle

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/presence"
	"github.com/heraldpush/herald/internal/pusher"
	"github.com/heraldpush/herald/internal/webhook"
)

// Lifecycle is the bridge. Set Tracker before use; Outbox may be nil (no
// webhooks configured), Notices too (no presence frames).
type Lifecycle struct {
	Tracker       *presence.Tracker
	Outbox        *webhook.Outbox
	Notices       Notifier
	PresenceRooms []string // names, "prefix*" or "*"
	Log           *slog.Logger
}

// Notifier tells a presence room's members, on every node, of a user's
// arrival or departure (the presence frames; package push implements it).
type Notifier interface {
	PresenceNotice(ctx context.Context, app, room, user string, join bool) error
}

// Members implements gateway.Presence: the users present in a presence
// room, sorted, at most limit, and whether there are more, from this
// node's copy of the members (a join costs no engine call).
func (l *Lifecycle) Members(ctx context.Context, app, room string, limit int) ([]string, bool, error) {
	return l.Tracker.MembersCached(ctx, app, room, limit)
}

// Presence reports whether room is a presence room.
func (l *Lifecycle) Presence(room string) bool {
	for _, p := range l.PresenceRooms {
		if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(room, pre) || p == room {
			return true
		}
	}
	return false
}

// Opened implements gateway.Lifecycle.
func (l *Lifecycle) Opened(c *hub.Conn) {
	l.Tracker.Open(presence.Conn{ID: c.ID, App: c.App, User: c.User, Device: c.Device, Addr: c.Addr,
		Since: time.UnixMilli(c.Since)})
	l.Tracker.Add(presence.Scope{Kind: presence.User, App: c.App, User: c.User}, time.Now())
}

// Closed implements gateway.Lifecycle: rooms are those c was still in.
func (l *Lifecycle) Closed(c *hub.Conn, rooms []string, code int) {
	now := time.Now()
	for _, r := range rooms {
		l.left(c, r, now)
	}
	l.Tracker.Remove(presence.Scope{Kind: presence.User, App: c.App, User: c.User}, now)
	l.Tracker.Closed(c.ID, code, now)
}

// Joined implements gateway.Lifecycle.
func (l *Lifecycle) Joined(c *hub.Conn, room string) {
	now := time.Now()
	l.Tracker.Add(presence.Scope{Kind: presence.Room, App: c.App, Room: room}, now)
	if l.member(c, room) {
		l.Tracker.Add(presence.Scope{Kind: presence.Member, App: c.App, Room: room, User: c.User}, now)
	}
}

// Left implements gateway.Lifecycle.
func (l *Lifecycle) Left(c *hub.Conn, room string) { l.left(c, room, time.Now()) }

func (l *Lifecycle) left(c *hub.Conn, room string, at time.Time) {
	if l.member(c, room) {
		l.Tracker.Remove(presence.Scope{Kind: presence.Member, App: c.App, Room: room, User: c.User}, at)
	}
	l.Tracker.Remove(presence.Scope{Kind: presence.Room, App: c.App, Room: room}, at)
}

// member reports whether c's joining room makes its user a member: a
// presence room, for a native connection (a Pusher connection's member
// identity is the channel_data of each channel: MemberJoined).
func (l *Lifecycle) member(c *hub.Conn, room string) bool {
	return c.Device != pusher.Device && l.Presence(room)
}

// MemberJoined counts a Pusher connection in app's presence channel room
// as user (its channel_data's user_id).
func (l *Lifecycle) MemberJoined(app, room, user string) {
	l.Tracker.Add(presence.Scope{Kind: presence.Member, App: app, Room: room, User: user}, time.Now())
}

// MemberLeft undoes MemberJoined.
func (l *Lifecycle) MemberLeft(app, room, user string) {
	l.Tracker.Remove(presence.Scope{Kind: presence.Member, App: app, Room: room, User: user}, time.Now())
}

// Changed implements presence.Sink.
func (l *Lifecycle) Changed(ctx context.Context, ch presence.Change) {
	s := ch.Scope
	var typ string
	data := map[string]any{}
	switch s.Kind {
	case presence.User:
		typ, data["user"] = pick(ch.Up, webhook.UserOnline, webhook.UserOffline), s.User
	case presence.Room:
		typ, data["room"] = pick(ch.Up, webhook.RoomOccupied, webhook.RoomVacated), s.Room
	case presence.Member:
		typ, data["room"], data["user"] = pick(ch.Up, webhook.PresenceJoin, webhook.PresenceLeave), s.Room, s.User
		if l.Notices != nil {
			if err := l.Notices.PresenceNotice(ctx, s.App, s.Room, s.User, ch.Up); err != nil && l.Log != nil {
				l.Log.Warn("presence frame not published", "app", s.App, "room", s.Room, "err", err)
			}
		}
	}
	l.emit(ctx, s.App, typ, ch.At, data)
}

func pick(up bool, a, b string) string {
	if up {
		return a
	}
	return b
}

// ConnOpened implements presence.Sink.
func (l *Lifecycle) ConnOpened(ctx context.Context, c presence.Conn) {
	l.emit(ctx, c.App, webhook.ConnOpened, c.Since, connData(c))
}

// ConnClosed implements presence.Sink.
func (l *Lifecycle) ConnClosed(ctx context.Context, c presence.Conn, code int, at time.Time) {
	d := connData(c)
	d["code"] = code
	l.emit(ctx, c.App, webhook.ConnClosed, at, d)
}

func connData(c presence.Conn) map[string]any {
	return map[string]any{"conn": c.ID, "user": c.User, "node": c.Node, "device": c.Device, "addr": c.Addr}
}

func (l *Lifecycle) emit(ctx context.Context, app, typ string, at time.Time, data map[string]any) {
	if l.Outbox == nil {
		return
	}
	// Offered again while the outbox cannot be written (a node's death may
	// cost its stream a leader election): what the tracker decided is not
	// decided again.
	if err := l.Outbox.EmitSure(ctx, app, typ, at, data); err != nil && l.Log != nil {
		l.Log.Warn("storing a webhook event failed; it is lost", "app", app, "type", typ, "err", err)
	}
}
