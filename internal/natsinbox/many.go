package natsinbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Append implements engine.Inbox: an AppendMany of one entry per distinct
// user.
func (ib *Inbox) Append(ctx context.Context, app string, users []string, id string, payload []byte, ttl time.Duration) ([]uint64, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("natsinbox: inbox append: ttl %v: %w", ttl, engine.ErrInvalidArgument)
	}
	entries := make([]engine.Entry, 0, len(users))
	at := make([]int, len(users))
	index := make(map[string]int, len(users))
	for i, u := range users {
		j, ok := index[u]
		if !ok {
			j = len(entries)
			index[u] = j
			entries = append(entries, engine.Entry{User: u, ID: id, Payload: payload, TTL: ttl})
		}
		at[i] = j
	}
	seqs, errs := ib.AppendMany(ctx, app, entries)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out := make([]uint64, len(users))
	for i, j := range at {
		out[i] = seqs[j]
	}
	return out, nil
}

// AppendMany implements engine.Inbox. See Inbox for the writes and the
// rounds they take.
//
// An entry fails alone when it can never be stored (ttl <= 0, too large:
// engine.ErrInvalidArgument); its user's later entries go on. When the
// outcome of an entry's head write is unknown (its acknowledgement did not
// come before the deadline, the connection failed) the entry is reported
// failed with engine.ErrUnavailable although it may have been stored, as
// with a failed Append; its user's later entries then go on only from a
// fresh read of the inbox, so they never reuse its seq.
func (ib *Inbox) AppendMany(ctx context.Context, app string, entries []engine.Entry) ([]uint64, []error) {
	seqs := make([]uint64, len(entries))
	b := &manyBatch{ib: ib, entries: entries, seqs: seqs}
	for i := range entries {
		if ttl := entries[i].TTL; ttl <= 0 {
			b.fail(i, fmt.Errorf("natsinbox: inbox append: ttl %v: %w", ttl, engine.ErrInvalidArgument))
		}
	}
	if len(entries) == 0 {
		return seqs, nil
	}
	ctx, cancel, c, err := ib.begin(ctx, "append")
	if err != nil {
		for i := range entries {
			if b.errs == nil || b.errs[i] == nil {
				b.fail(i, err)
			}
		}
		return seqs, b.errs
	}
	defer cancel()
	if ib.index != nil {
		ib.appendSolo(ctx, c, app, b)
		return seqs, b.errs
	}
	b.c = c
	b.now = time.Now().UnixNano()
	b.budget = min(headBudget, int(c.nc.MaxPayload())/2)
	b.group(app)
	for lo := 0; lo < len(b.slots); lo += manyWindow {
		b.run(ctx, b.slots[lo:min(lo+manyWindow, len(b.slots))])
	}
	for i, err := range b.errs {
		if err != nil {
			seqs[i] = 0
		}
	}
	return seqs, b.errs
}

// headBudget bounds the record of a head that carries several messages:
// a user's entries beyond it go into further heads. A single message may
// be larger.
const headBudget = 8 << 10

// manyWindow is how many users an AppendMany works on at once.
const manyWindow = 4096

// manyBatch is one AppendMany.
type manyBatch struct {
	ib      *Inbox
	c       *inboxConn
	entries []engine.Entry
	seqs    []uint64
	errs    []error // nil until an entry fails
	now     int64   // the entries' creation time (unix nanoseconds)
	budget  int     // see headBudget
	slots   []manySlot
	arena   []byte // records are carved from it
	need    int    // about how much arena the batch needs
}

// Stages of a user's chain in a manyBatch: what its next step is.
const (
	stageRead = iota // read the inbox's head and last message
	stageHead        // write the head of the group
	stageCopy        // copy the group's messages into .q.m
	stageDone
)

// manySlot is one distinct user of an AppendMany.
type manySlot struct {
	key   string // userKey
	sj    inboxSubjects
	todo  []int32 // the user's entries not yet done, in entry order
	stage uint8
	again bool // retrying a write that lost a race (for backing off)
	tries int  // how often it did
	// What the chain knows of the inbox: its latest seq, the stream
	// position of its last write to the head or messages, and the
	// messages its head carries that are not in .q.m.
	latest uint64
	tip    uint64
	carry  []record
	st     userState // what the last read found
	err    error     // why the last read failed
	// The group being written: one head carrying carry and todo[:n] (with
	// seqs latest+1...), then the copies of all of them.
	n       int
	recs    []record
	copies  [][]byte // the recMsg record of each of recs
	head    []byte
	headPos uint64
	copied  int    // how many of copies are stored
	expect  uint64 // the stream position of the last of them (or the head)
	sent    int    // how many copies the round publishes
	first   int    // the index of the slot's first publish in the round
}

