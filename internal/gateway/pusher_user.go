package gateway

import (
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/pusher"
)

// pusherSignin handles pusher:signin: a valid user authentication makes c
// the user's (it joins the room #server-to-user-<id>, where sendToUser
// and terminate_connections find it), answers pusher:signin_success, and
// hands over what the user's inbox holds (offline pushes), in order, as
// events on that channel.
func (g *Gateway) pusherSignin(c *conn, s pusher.Signin) {
	app := c.pusher.app
	// A refused sign-in closes the connection with 4009, as Pusher does
	// (pusher-js then stays disconnected).
	refuse := func(msg string) {
		g.metrics.AuthRefused(false)
		c.sendNow(protocol.NewText(pusher.Error(pusher.CodeTerminated, msg)))
		c.close(pusher.CodeTerminated, msg)
	}
	if !pusher.UserAuthOK(app.Key, app.Secret, s.Auth, c.ID, s.UserData) {
		refuse("invalid signature for socket " + c.ID + " and user_data")
		return
	}
	m, err := pusher.ParseUserData(s.UserData)
	if err != nil || !pusher.ValidChannel(pusher.UserPrefix+m.ID) {
		refuse("user_data must be a JSON object with a string id")
		return
	}
	c.mu.Lock()
	was := c.pusher.user
	if was == nil {
		c.pusher.user = &m
	}
	c.mu.Unlock()
	if was != nil {
		if was.ID == m.ID {
			c.sendNow(protocol.NewText(pusher.SigninSuccess(s.UserData)))
		} else {
			refuse("already signed in as another user")
		}
		return
	}
	held := c.hold()
	go g.pusherSignedIn(c, m.ID, s.UserData, held)
}

// pusherSignedIn completes a signin off the read loop.
func (g *Gateway) pusherSignedIn(c *conn, user, userData string, held bool) {
	room := pusher.UserPrefix + user
	if !g.join(&c.Conn, room) {
		if held {
			c.release(room, 0)
		}
		c.sendNow(protocol.NewText(pusher.Error(pusher.CodeTerminated, "could not sign in now; retry")))
		return
	}
	c.sendNow(protocol.NewText(pusher.SigninSuccess(userData)))
	g.pusherInbox(c, user)
	if held {
		c.release(room, 0)
	}
}

// pusherInbox sends c the messages stored for user after the acked
// position, as events on #server-to-user-<id>, and acks them: a Pusher
// client has no acks, so a message handed to it counts as read.
func (g *Gateway) pusherInbox(c *conn, user string) {
	ctx, cancel := g.engineCtx()
	defer cancel()
	_, acked, err := g.stored.state(ctx, c.App, user)
	for more := err == nil; more && err == nil; {
		var frames []*protocol.Outgoing
		frames, _, more, err = g.stored.page(ctx, c.App, user, acked)
		if err != nil || len(frames) == 0 {
			break
		}
		out := make([]*protocol.Outgoing, 0, len(frames))
		for _, f := range frames {
			if b := pusher.FromUserMessage(user, f.Msg); b != nil {
				out = append(out, protocol.NewText(b))
			}
			acked = f.Seq
		}
		if !c.sendPaced(out) {
			return
		}
		g.stored.delivered(c.App, user, acked)
		if _, err = g.stored.ack(ctx, c.App, user, acked); err == nil {
			g.stored.acked(ctx, c.App, user, acked)
		}
	}
	if err != nil {
		g.log.Warn("reading a signed-in Pusher user's inbox", "app", c.App, "user", user, "err", err)
	}
}
