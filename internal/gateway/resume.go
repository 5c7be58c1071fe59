package gateway

import (
	"context"
	"slices"
	"strconv"

	"github.com/heraldpush/herald/internal/protocol"
)

// greeting is what a connection holds while its inbox is replayed: live
// frames that arrive meanwhile wait here, so that they follow the replay.
type greeting struct {
	held  []*protocol.Outgoing
	bytes int
}

// hold starts holding live frames (caller: the connection's registration or
// its resume frame). It reports false if a replay is already running.
func (c *conn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.greet != nil {
		return false
	}
	c.greet = &greeting{}
	return true
}

// release ends a replay: held frames go to the queue after it, except stored
// messages the replay already sent: those of room ("" for the user's inbox)
// up to position replayed. After an inbox replay, held inbox messages pass
// without a gap check (what the inbox did not return is gone); after a room
// replay they are checked (see inOrder).
func (c *conn) release(room string, replayed uint64) {
	c.mu.Lock()
	g := c.greet
	c.greet = nil
	if room == "" {
		c.pos = max(c.pos, replayed)
	}
	if g == nil || c.closed {
		c.mu.Unlock()
		return
	}
	out := make([]*protocol.Outgoing, 0, len(g.held))
	for _, f := range g.held {
		if f.Seq > 0 && f.Room == room && f.Seq <= replayed {
			continue // the replay sent it
		}
		if room == "" && f.Room == "" && f.Seq > 0 {
			if f.Seq <= c.pos {
				continue
			}
			c.pos = f.Seq
		}
		out = append(out, f)
	}
	if room != "" {
		out = c.inOrder(out)
	}
	for _, f := range out {
		c.queue = append(c.queue, f)
		c.queued += len(f.Frame)
		if f.Room == "" && f.Seq > c.sentSeq {
			c.sentSeq = f.Seq
		}
	}
	start := len(out) > 0 && !c.writing
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		c.wire.schedule()
	}
}

// inOrder passes live frames on in the order of the user's inbox: it drops
// stored messages the connection already has (a replay sent them before
// their live copies arrived), and at a stored message that skips one (its
// live copy was lost, e.g. while this node's engine connection was down)
// it holds that frame and those after it, and fills the gap from the
// inbox. It returns the frames to queue now. Caller holds c.mu, with no
// replay running.
func (c *conn) inOrder(frames []*protocol.Outgoing) []*protocol.Outgoing {
	keep := frames
	for i, f := range frames {
		stored := f.Room == "" && f.Seq > 0
		switch {
		case stored && f.Seq > c.pos+1:
			held := slices.Clone(frames[i:])
			c.greet = &greeting{held: held}
			for _, h := range held {
				c.greet.bytes += len(h.Frame)
			}
			go c.g.fill(c, c.pos)
			if len(keep) == len(frames) {
				return frames[:i]
			}
			return keep
		case stored && f.Seq <= c.pos:
			if len(keep) == len(frames) {
				keep = slices.Clone(frames[:i]) // frames may be shared with other connections
			}
			continue
		case stored:
			c.pos = f.Seq
		}
		if len(keep) < len(frames) {
			keep = append(keep, f)
		}
	}
	return keep
}

// fill sends what the inbox holds after pos, then the frames held since
// (the caller started holding them).
func (g *Gateway) fill(c *conn, pos uint64) {
	ctx, cancel := g.engineCtx()
	defer cancel()
	last, _, _ := g.sendStored(ctx, c, pos)
	c.release("", last)
}

// CatchUp makes every connection fetch from its inbox what it may have
// missed: call it when the engine connection is back after a break, as
// the live copies published meanwhile reached no one here. A connection
// with a replay running is left to it. At most catchUpParallel
// connections catch up at once (each holding its live frames meanwhile);
// CatchUp returns at once, its goroutine ends when the last has caught up.
func (g *Gateway) CatchUp() {
	go func() {
		sem := make(chan struct{}, catchUpParallel)
		g.each(func(c *conn) {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				c.mu.Lock()
				start := c.hubbed && !c.closed && c.greet == nil
				pos := c.pos
				if start {
					c.greet = &greeting{}
				}
				c.mu.Unlock()
				if start {
					g.fill(c, pos)
				}
			}()
		})
	}()
}

// catchUpParallel bounds the inbox reads of CatchUp.
const catchUpParallel = 32

// greet welcomes a registered connection with its inbox's latest sequence,
// replays what it missed, and then lets live frames through. Then it joins
// the rooms asked for at connect, one at a time, as join frames would.
func (g *Gateway) greet(c *conn, since *uint64, rooms []roomAt) {
	ctx, cancel := g.engineCtx()
	defer cancel()
	latest, acked, err := g.stored.state(ctx, c.App, c.User)
	if err != nil {
		g.log.Warn("reading inbox state", "err", err)
		c.close(protocol.CloseDraining, "inbox unavailable; reconnect")
		return
	}
	c.sendNow(protocol.NewText(protocol.Welcome(c.ID, c.User, int(max(1e9, g.cfg.Heartbeat)/1e9), latest)))
	c.release("", g.replay(ctx, c, since, latest, acked))
	for _, r := range rooms {
		if c.isClosed() {
			return
		}
		if r.since == nil {
			g.clientJoin(c, r.name, nil)
			continue
		}
		if !g.joinRefused(c, r.name) && c.hold() {
			g.join(&c.Conn, r.name)
			g.roomReplay(c, r.name, *r.since) // before the next room's
		}
	}
}

