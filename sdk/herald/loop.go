package herald

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// open makes one connection attempt, resuming after the highest seq
// received.
func (c *Conn) open(ctx context.Context) (*session, error) {
	var token string
	if c.cfg.token != nil {
		var err error
		if token, err = c.cfg.token(ctx); err != nil {
			return nil, fmt.Errorf("herald: getting a token: %w", err)
		}
	}
	u := c.url
	if c.cfg.node != nil {
		if raw, err := c.cfg.node(ctx); err == nil {
			if nu, err := wsURL(raw); err == nil {
				u = *nu
			}
		}
	}
	q := u.Query()
	c.mu.Lock()
	since := c.maxSeq
	c.mu.Unlock()
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	} else {
		q.Del("since")
	}
	u.RawQuery = q.Encode()
	return dialSession(ctx, &u, token, c.cfg.authFrame, c.cfg.timeout)
}

// retry reports whether to reconnect after err. It does not after the
// close codes and refusals the protocol says not to (and after a second
// refused token in a row).
func (c *Conn) retry(err error) bool {
	var ce *CloseError
	var he *Error
	switch {
	case errors.As(err, &ce):
		switch ce.Code {
		case CloseNormal, CloseProtocol, CloseTooLarge, CloseKicked, CloseTooManyConns:
			return false
		case CloseUnauthorized:
			return c.refusedToken()
		}
	case errors.As(err, &he):
		switch he.Status {
		case 401:
			return c.refusedToken()
		case 502, 503, 504:
			return true
		}
		return false
	}
	return true
}

// refusedToken counts a refused token and reports whether a fresh one is
// worth a try.
func (c *Conn) refusedToken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authFails++
	return c.authFails < 2 && c.cfg.fresh
}

// run is the Conn's run loop: it serves each session and reconnects after
// it, until Close or a refusal for good.
func (c *Conn) run(ctx context.Context, s *session) {
	defer close(c.exited)
	defer close(c.events)
	for {
		err := c.serve(ctx, s)
		for n := 0; ; n++ {
			if ctx.Err() != nil {
				c.finish(ErrClosed)
				return
			}
			retry := c.retry(err)
			var delay time.Duration
			if retry {
				delay = c.cfg.backoff.delay(n)
			}
			if c.emit(ctx, &Disconnected{Err: err, Retry: retry, Delay: delay}) != nil {
				continue // closed: finish above
			}
			if !retry {
				c.finish(err)
				return
			}
			if sleep(ctx, delay) != nil {
				continue
			}
			if s, err = c.open(ctx); err == nil {
				break
			}
		}
	}
}

// finish records why the Conn stopped; later calls get ErrClosed.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped, c.err = true, err
}