func (b *manyBatch) fail(i int, err error) {
	if b.errs == nil {
		b.errs = make([]error, len(b.entries))
	}
	b.errs[i] = err
}

// group sorts the valid entries into one slot per user, in entry order,
// and starts each slot from what is known of its inbox: a hint of this
// process's own last write, nothing at all (with Config.Exclusive,
// for an inbox not in the index), or else a read.
func (b *manyBatch) group(app string) {
	index := make(map[string]int32, len(b.entries))
	count := make([]int32, 0, len(b.entries)) // entries per slot
	at := make([]int32, len(b.entries))       // slot of each entry (-1: none)
	for i := range b.entries {
		e := &b.entries[i]
		if b.errs != nil && b.errs[i] != nil {
			at[i] = -1
			continue
		}
		j, ok := index[e.User]
		if !ok {
			j = int32(len(count))
			index[e.User] = j
			count = append(count, 0)
		}
		count[j]++
		at[i] = j
		b.need += 2 * recordMax(len(e.ID), len(e.Payload))
	}
	b.slots = make([]manySlot, len(count))
	all := make([]int32, len(b.entries))
	off := int32(0)
	for j, n := range count {
		b.slots[j].todo = all[off : off : off+n]
		off += n
	}
	for i, j := range at {
		if j >= 0 {
			b.slots[j].todo = append(b.slots[j].todo, int32(i))
		}
	}
	for u, j := range index {
		s := &b.slots[j]
		s.key = userKey(app, u)
		s.sj = appendSubjects(s.key)
		switch h, ok := b.c.tips.get(s.key); {
		case ok:
			s.latest, s.tip, s.stage = h.latest, h.tip, stageHead
		case b.ib.index != nil && !b.ib.index.has(s.key):
			s.stage = stageHead // no head: nothing written to the inbox
		default:
			s.stage = stageRead
		}
		if b.ib.index != nil {
			b.ib.index.add(s.key) // before its first head write
		}
	}
}

// run drives the slots' chains to their ends, in rounds: each round reads
// the slots that need it and, meanwhile, publishes the next write of every
// other slot and collects their acknowledgements.
func (b *manyBatch) run(ctx context.Context, slots []manySlot) {
	live := make([]*manySlot, 0, len(slots))
	for j := range slots {
		live = append(live, &slots[j])
	}
	var reading, writing []*manySlot
	for len(live) > 0 {
		worst := 0
		for _, s := range live {
			if s.again {
				worst = max(worst, s.tries)
				s.again = false
			}
		}
		var err error
		if worst > 1 {
			// Repeated conflicts mean a busy inbox or, with replicas,
			// a read from behind the leader: back off a little.
			err = natsengine.Backoff(ctx, worst-2)
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			for _, s := range live {
				b.failRest(s, unavailable("append", err))
			}
			return
		}
		reading, writing = reading[:0], writing[:0]
		for _, s := range live {
			if s.stage == stageRead {
				reading = append(reading, s)
			} else {
				writing = append(writing, s)
			}
		}
		var wg sync.WaitGroup
		if len(reading) > 0 {
			wg.Go(func() { readMany(ctx, b.c, reading) })
		}
		b.write(ctx, writing)
		wg.Wait()
		for _, s := range reading {
			if s.err != nil {
				b.failRest(s, unavailable("append", s.err))
			} else {
				s.stage = stageHead
			}
		}
		n := 0
		for _, s := range live {
			if s.stage != stageDone {
				live[n] = s
				n++
			}
		}
		clear(live[n:])
		live = live[:n]
	}
}

// failRest fails every entry the slot has not stored.
func (b *manyBatch) failRest(s *manySlot, err error) {
	for _, i := range s.todo {
		b.fail(int(i), err)
	}
	s.todo, s.stage = nil, stageDone
}

// readMany reads the inboxes of the slots, with multi-last gets of up to
// appendChunk users each, a few at once. It touches only the slots.
func readMany(ctx context.Context, c *inboxConn, slots []*manySlot) {
	const parallel = 4
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for lo := 0; lo < len(slots); lo += appendChunk {
		part := slots[lo:min(lo+appendChunk, len(slots))]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := readSlots(ctx, c, part)
			now := time.Now().UnixNano()
			for _, s := range part {
				s.err = err
				if err == nil {
					s.latest, s.tip, s.carry = s.st.latest(), s.st.tip(), s.st.pendingMsgs(now)
				}
			}
		})
	}
	wg.Wait()
}

// appendChunk is how many users one multi-last get of an append reads:
// each user's head and last message fill two of its results.
const appendChunk = maxMultiLast / 2

