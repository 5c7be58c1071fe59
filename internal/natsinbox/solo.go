package natsinbox

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldpush/herald/internal/engine"
)

// # A single writer's appends
//
// With Config.Exclusive this process is the stream's only writer, so
// it assigns seqs itself: the index holds every inbox's latest seq once
// known (read from the stream on the inbox's first append after Start),
// and an append takes the next seq under the index shard's lock and, under
// that lock still, publishes the message to .q.m. Publishes go out in that
// order on one connection, so .q.m stays in seq order along the stream.
// Each message is thus one write, with no read and no compare-and-swap.
//
// The head no longer makes a message durable; it only keeps the latest seq
// once every message has left the stream. It is written lazily: an append
// sets the inbox's head deadline in the index to half its message's TTL
// from now (JetStream keeps each message soloGrace beyond its expiry; the
// expiry itself is the record's, checked by every read), and headFlusher
// writes the heads whose deadline has passed, every
// Config.HeadDelay, and every pending head when the Inbox closes. An
// inbox that keeps getting messages never needs its head written; until
// it is, a reader takes the latest seq from the last message, as always
// (userState.latest). Should the process die with heads pending, Start
// repairs them: it finds an unclean stop from the writer marker and
// rewrites every head that is behind its inbox's last message (the
// messages are still there unless the process stayed down for longer than
// half their TTL plus soloGrace).
//
// A publish that fails after taking its seq leaves a tombstone for the seq
// (best effort), so that readers do not count it as lost: the append
// reported it failed.

// soloGrace is how long JetStream keeps a message of an exclusive writer
// beyond its expiry.
const soloGrace = time.Hour

// writerMarker is the subject of the exclusive writer's marker: "clean"
// after Close wrote every head, "open" while an Inbox runs.
const writerMarker = inboxPrefix + "writer"

// appendSolo is AppendMany for an exclusive writer; it fills b.seqs and
// b.errs.
func (ib *Inbox) appendSolo(ctx context.Context, c *inboxConn, app string, b *manyBatch) {
	b.now = time.Now().UnixNano()
	limit := int(c.nc.MaxPayload())
	slotOf := make(map[string]int32, len(b.entries))
	at := make([]int32, len(b.entries))
	for i := range b.entries {
		e := &b.entries[i]
		at[i] = -1
		if b.errs != nil && b.errs[i] != nil {
			continue
		}
		size := recordMax(len(e.ID), len(e.Payload))
		if size > limit {
			b.fail(i, fmt.Errorf("natsinbox: inbox append: a message of %d bytes is above the server's limit of %d: %w", size, limit, engine.ErrInvalidArgument))
			continue
		}
		b.need += size
		j, ok := slotOf[e.User]
		if !ok {
			j = int32(len(b.slots))
			slotOf[e.User] = j
			key := userKey(app, e.User)
			b.slots = append(b.slots, manySlot{key: key, sj: appendSubjects(key)})
		}
		at[i] = j
	}
	// Learn the latest seq of the inboxes not appended to since Start.
	var unknown []*manySlot
	for j := range b.slots {
		s := &b.slots[j]
		if !ib.index.known(s.key) {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) > 0 {
		readMany(ctx, c, unknown)
		for _, s := range unknown {
			if s.err == nil {
				ib.index.learn(s.key, s.latest, 0)
			}
		}
	}
	// Publish, in entry order, each inbox's carried messages (a head
	// written by an earlier version may carry some not copied to .q.m)
	// before its first entry, then the entries.
	type sent struct {
		slot  int32
		entry int // -1: a carried message
		seq   uint64
		exp   int64
	}
	n := carried(unknown)
	for i, j := range at {
		if j < 0 {
			continue
		}
		if s := &b.slots[j]; s.err != nil {
			b.fail(i, unavailable("append", s.err))
			at[i] = -1
			continue
		}
		n++
	}
	out := make([]sent, 0, n)
	set := c.pub.newSet(n)
	var p publisher
	for i, j := range at {
		if j < 0 {
			continue
		}
		s := &b.slots[j]
		e := &b.entries[i]
		sh := ib.index.shard(s.key)
		sh.mu.Lock()
		for _, r := range s.carry {
			p.publish(set, len(out), s.sj.m, appendRecord(b.alloc(recordMax(len(r.id), len(r.payload))), &r),
				ttlSeconds(time.Duration(r.expires-b.now)+soloGrace), "", 0, false)
			out = append(out, sent{slot: j, entry: -1, seq: r.seq, exp: r.expires})
		}
		s.carry = nil
		mem := sh.m[s.key]
		seq := mem.next
		r := record{kind: recMsg, seq: seq, created: b.now, expires: b.now + int64(e.TTL), id: e.ID, payload: e.Payload}
		sh.m[s.key] = inboxMem{next: seq + 1, headDue: b.now + int64(e.TTL/2)}
		p.publish(set, len(out), s.sj.m, appendRecord(b.alloc(recordMax(len(r.id), len(r.payload))), &r),
			ttlSeconds(e.TTL+soloGrace), "", 0, false)
		sh.mu.Unlock()
		out = append(out, sent{slot: j, entry: i, seq: seq, exp: r.expires})
		b.seqs[i] = seq
	}
	acks := set.wait(ctx)
	var lost []sent
	for k, o := range out {
		if a := acks[k]; a.err != nil {
			lost = append(lost, o)
			if o.entry >= 0 {
				b.fail(o.entry, unavailable("append", a.err))
			}
		}
	}
	if len(lost) > 0 {
		set := c.pub.newSet(len(lost))
		for k, o := range lost {
			s := &b.slots[o.slot]
			r := record{kind: recGone, seq: o.seq, expires: o.exp}
			p.publish(set, k, subjectsFor(s.key).rm, appendRecord(nil, &r), ttlSeconds(time.Duration(o.exp-b.now)), "", 0, false)
		}
		set.wait(ctx)
	}
}

// carried counts the messages the heads of the slots that were read
// carry.
func carried(slots []*manySlot) int {
	n := 0
	for _, s := range slots {
		if s.err == nil {
			n += len(s.carry)
		}
	}
	return n
}

// headFlusher writes the heads of an exclusive writer's inboxes whose
// deadline has passed (see appendSolo).
type headFlusher struct {
	ib   *Inbox
	stop chan struct{}
	done chan struct{}
}

// run flushes every Config.HeadDelay until stopped.
func (f *headFlusher) run(c *inboxConn) {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		t := time.NewTicker(f.ib.cfg.HeadDelay)
		defer t.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-f.ib.e.Done():
				return
			case <-t.C:
				if c.nc.IsClosed() {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), f.ib.cfg.Timeout)
				_ = f.flush(ctx, c, false)
				cancel()
			}
		}
	}()
}

