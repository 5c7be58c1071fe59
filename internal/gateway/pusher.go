package gateway

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/pusher"
)

// PusherApp is an app's Pusher identity, as the gateway needs it.
type PusherApp struct {
	App          string // the Herald app
	Key          string
	Secret       string
	ClientEvents bool // client- events allowed on private channels
}

// PusherEvents publishes a Pusher client's client- event to the room of
// its channel, to everyone but the sender (the push service implements
// it).
type PusherEvents interface {
	ClientEvent(ctx context.Context, from *hub.Conn, room, event string, data json.RawMessage) error
}

// pusherState is what a Pusher connection holds beyond a native one.
type pusherState struct {
	app     *PusherApp
	user    *pusher.Member // signed in as (pusher:signin); guarded by conn.mu
	members []pusherMember // presence channels joined; guarded by conn.mu
}

// ServePusher upgrades GET /app/{key}: a Pusher Channels client. Its
// channels are the app's rooms of the same name; the connection is a
// Herald connection of user "pusher-<socket_id>" whose frames are
// encoded in Pusher's format.
func (g *Gateway) ServePusher(w http.ResponseWriter, r *http.Request) {
	if !g.Accepting() {
		httpError(w, apierr.Unavailable, "node is draining or shutting down; connect to another node")
		return
	}
	if !g.originAllowed(r.Header.Get("Origin")) {
		httpError(w, apierr.Forbidden, "origin not allowed")
		return
	}
	app, known := g.cfg.Pusher[r.PathValue("key")]
	if !known {
		app = &PusherApp{}
	}
	nc, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		return
	}
	c, err := g.adopt(nc)
	if err != nil {
		g.refuseAdopted(nc, err)
		return
	}
	c.pusher = &pusherState{app: app}
	var early []byte // frames that came with the upgrade request
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	// A refusal is a pusher:error frame and a close with the same code,
	// as Pusher does: pusher-js decides from the close code.
	refuse := func(code int, msg string) {
		c.sendNow(protocol.NewText(pusher.Error(code, msg)))
		_ = c.poller.add(c)
		c.close(code, msg)
	}
	proto := r.URL.Query().Get("protocol")
	switch v, perr := strconv.Atoi(proto); {
	case !known:
		g.metrics.AuthRefused(false)
		refuse(pusher.CodeUnknownApp, "App key "+r.PathValue("key")+" not in this cluster")
		return
	case proto == "":
		refuse(pusher.CodeNoProtocol, "No protocol version supplied")
		return
	case perr != nil || v < 5 || v > 7:
		refuse(pusher.CodeUnsupported, "Unsupported protocol version "+proto)
		return
	}
	g.pusherRegister(c)
	if len(early) > 0 {
		c.consume(early)
	}
	if err := c.poller.add(c); err != nil && !c.isClosed() {
		c.fail()
	}
	if code := g.closing.Load(); code != 0 {
		c.close(int(code), "server shutting down")
	}
}

// pusherRegister makes a Pusher connection addressable and sends
// pusher:connection_established.
func (g *Gateway) pusherRegister(c *wsConn) {
	n := g.next.Add(1)
	c.ID = g.pusherNode() + "." + strconv.FormatUint(n, 10)
	c.App, c.User, c.Device = c.pusher.app.App, "pusher-"+c.ID, pusher.Device
	c.Since = time.Now().UnixMilli()
	if !g.watchIdentity(&c.conn) {
		return
	}
	g.hub.Add(&c.Conn)
	c.mu.Lock()
	closed := c.closed
	c.hubbed = !closed
	c.mu.Unlock()
	if closed {
		g.unregister(&c.conn)
		return
	}
	c.authed.Store(true)
	g.metrics.Connected()
	if g.cfg.Lifecycle != nil {
		g.cfg.Lifecycle.Opened(&c.Conn)
	}
	c.sendNow(protocol.NewText(pusher.ConnectionEstablished(c.ID, g.activityTimeout())))
}

// pusherNode is this node's part of its socket ids: digits, as Pusher's
// server SDKs require (^\d+\.\d+$).
func (g *Gateway) pusherNode() string {
	h := fnv.New32a()
	h.Write([]byte(g.cfg.NodeID))
	return strconv.FormatUint(uint64(h.Sum32()), 10)
}

// activityTimeout is the idle time (seconds) after which pusher-js pings:
// Herald's heartbeat interval.
func (g *Gateway) activityTimeout() int { return max(1, int(g.cfg.Heartbeat/time.Second)) }

// pusherCloseCode maps Herald's close codes to Pusher's for the close frame:
// pusher-js never reconnects after 4001–4099 and treats 4000 as "TLS only".
func pusherCloseCode(code int) int {
	switch code {
	case protocol.CloseDraining:
		return pusher.CodeReconnect
	case protocol.CloseSlowConsumer:
		return pusher.CodeOverCapacity
	case protocol.CloseHeartbeat:
		return pusher.CodePongTimeout
	case protocol.CloseKicked, protocol.CloseTooManyConns:
		return pusher.CodeTerminated
	}
	return code
}