// readSlots reads the head and last message of each slot's inbox.
func readSlots(ctx context.Context, c *inboxConn, slots []*manySlot) error {
	subjs := make([]string, 0, 2*len(slots))
	bySubj := make(map[string]*manySlot, 2*len(slots))
	for _, s := range slots {
		s.st = userState{}
		subjs = append(subjs, s.sj.h, s.sj.m)
		bySubj[s.sj.h], bySubj[s.sj.m] = s, s
	}
	_, err := c.lastOf(ctx, subjs, func(st stored) error {
		if s := bySubj[st.subj]; s != nil {
			return s.st.take(st, &s.sj)
		}
		return nil
	})
	return err
}

// alloc returns a buffer of capacity n carved from the arena.
func (b *manyBatch) alloc(n int) []byte {
	if cap(b.arena)-len(b.arena) < n {
		if n > 16<<10 {
			return make([]byte, 0, n)
		}
		b.arena = make([]byte, 0, max(n, min(b.need, 256<<10)))
	}
	start := len(b.arena)
	b.arena = b.arena[:start+n]
	return b.arena[start : start : start+n]
}

// build makes the slot's next group: a head carrying the messages the
// inbox's head carries and has not copied yet, then as many of the user's
// entries as keep the head's record within the budget (at least one,
// unless the carried messages alone fill it).
func (b *manyBatch) build(s *manySlot) {
	s.recs = append(s.recs[:0], s.carry...)
	size := 0
	for i := range s.recs {
		size += recordMax(len(s.recs[i].id), len(s.recs[i].payload))
	}
	n := 0
	for n < len(s.todo) {
		e := &b.entries[s.todo[n]]
		sz := recordMax(len(e.ID), len(e.Payload))
		if len(s.recs) > 0 && size+sz > b.budget {
			break
		}
		n++
		s.recs = append(s.recs, record{kind: recMsg, seq: s.latest + uint64(n), created: b.now,
			expires: b.now + int64(e.TTL), id: e.ID, payload: e.Payload})
		size += sz
	}
	s.n = n
	s.copies = s.copies[:0]
	for i := range s.recs {
		r := &s.recs[i]
		s.copies = append(s.copies, appendRecord(b.alloc(recordMax(len(r.id), len(r.payload))), r))
	}
	h := headRecord(s.latest+uint64(n), s.recs)
	if h.kind == recMsg {
		s.head = s.copies[0]
	} else {
		s.head = appendRecord(b.alloc(size+16), &h)
	}
}

// endGroup forgets the slot's group.
func (s *manySlot) endGroup() {
	s.n, s.recs, s.copies, s.head, s.headPos, s.copied, s.expect = 0, s.recs[:0], s.copies[:0], nil, 0, 0, 0
}

// next sets the slot's stage after its group: stage, unless it has no
// entries left.
func (s *manySlot) next(stage uint8) {
	if len(s.todo) == 0 {
		s.stage = stageDone
	} else {
		s.stage = stage
	}
}

var rollupSub = []string{"sub"}

// write publishes the next write of every slot (its head, or the copies
// of its group), then collects the acknowledgements and advances the
// chains.
func (b *manyBatch) write(ctx context.Context, slots []*manySlot) {
	if len(slots) == 0 {
		return
	}
	n := 0
	for _, s := range slots {
		if s.stage == stageHead {
			if s.head == nil {
				b.build(s)
			}
			n++
		} else {
			s.sent = len(s.copies) - s.copied
			if b.c.replicated {
				s.sent = 1
			}
			n += s.sent
		}
	}
	set := b.c.pub.newSet(n)
	now := time.Now().UnixNano()
	var p publisher
	k := 0
	for _, s := range slots {
		s.first = k
		if s.stage == stageHead {
			p.publish(set, k, s.sj.h, s.head, 0, s.sj.w, s.tip, true)
			k++
			continue
		}
		// The copies, in seq order (see Inbox).
		for j := s.copied; j < s.copied+s.sent; j++ {
			ttl := ttlSeconds(time.Duration(s.recs[j].expires - now))
			if j == s.copied {
				p.publish(set, k, s.sj.m, s.copies[j], ttl, s.sj.w, s.expect, false)
			} else {
				p.publish(set, k, s.sj.m, s.copies[j], ttl, s.sj.h, s.headPos, false)
			}
			k++
		}
	}
	acks := set.wait(ctx)
	for _, s := range slots {
		if s.stage == stageHead {
			b.headDone(s, acks[s.first])
		} else {
			b.copiesDone(s, acks[s.first:s.first+s.sent])
		}
	}
}