// emit hands ev to the Events channel, or gives up when the Conn closes.
func (c *Conn) emit(ctx context.Context, ev Event) error {
	select {
	case c.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serve runs one session until it ends; it returns why (nil after Close).
func (c *Conn) serve(ctx context.Context, s *session) error {
	defer s.close()
	go s.read()
	c.begin(s)
	if err := c.emit(ctx, &Connected{Conn: s.welcome.Conn, User: s.welcome.User, Seq: s.welcome.Seq, Heartbeat: s.heartbeat}); err != nil {
		return nil
	}
	ping := time.NewTicker(s.heartbeat)
	defer ping.Stop()
	for {
		if err := c.flush(s); err != nil {
			return err
		}
		var err error
		select {
		case <-ctx.Done():
			_ = c.flush(s) // an Ack just before Close
			s.goodbye()
			return nil
		case <-ping.C:
			err = s.send(clientFrame{Type: "ping"})
		case <-c.kick:
		case f := <-s.frames:
			err = c.handle(ctx, s, f)
		case <-s.readDone:
			return s.readErr
		}
		if err != nil {
			return err
		}
	}
}

// begin starts a session's state: the inbox replay comes first, then the
// joins of every room the Conn is in.
func (c *Conn) begin(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authFails = 0
	c.reqs = c.reqs[:0]
	for _, room := range slices.Sorted(maps.Keys(c.rooms)) {
		c.reqs = append(c.reqs, &req{kind: "join", room: room, since: c.rooms[room].since})
	}
	s.inflight = &req{kind: "resume", first: true}
}

// flush sends what the session owes the server: an ack, and the next
// request when none is awaiting its answer.
func (c *Conn) flush(s *session) error {
	var ack uint64
	var next *req
	c.mu.Lock()
	switch want := c.ackWant; {
	case want <= c.ackDone:
	case want <= s.seen:
		ack, c.ackDone = want, want
	case s.ready && s.inflight == nil && !s.ackAsked:
		// want came on an earlier session, and the server takes an ack
		// only for a seq it sent on this one: have it sent again (the
		// duplicate is dropped).
		since := want - 1
		next = &req{kind: "resume", since: &since, forAck: true}
		s.ackAsked = true
	}
	if next == nil && s.ready && s.inflight == nil && len(c.reqs) > 0 {
		next = c.reqs[0]
		c.reqs = c.reqs[1:]
	}
	c.mu.Unlock()
	if ack > 0 {
		if err := s.send(clientFrame{Type: "ack", Seq: ack}); err != nil {
			return err
		}
	}
	if next == nil {
		return nil
	}
	s.inflight = next
	return s.send(clientFrame{Type: next.kind, Room: next.room, Since: next.since})
}

// handle acts on one frame of the session.
func (c *Conn) handle(ctx context.Context, s *session, f *serverFrame) error {
	r := s.inflight
	switch f.Type {
	case "push":
		return c.onPush(ctx, s, f.Msgs)
	case "resumed":
		switch {
		case r != nil && r.kind == "resume" && f.Room == "":
			s.inflight, s.ready = nil, true
			if r.forAck {
				c.ackMoot(s)
			}
		case r != nil && r.kind == "join" && r.room == f.Room:
			s.inflight = nil
		}
		return c.emit(ctx, &Resumed{Room: f.Room, Since: f.Since, To: f.To, Complete: f.Complete})
	case "joined":
		if r != nil && r.kind == "join" && r.room == f.Room {
			if r.since == nil {
				s.inflight = nil
			} else {
				r.joined = true
			}
		}
		return c.emit(ctx, &Joined{Room: f.Room, Members: f.Members, More: f.More})
	case "left":
		if r != nil && r.kind == "leave" && r.room == f.Room {
			s.inflight = nil
		}
		return c.emit(ctx, &Left{Room: f.Room})
	case "recall":
		return c.emit(ctx, &Recall{ID: f.ID})
	case "presence":
		return c.emit(ctx, &Presence{Room: f.Room, Join: f.Join, Leave: f.Leave})
	case "error":
		return c.onError(ctx, s, f)
	}
	return nil // pong, and frame types added later
}

// ackMoot ends an ack the replay could not make acceptable: the server's
// acked position is already past it (or the message is gone).
func (c *Conn) ackMoot(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ackWant > s.seen {
		c.ackDone = max(c.ackDone, c.ackWant)
	}
}

// onPush delivers a push frame's messages, each once: by seq for stored
// messages, by id for the others (and for a stored message's second copy
// through a room that keeps history).
func (c *Conn) onPush(ctx context.Context, s *session, msgs []wireMessage) error {
	var top uint64
	for i := range msgs {
		m := &msgs[i]
		fresh := c.dedup.id(m.ID)
		c.mu.Lock()
		if m.Seq > 0 {
			fresh = c.dedup.seq(m.Seq) && fresh
			s.seen = max(s.seen, m.Seq)
			c.maxSeq = max(c.maxSeq, m.Seq)
			top = max(top, m.Seq)
		}
		if r := c.rooms[m.Room]; r != nil && m.Pos > 0 && (r.since == nil || *r.since < m.Pos) {
			pos := m.Pos
			r.since = &pos
		}
		c.mu.Unlock()
		if !fresh {
			continue
		}
		ev := &Message{ID: m.ID, Seq: m.Seq, Room: m.Room, Pos: m.Pos, From: m.From, Event: m.Event, Data: m.Data, Time: time.UnixMilli(m.TS)}
		if err := c.emit(ctx, ev); err != nil {
			return err
		}
	}
	if c.cfg.autoAck && top > 0 {
		c.mu.Lock()
		c.ackWant = max(c.ackWant, top)
		c.mu.Unlock()
	}
	return nil
}

// onError takes an error frame as the answer to the request in flight.
func (c *Conn) onError(ctx context.Context, s *session, f *serverFrame) error {
	r := s.inflight
	s.inflight = nil
	ev := &RequestError{Code: f.Code, Reason: f.Reason}
	if r != nil {
		ev.Op, ev.Room = r.kind, r.room
	}
	switch {
	case r == nil:
	case r.kind == "resume" && r.first && f.Code == ErrCodeInvalidArgument:
		// The since of the connect is beyond the inbox's latest seq: this
		// inbox is not the one the Conn saw (its data was lost). Start over
		// from the acked position.
		c.mu.Lock()
		c.maxSeq, c.ackWant, c.ackDone = 0, 0, 0
		c.mu.Unlock()
		c.dedup.reset(0)
		var zero uint64
		s.inflight = &req{kind: "resume", since: &zero}
		if err := s.send(clientFrame{Type: "resume", Since: &zero}); err != nil {
			return err
		}
	case r.kind == "resume":
		// The inbox could not be read: reconnect and resume.
		_ = c.emit(ctx, ev)
		return ev
	case r.kind == "join" && !r.joined:
		c.mu.Lock()
		delete(c.rooms, r.room)
		c.mu.Unlock()
	case r.kind == "join":
		// In the room, but it has no history from that position: later
		// rejoins are plain ones.
		c.mu.Lock()
		if rs := c.rooms[r.room]; rs != nil {
			rs.since = nil
		}
		c.mu.Unlock()
	}
	return c.emit(ctx, ev)
}