// halt stops the loop (and waits for it).
func (f *headFlusher) halt() {
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
}

// flush writes the head of every inbox whose deadline has passed (every
// pending one, with all) with its latest seq; a head that fails stays
// pending.
func (f *headFlusher) flush(ctx context.Context, c *inboxConn, all bool) error {
	keys, latest, due := f.ib.index.dueHeads(time.Now().UnixNano(), all)
	var first error
	for lo := 0; lo < len(keys); lo += manyWindow {
		hi := min(lo+manyWindow, len(keys))
		set := c.pub.newSet(hi - lo)
		var p publisher
		for k := lo; k < hi; k++ {
			h := record{kind: recHead, seq: latest[k]}
			p.publish(set, k-lo, subjectsFor(keys[k]).h, appendRecord(nil, &h), 0, "", 0, true)
		}
		for k, a := range set.wait(ctx) {
			if a.err == nil {
				f.ib.index.headWritten(keys[lo+k], due[lo+k])
			} else if first == nil {
				first = a.err
			}
		}
	}
	return first
}

// openSolo runs at Start of an exclusive writer, after the index is
// loaded: it repairs the heads if the last exclusive writer did not stop
// cleanly, marks the stream open and starts the head flusher.
func (ib *Inbox) openSolo(ctx context.Context, c *inboxConn) error {
	// A repair reads every inbox (about 4s per 100,000 here): it gets
	// more time than one call.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 20*ib.cfg.Timeout)
		defer cancel()
	}
	// No marker: no exclusive writer ran on this stream, and the other
	// writers never leave a head behind its messages.
	open := false
	if _, err := c.lastOf(ctx, []string{writerMarker}, func(s stored) error {
		open = string(s.data) == "open"
		return nil
	}); err != nil {
		return err
	}
	if open {
		if err := ib.repairHeads(ctx, c); err != nil {
			return fmt.Errorf("repairing inbox heads: %w", err)
		}
	}
	if err := writeMarker(ctx, c, "open"); err != nil {
		return err
	}
	ib.heads.halt()
	ib.heads.run(c)
	return nil
}

// closeSolo stops the head flusher, writes every head and marks the stream
// clean.
func (ib *Inbox) closeSolo(c *inboxConn) error {
	ib.heads.halt()
	ctx, cancel := context.WithTimeout(context.Background(), ib.cfg.Timeout)
	defer cancel()
	if err := ib.heads.flush(ctx, c, true); err != nil {
		return err
	}
	return writeMarker(ctx, c, "clean")
}

func writeMarker(ctx context.Context, c *inboxConn, state string) error {
	m := pubMsg(writerMarker, []byte(state), 0)
	m.Header[hdrRollup] = rollupSub
	_, err := c.js.PublishMsg(ctx, m)
	return err
}

// repairHeads rewrites every head that is behind its inbox's last message
// (the head flusher had not written it when the process stopped), and
// learns each inbox's latest seq on the way.
func (ib *Inbox) repairHeads(ctx context.Context, c *inboxConn) error {
	keys := ib.index.keys()
	for lo := 0; lo < len(keys); lo += manyWindow {
		part := keys[lo:min(lo+manyWindow, len(keys))]
		slots := make([]manySlot, len(part))
		ptrs := make([]*manySlot, len(part))
		for k, key := range part {
			slots[k] = manySlot{key: key, sj: appendSubjects(key)}
			ptrs[k] = &slots[k]
		}
		readMany(ctx, c, ptrs)
		for _, s := range ptrs {
			if s.err != nil {
				return s.err
			}
			due := int64(0)
			if s.st.lastSeq > s.st.head.seq {
				due = 1 // now
			}
			ib.index.learn(s.key, s.latest, due)
		}
	}
	return ib.heads.flush(ctx, c, false)
}