// headDone advances the slot by the outcome of its head write.
func (b *manyBatch) headDone(s *manySlot, a pubAck) {
	switch {
	case a.err == nil:
		for j := range s.n {
			b.seqs[s.todo[j]] = s.latest + uint64(j+1)
		}
		s.latest += uint64(s.n)
		s.headPos, s.expect, s.stage = a.pos, a.pos, stageCopy
	case isConflict(a.err):
		// Another writer got there first (or the hint was stale): read
		// again and take the next seqs.
		b.c.tips.drop(s.key)
		s.endGroup()
		s.stage, s.again = stageRead, true
		s.tries++
	case errors.Is(a.err, nats.ErrNoResponders):
		// Not stored (the stream has no leader for a moment): again.
		s.again = true
		s.tries++
	case isTooBig(a.err) && s.n > 0:
		// These entries can never be stored; the chain goes on from the
		// same position (the carried messages, if any, again).
		for _, i := range s.todo[:s.n] {
			b.fail(int(i), unavailable("append", a.err))
		}
		s.todo = s.todo[s.n:]
		s.endGroup()
		s.next(stageHead)
	case s.n == 0:
		// Only carried messages, and they cannot be written again.
		b.c.tips.drop(s.key)
		b.failRest(s, unavailable("append", a.err))
	default:
		// Refused, or not known whether it was stored: the chain goes on
		// only from a fresh read.
		b.c.tips.drop(s.key)
		for _, i := range s.todo[:s.n] {
			b.fail(int(i), unavailable("append", a.err))
		}
		s.todo = s.todo[s.n:]
		s.endGroup()
		s.next(stageRead)
	}
}

// copiesDone advances the slot by the outcome of its copies. The group's
// messages are durable in the head whatever became of them.
func (b *manyBatch) copiesDone(s *manySlot, acks []pubAck) {
	ok := true
	for _, a := range acks {
		if a.err != nil {
			ok = false
			break
		}
		s.copied, s.expect = s.copied+1, a.pos
	}
	if ok && s.copied < len(s.copies) {
		return // more copies next round
	}
	last := s.expect
	s.todo, s.carry = s.todo[s.n:], nil
	s.endGroup()
	if !ok {
		// A later head replaced this one (and carries what was not
		// copied), or a copy failed otherwise (the next head carries it).
		b.c.tips.drop(s.key)
		s.next(stageRead)
		return
	}
	s.tip = last
	b.c.tips.put(s.key, tipHint{tip: last, latest: s.latest})
	s.next(stageHead)
}

// isTooBig reports whether err refuses a message for its size.
func isTooBig(err error) bool {
	var ae *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) || errors.As(err, &ae) && ae.ErrorCode == errCodeMsgTooBig
}

// appendSubjects returns the subjects of the inbox with the userKey key
// that an append uses (the wildcard, the head, the messages), in one
// allocation.
func appendSubjects(key string) inboxSubjects {
	n := len(inboxPrefix) + len(key) + len(".q.*")
	var sb strings.Builder
	sb.Grow(3 * n)
	for _, t := range []string{".q.*", ".q.h", ".q.m"} {
		sb.WriteString(inboxPrefix)
		sb.WriteString(key)
		sb.WriteString(t)
	}
	all := sb.String()
	return inboxSubjects{w: all[:n], h: all[n : 2*n], m: all[2*n:]}
}

// publisher makes an AppendMany's publishes, reusing one message and its
// header (nats.go encodes them before PublishMsg returns).
type publisher struct {
	m                 nats.Msg
	seq, casSubj, ttl [1]string
	lastTTL           int64
}

// publish sends data to subj as publish k of set: with a TTL of ttl
// seconds (0: none), expecting the last message on casSubj at position
// expect (casSubj "": unconditionally), rolling up the subject if rollup.
func (p *publisher) publish(set *pubSet, k int, subj string, data []byte, ttl int64, casSubj string, expect uint64, rollup bool) {
	if p.m.Header == nil {
		p.m.Header = make(nats.Header, 4)
	}
	h := p.m.Header
	clear(h)
	if casSubj != "" {
		p.seq[0] = strconv.FormatUint(expect, 10)
		p.casSubj[0] = casSubj
		h[hdrExpectLastSubjSeq] = p.seq[:]
		h[hdrExpectLastSubjSeqSubj] = p.casSubj[:]
	}
	if ttl > 0 {
		if ttl != p.lastTTL {
			p.lastTTL, p.ttl[0] = ttl, strconv.FormatInt(ttl, 10)
		}
		h[hdrTTL] = p.ttl[:]
	}
	if rollup {
		h[hdrRollup] = rollupSub
	}
	p.m.Subject, p.m.Data = subj, data
	set.publish(k, &p.m)
}