// roomAt is a room to join at connect; since is the history position for
// a room that keeps history (nil: a plain join).
type roomAt struct {
	name  string
	since *uint64
}

// resume answers a resume frame: replay after since, then live frames.
func (g *Gateway) resume(c *conn, since uint64) {
	if !c.hold() {
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "a replay is already running")
		return
	}
	go func() {
		ctx, cancel := g.engineCtx()
		defer cancel()
		latest, acked, err := g.stored.state(ctx, c.App, c.User)
		if err != nil {
			g.errorFrame(c, protocol.ErrCodeInvalidArgument, "inbox unavailable; retry")
			c.release("", 0)
			return
		}
		c.release("", g.replay(ctx, c, &since, latest, acked))
	}()
}

// replay sends the stored messages after max(since, acked), then the
// resumed frame (or error 4007 for a since beyond latest). It returns the
// position the connection is complete up to: the last seq sent, or latest
// if that is higher (messages up to latest that the inbox did not return
// are gone).
func (g *Gateway) replay(ctx context.Context, c *conn, since *uint64, latest, acked uint64) uint64 {
	from := acked
	if since != nil {
		if *since > latest {
			g.errorFrame(c, protocol.ErrCodeInvalidArgument, "since "+strconv.FormatUint(*since, 10)+
				" is beyond the latest seq "+strconv.FormatUint(latest, 10))
			return latest
		}
		from = max(from, *since)
	}
	after, complete, ok := g.sendStored(ctx, c, from)
	if !ok {
		return after
	}
	to := max(after, latest)
	if after > from {
		to = after
	}
	c.sendNow(protocol.NewText(protocol.Resumed(from, to, complete)))
	return max(after, latest)
}

// sendStored sends the user's stored messages after `after`, page by page,
// and returns the last seq sent (after, if none), whether none was missing,
// and false if it stopped early: an inbox it cannot read closes the
// connection with 4000, and a connection that is closed or not reading
// gets no more.
func (g *Gateway) sendStored(ctx context.Context, c *conn, after uint64) (last uint64, complete, ok bool) {
	complete = true
	for {
		frames, pageComplete, more, err := g.stored.page(ctx, c.App, c.User, after)
		if err != nil {
			// Not a loss: the messages are stored, only unreadable now.
			// The client reconnects (4000) and resumes from what it has.
			g.log.Warn("replaying inbox", "err", err)
			c.close(protocol.CloseDraining, "inbox unavailable; reconnect and resume")
			return after, false, false
		}
		complete = complete && pageComplete
		if len(frames) > 0 {
			after = frames[len(frames)-1].Seq
			if !c.sendPaced(frames) {
				return after, complete, false // closed, or not reading: it reconnects and resumes
			}
			g.stored.delivered(c.App, c.User, after)
		}
		if !more {
			return after, complete, true
		}
	}
}

// ack records a client's ack off the read loop; an ack of a seq never sent
// to the connection is ignored and counted. Acks that arrive while one
// is being stored collapse into the highest, so a client acking in a loop
// costs one engine call at a time.
func (g *Gateway) ack(c *conn, seq uint64) {
	c.mu.Lock()
	if seq > c.sentSeq {
		c.mu.Unlock()
		g.metrics.AckIgnored() // never sent to this connection
		return
	}
	c.ackTo = max(c.ackTo, seq)
	start := !c.acking
	c.acking = true
	c.mu.Unlock()
	if !start {
		return
	}
	go func() {
		for {
			c.mu.Lock()
			seq := c.ackTo
			c.ackTo = 0
			if seq == 0 {
				c.acking = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			ctx, cancel := g.engineCtx()
			ok, err := g.stored.ack(ctx, c.App, c.User, seq)
			if err == nil && ok {
				g.stored.acked(ctx, c.App, c.User, seq)
			}
			cancel()
			switch {
			case err != nil:
				g.log.Warn("storing ack", "err", err)
			case !ok:
				g.metrics.AckIgnored()
			}
		}
	}()
}

// roomReplay sends what a rejoining client missed of a room's history
// (after the joined frame), then the room's resumed frame, then releases
// the live frames held since the join.
func (g *Gateway) roomReplay(c *conn, room string, since uint64) {
	ctx, cancel := g.engineCtx()
	defer cancel()
	c.sendNow(protocol.NewText(g.joinedFrame(ctx, &c.Conn, room)))
	frames, resumed, last, ok, err := g.stored.room(ctx, c.App, room, since)
	switch {
	case err != nil:
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, err.Error())
	case !ok:
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "room "+strconv.Quote(room)+" keeps no history")
	default:
		if c.sendPaced(frames) {
			c.sendNow(protocol.NewText(resumed))
		}
	}
	c.release(room, last)
}
