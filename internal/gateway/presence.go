package gateway

import (
	"context"
	"slices"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
)

// Presence says which rooms are presence rooms and who is in one
// (package lifecycle implements it over the cluster-wide tracker).
type Presence interface {
	// Presence reports whether room is a presence room.
	Presence(room string) bool
	// Members returns the users present in app's room, sorted, at most
	// limit, and whether there are more.
	Members(ctx context.Context, app, room string, limit int) ([]string, bool, error)
}

// tellJoined sends c its joined frame for room. A presence room's frame
// lists the members, read from the engine off the caller's goroutine;
// live frames that arrive meanwhile (presence frames among them) are held
// and follow it, so a client that takes the list and then applies join
// and leave frames as set operations ends with the right members.
func (g *Gateway) tellJoined(c *conn, room string) {
	if g.cfg.Presence == nil || !g.cfg.Presence.Presence(room) {
		c.sendText(protocol.Joined(room))
		return
	}
	held := c.hold()
	go func() {
		ctx, cancel := g.engineCtx()
		defer cancel()
		f := protocol.NewText(g.joinedFrame(ctx, &c.Conn, room))
		if !held { // a replay is running and holds live frames already
			c.Send(f)
			return
		}
		c.sendNow(f)
		c.release(room, 0)
	}()
}

// joinedFrame encodes hc's joined frame for room: with the members when
// it is a presence room (hc's user always among them: its own arrival may
// not be stored yet). The members are left out if the engine cannot be
// read.
func (g *Gateway) joinedFrame(ctx context.Context, hc *hub.Conn, room string) []byte {
	p := g.cfg.Presence
	if p == nil || !p.Presence(room) {
		return protocol.Joined(room)
	}
	limit := max(1, g.cfg.PresenceMembers)
	users, more, err := p.Members(ctx, hc.App, room, limit)
	if err != nil {
		g.log.Warn("reading presence members", "app", hc.App, "room", room, "err", err)
		return protocol.Joined(room)
	}
	users, cut := withMember(users, hc.User, limit)
	return protocol.JoinedMembers(room, users, more || cut)
}

// withMember inserts user into the sorted list users if it is missing,
// keeping at most limit (user always kept); cut: one was dropped for it.
func withMember(users []string, user string, limit int) (_ []string, cut bool) {
	i, found := slices.BinarySearch(users, user)
	if found {
		return users, false
	}
	users = slices.Insert(users, i, user)
	if len(users) <= limit {
		return users, false
	}
	drop := len(users) - 1
	if users[drop] == user {
		drop--
	}
	return slices.Delete(users, drop, drop+1), true
}
