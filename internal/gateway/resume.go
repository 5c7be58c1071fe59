package gateway

import (
	"context"
	"strconv"

	"github.com/heraldpush/herald/internal/protocol"
)

// replayPage is how many stored messages one inbox read returns.
const replayPage = 500

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
// up to position replayed.
func (c *conn) release(room string, replayed uint64) {
	c.mu.Lock()
	g := c.greet
	c.greet = nil
	if g == nil || c.closed {
		c.mu.Unlock()
		return
	}
	start := false
	for _, f := range g.held {
		if f.Seq > 0 && f.Room == room && f.Seq <= replayed {
			continue // the replay sent it
		}
		c.queue = append(c.queue, f)
		c.queued += len(f.Frame)
		start = true
	}
	start = start && !c.writing
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		c.g.schedule(c)
	}
}

// greet welcomes a registered connection with its inbox's latest sequence,
// replays what it missed, and then lets live frames through.
func (g *Gateway) greet(c *conn, since *uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.EngineTimeout)
	defer cancel()
	latest, acked, err := g.inbox.State(ctx, c.App, c.User)
	if err != nil {
		g.log.Warn("reading inbox state", "err", err)
		c.close(protocol.CloseDraining, "inbox unavailable; reconnect")
		return
	}
	c.sendNow(protocol.NewText(protocol.Welcome(c.ID, c.User, int(max(1e9, g.cfg.Heartbeat)/1e9), latest)))
	c.release("", g.replay(ctx, c, since, latest, acked))
}

// resume answers a resume frame: replay after since, then live frames.
func (g *Gateway) resume(c *conn, since uint64) {
	if !c.hold() {
		g.errorFrame(c, protocol.ErrCodeInvalidArgument, "a replay is already running")
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.EngineTimeout)
		defer cancel()
		latest, acked, err := g.inbox.State(ctx, c.App, c.User)
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
// last sequence it sent.
func (g *Gateway) replay(ctx context.Context, c *conn, since *uint64, latest, acked uint64) uint64 {
	from := acked
	if since != nil {
		if *since > latest {
			g.errorFrame(c, protocol.ErrCodeInvalidArgument, "since "+strconv.FormatUint(*since, 10)+
				" is beyond the latest seq "+strconv.FormatUint(latest, 10))
			return 0
		}
		from = max(from, *since)
	}
	after, complete := from, true
	for {
		page, err := g.inbox.Read(ctx, c.App, c.User, after, replayPage)
		if err != nil {
			// Not a loss: the messages are stored, only unreadable now.
			// The client reconnects (4000) and resumes from what it has.
			g.log.Warn("replaying inbox", "err", err)
			c.close(protocol.CloseDraining, "inbox unavailable; reconnect and resume")
			return after
		}
		complete = complete && page.Complete
		frames := make([]*protocol.Outgoing, len(page.Msgs))
		for i, m := range page.Msgs {
			frames[i] = protocol.NewPush(protocol.AppendWithSeq(nil, m.Payload, m.Seq))
			frames[i].Seq = m.Seq
			after = m.Seq
		}
		if len(frames) > 0 {
			if !c.sendPaced(frames) {
				return after // closed, or not reading: it reconnects and resumes
			}
			g.delivered(c.App, c.User, after)
		}
		if len(page.Msgs) < replayPage {
			break
		}
	}
	to := max(after, latest)
	if after > from {
		to = after
	}
	c.sendNow(protocol.NewText(protocol.Resumed(from, to, complete)))
	return after
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
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.EngineTimeout)
			ok, err := g.inbox.Ack(ctx, c.App, c.User, seq)
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
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.EngineTimeout)
	defer cancel()
	c.sendNow(protocol.NewText(protocol.Joined(room)))
	frames, resumed, last, ok, err := g.sender.RoomReplay(ctx, c.App, room, since)
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