// pusherFrames turns frames queued for a native connection into the
// Pusher connection's: push messages of a room become that channel's
// event (encoded once per push, shared), presence notices of presence-
// channels member_added/member_removed (shared too), WebSocket control
// frames pass, Herald's own notices (joined, left, welcome) are dropped.
// The answer is appended to dst.
func pusherFrames(dst, frames []*protocol.Outgoing) []*protocol.Outgoing {
	out := dst
	for _, f := range frames {
		switch {
		case f.Msg != nil:
			if a := f.Alt(pusherPush); !a.IsNone() {
				out = append(out, a)
			}
		case len(f.Frame) > 0 && f.Frame[0]&0x08 != 0: // a control frame
			out = append(out, f)
		default:
			if a := f.Alt(pusherNotice); !a.IsNone() {
				out = append(out, a)
			}
		}
	}
	return out
}

// pusherBufs holds the slices sendPusher converts a burst into; enqueue
// copies what it keeps.
var pusherBufs = sync.Pool{New: func() any { return new([]*protocol.Outgoing) }}

// sendPusher is Send for a Pusher connection: the frames are converted
// in a pooled slice, so a fan-out delivery allocates nothing.
func (c *conn) sendPusher(frames []*protocol.Outgoing) {
	buf := pusherBufs.Get().(*[]*protocol.Outgoing)
	out := c.pusherOthers(pusherFrames((*buf)[:0], frames))
	if len(out) > 0 {
		c.enqueue(out, false)
	}
	if cap(out) <= 1024 { // a rare huge burst is left to the collector
		clear(out)
		*buf = out[:0]
	}
	pusherBufs.Put(buf)
}

func pusherPush(f *protocol.Outgoing) *protocol.Outgoing {
	b := pusher.FromMessage(f.Msg)
	if b == nil {
		return nil
	}
	return protocol.NewText(b)
}

// pusherNotice is the member event of a presence notice, with the channel
// and user it is about in Room and Member.
func pusherNotice(f *protocol.Outgoing) *protocol.Outgoing {
	b, channel, user := pusher.FromPresence(protocol.Payload(f.Frame))
	if b == nil {
		return nil
	}
	a := protocol.NewText(b)
	a.Room, a.Member = channel, user
	return a
}

// pusherOthers leaves out of frames the member events about c's own
// member of their channel: Pusher tells a member of the others only. It
// returns frames itself when there is none (the common case).
func (c *conn) pusherOthers(frames []*protocol.Outgoing) []*protocol.Outgoing {
	for i, f := range frames {
		if f.Member != "" && c.pusherIsMe(f) {
			out := slices.Clone(frames[:i])
			for _, f := range frames[i+1:] {
				if f.Member == "" || !c.pusherIsMe(f) {
					out = append(out, f)
				}
			}
			return out
		}
	}
	return frames
}

// pusherIsMe reports whether member event a is about c's own member.
func (c *conn) pusherIsMe(a *protocol.Outgoing) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pusherMemberOf(a.Room) == a.Member
}

// pusherText handles a Pusher client frame.
func (g *Gateway) pusherText(c *conn, payload []byte) {
	f, err := pusher.Decode(payload)
	if err != nil {
		c.sendNow(protocol.NewText(pusher.Error(pusher.CodeClientEventError, "could not parse the frame: "+err.Error())))
		return
	}
	switch {
	case f.Event == "pusher:ping":
		c.sendNow(protocol.NewText(pusher.Pong))
	case f.Event == "pusher:pong":
	case f.Event == "pusher:subscribe":
		g.pusherSubscribe(c, f.Data)
	case f.Event == "pusher:unsubscribe":
		var s pusher.Subscribe
		if pusher.DecodeData(f.Data, &s) != nil || strings.HasPrefix(s.Channel, pusher.UserPrefix) {
			return // the user's channel is its sign-in: it stays
		}
		if g.hub.Leave(&c.Conn, s.Channel) {
			g.unwatch(engine.Topic{Kind: engine.Room, App: c.App, Name: s.Channel})
			g.pusherLeftPresence(c, s.Channel)
			if g.cfg.Lifecycle != nil {
				g.cfg.Lifecycle.Left(&c.Conn, s.Channel)
			}
		}
	case f.Event == "pusher:signin":
		var s pusher.Signin
		if err := pusher.DecodeData(f.Data, &s); err != nil {
			c.sendNow(protocol.NewText(pusher.Error(pusher.CodeTerminated, "pusher:signin needs auth and user_data")))
			return
		}
		g.pusherSignin(c, s)
	case strings.HasPrefix(f.Event, "client-"):
		g.pusherClientEvent(c, f)
	default:
		c.sendNow(protocol.NewText(pusher.Error(pusher.CodeClientEventError, "unsupported event "+strconv.Quote(f.Event))))
	}
}

