package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/pusher"
)

// PusherInfo keeps Pusher presence members' user_info cluster-wide
// (package pusherinfo).
type PusherInfo interface {
	Set(ctx context.Context, app, room, user string, info json.RawMessage) error
	Infos(ctx context.Context, app, room string, users []string) (map[string]json.RawMessage, error)
}

// PusherPresence counts a Pusher connection in a presence channel as the
// user its channel_data names (package lifecycle). Its methods must not
// block.
type PusherPresence interface {
	MemberJoined(app, room, user string)
	MemberLeft(app, room, user string)
}

// pusherMaxMembers is how many members a presence subscription lists, as
// Pusher (which allows no more in a channel).
const pusherMaxMembers = 100

// pusherMember is a presence channel a Pusher connection joined, as whom.
type pusherMember struct{ channel, user string }

// pusherPresence is the member counting, or nil.
func (g *Gateway) pusherPresence() PusherPresence { return g.cfg.PusherPresence }

// pusherMemberOf returns who c is in a presence channel ("": not a
// member). Caller holds c.mu.
func (c *conn) pusherMemberOf(channel string) string {
	for _, m := range c.pusher.members {
		if m.channel == channel {
			return m.user
		}
	}
	return ""
}

// pusherJoinPresence subscribes c to a presence channel as m, off the
// read loop: the member's info is stored first (so that every node can
// announce the arrival with it), then c joins and gets the members.
// Frames that arrive meanwhile are held and follow the member list.
func (g *Gateway) pusherJoinPresence(c *conn, channel string, m pusher.Member) {
	fail := func(typ, msg string, status int) {
		c.sendNow(protocol.NewText(pusher.SubscriptionError(channel, typ, msg, status)))
	}
	pp := g.pusherPresence()
	if g.cfg.PusherInfo == nil || g.cfg.Presence == nil || pp == nil {
		fail("UnsupportedChannel", "presence channels need the presence tracker", 400)
		return
	}
	ctx, cancel := g.engineCtx()
	defer cancel()
	if err := g.cfg.PusherInfo.Set(ctx, c.App, channel, m.ID, m.Info); err != nil {
		g.log.Warn("storing a presence member's info", "app", c.App, "room", channel, "err", err)
		fail("Unavailable", "could not subscribe now; retry", 503)
		return
	}
	held := c.hold()
	release := func() {
		if held {
			c.release(channel, 0)
		}
	}
	if !g.join(&c.Conn, channel) {
		release()
		fail("Unavailable", "could not subscribe now; retry", 503)
		return
	}
	c.mu.Lock()
	if !c.hubbed { // closing: detach counts no member for it
		c.mu.Unlock()
		release()
		return
	}
	c.pusher.members = append(c.pusher.members, pusherMember{channel, m.ID})
	pp.MemberJoined(c.App, channel, m.ID)
	c.mu.Unlock()
	c.sendNow(protocol.NewText(g.pusherMembersFrame(ctx, &c.Conn, channel, m)))
	release()
}

// pusherMembersFrame is a presence subscription's subscription_succeeded:
// the channel's members cluster-wide (m among them: its own arrival may not
// be stored yet), at most pusherMaxMembers, with their info. If the engine
// cannot be read, m alone is listed.
func (g *Gateway) pusherMembersFrame(ctx context.Context, hc *hub.Conn, channel string, m pusher.Member) []byte {
	users, _, err := g.cfg.Presence.Members(ctx, hc.App, channel, pusherMaxMembers)
	var infos map[string]json.RawMessage
	if err == nil {
		infos, err = g.cfg.PusherInfo.Infos(ctx, hc.App, channel, users)
	}
	if err != nil {
		g.log.Warn("reading presence members", "app", hc.App, "room", channel, "err", err)
		users, infos = nil, nil
	}
	users, _ = withMember(users, m.ID, pusherMaxMembers)
	if infos == nil {
		infos = map[string]json.RawMessage{}
	}
	infos[m.ID] = m.Info
	return pusher.PresenceSucceeded(channel, users, infos)
}

// pusherPresenceMember is who c is in a presence channel: its
// channel_data's user, or without channel_data the user c signed in as
// (with its user_data's user_info), as Pusher shares it.
func (g *Gateway) pusherPresenceMember(c *conn, channelData string) (pusher.Member, error) {
	if channelData != "" {
		return pusher.ParseChannelData(channelData)
	}
	c.mu.Lock()
	user := c.pusher.user
	c.mu.Unlock()
	if user == nil {
		return pusher.Member{}, errNoChannelData
	}
	return *user, nil
}

var errNoChannelData = errors.New("a presence subscription needs channel_data (or a signed-in connection)")

// pusherLeftPresence stops counting c in a presence channel it left.
func (g *Gateway) pusherLeftPresence(c *conn, channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.pusher.members {
		if m.channel == channel {
			if pp := g.pusherPresence(); pp != nil {
				pp.MemberLeft(c.App, channel, m.user)
			}
			c.pusher.members = slices.Delete(c.pusher.members, i, i+1)
			return
		}
	}
}

// pusherDetach stops counting a closing Pusher connection in its presence
// channels (its rooms are left by the hub and the lifecycle).
func (g *Gateway) pusherDetach(c *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pp := g.pusherPresence(); pp != nil {
		for _, m := range c.pusher.members {
			pp.MemberLeft(c.App, m.channel, m.user)
		}
	}
	c.pusher.members = nil
}

// pusherClientFrom is who a client event of c on channel comes from: on a
// presence channel, the member (whose id becomes the event's user_id).
func (c *conn) pusherClientFrom(channel string) *hub.Conn {
	if !strings.HasPrefix(channel, pusher.PresencePrefix) {
		return &c.Conn
	}
	c.mu.Lock()
	user := c.pusherMemberOf(channel)
	c.mu.Unlock()
	if user == "" {
		return &c.Conn
	}
	return &hub.Conn{ID: c.ID, App: c.App, User: user}
}