func (g *Gateway) pusherSubscribe(c *conn, data json.RawMessage) {
	var s pusher.Subscribe
	if err := pusher.DecodeData(data, &s); err != nil || !pusher.ValidChannel(s.Channel) {
		c.sendNow(protocol.NewText(pusher.SubscriptionError(s.Channel, "InvalidChannel", "invalid channel name", 400)))
		return
	}
	app := c.pusher.app
	authError := func(msg string) {
		g.metrics.AuthRefused(false)
		c.sendNow(protocol.NewText(pusher.SubscriptionError(s.Channel, "AuthError", msg, 401)))
	}
	var member pusher.Member
	switch {
	case strings.HasPrefix(s.Channel, pusher.UserPrefix):
		c.mu.Lock()
		user := c.pusher.user
		c.mu.Unlock()
		if user == nil || s.Channel != pusher.UserPrefix+user.ID {
			authError("only a connection signed in as that user may subscribe to " + s.Channel)
			return
		}
		c.sendNow(protocol.NewText(pusher.SubscriptionSucceeded(s.Channel))) // joined at the sign-in
		return
	case strings.HasPrefix(s.Channel, pusher.PresencePrefix):
		if !pusher.ChannelAuthOK(app.Key, app.Secret, s.Auth, c.ID, s.Channel, s.ChannelData) {
			authError("invalid signature for socket " + c.ID + ", channel " + s.Channel + " and its channel_data")
			return
		}
		var err error
		if member, err = g.pusherPresenceMember(c, s.ChannelData); err != nil {
			authError(err.Error())
			return
		}
	case strings.HasPrefix(s.Channel, pusher.PrivatePrefix): // private-encrypted- too: Herald only relays
		if !pusher.ChannelAuthOK(app.Key, app.Secret, s.Auth, c.ID, s.Channel, "") {
			authError("invalid signature for socket " + c.ID + " and channel " + s.Channel)
			return
		}
	}
	rooms := g.hub.Rooms(&c.Conn)
	if slices.Contains(rooms, s.Channel) {
		if member.ID == "" { // a presence channel answers when its join is done
			c.sendNow(protocol.NewText(pusher.SubscriptionSucceeded(s.Channel)))
		}
		return
	}
	if len(rooms) >= g.cfg.MaxRooms {
		c.sendNow(protocol.NewText(pusher.SubscriptionError(s.Channel, "LimitReached", "connection is in the maximum of "+strconv.Itoa(g.cfg.MaxRooms)+" channels", 400)))
		return
	}
	if member.ID != "" {
		go g.pusherJoinPresence(c, s.Channel, member)
		return
	}
	if !g.join(&c.Conn, s.Channel) {
		c.sendNow(protocol.NewText(pusher.SubscriptionError(s.Channel, "Unavailable", "could not subscribe now; retry", 503)))
		return
	}
	c.sendNow(protocol.NewText(pusher.SubscriptionSucceeded(s.Channel)))
}

// pusherClientEvent publishes a client- event: only on a private (not
// encrypted) or presence channel the connection is subscribed to, when the
// app allows client events, within the send rate. A refusal is a pusher:error frame; the connection
// stays open.
func (g *Gateway) pusherClientEvent(c *conn, f pusher.Frame) {
	refuse := func(code int, msg string) {
		g.metrics.ClientError(code)
		c.sendNow(protocol.NewText(pusher.Error(code, msg)))
	}
	switch {
	case !c.pusher.app.ClientEvents:
		refuse(pusher.CodeClientEventError, "client events are not enabled for this app")
		return
	case strings.HasPrefix(f.Channel, pusher.EncryptedPrefix):
		refuse(pusher.CodeClientEventError, "client events are not allowed on encrypted channels")
		return
	case !strings.HasPrefix(f.Channel, pusher.PrivatePrefix) && !strings.HasPrefix(f.Channel, pusher.PresencePrefix):
		refuse(pusher.CodeClientEventError, "client events are only allowed on private and presence channels")
		return
	case !pusher.ValidEvent(f.Event):
		refuse(pusher.CodeClientEventError, "invalid event name")
		return
	case !slices.Contains(g.hub.Rooms(&c.Conn), f.Channel):
		refuse(pusher.CodeClientEventError, "not subscribed to "+f.Channel)
		return
	case len(f.Data) > g.cfg.MaxFrame:
		refuse(pusher.CodeClientEventError, "event data too large")
		return
	}
	if sec := uint32(g.now() / 1000); sec != c.sendSec {
		c.sendSec, c.sendCount = sec, 0
	}
	if c.sendCount++; c.sendCount > uint32(g.cfg.SendRate) {
		refuse(pusher.CodeClientEventRate, "more than "+strconv.Itoa(g.cfg.SendRate)+" client events per second")
		return
	}
	if _, ok := g.sender.(PusherEvents); !ok {
		refuse(pusher.CodeClientEventError, "client events are not available")
		return
	}
	data := f.Data
	if len(data) == 0 {
		data = json.RawMessage(`null`)
	}
	// Off the read loop and in order, as native sends (publishSends).
	c.mu.Lock()
	c.sends = append(c.sends, protocol.ClientFrame{Room: f.Channel, Event: f.Event, Data: data})
	start := !c.sending
	c.sending = true
	c.mu.Unlock()
	if start {
		go g.publishSends(c)
	}
}
