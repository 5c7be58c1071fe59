package natsinbox

import (
	"context"
	"slices"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
)

// Read implements engine.Inbox. See Inbox for how it finds the messages
// and computes Complete.
func (ib *Inbox) Read(ctx context.Context, app, user string, after uint64, limit int) (engine.Page, error) {
	if ib.stateless(app, user) {
		return engine.Page{Complete: true}, nil
	}
	ctx, cancel, c, err := ib.begin(ctx, "read")
	if err != nil {
		return engine.Page{}, err
	}
	defer cancel()
	sj := subjectsOf(app, user)
	for attempt := 0; ; attempt++ {
		page, err := ib.read(ctx, c, &sj, after, limit)
		if err != nil {
			return engine.Page{}, unavailable("read", err)
		}
		// With replicas, the direct gets after the (leader-checked)
		// state may be answered by another replica, one that is behind:
		// it can only miss messages, which shows as an incomplete page.
		if page.Complete || !c.replicated || attempt == replicaRetries {
			return page, nil
		}
		if err := natsengine.Backoff(ctx, attempt); err != nil {
			return engine.Page{}, unavailable("read", err)
		}
	}
}

// replicaRetries is how often a read that may have met a replica behind
// the leader is repeated.
const replicaRetries = 2

func (ib *Inbox) read(ctx context.Context, c *inboxConn, sj *inboxSubjects, after uint64, limit int) (engine.Page, error) {
	st, err := ib.state(ctx, c, sj)
	if err != nil {
		return engine.Page{}, err
	}
	page := engine.Page{Latest: st.latest(), Acked: st.acked, Complete: true}
	if after >= page.Latest {
		return page, nil
	}
	p := &pageReader{page: &page, after: after, next: after + 1, limit: limit, now: time.Now().UnixNano()}
	if err := ib.readMessages(ctx, c, sj, &st, p); err != nil {
		return engine.Page{}, err
	}
	// The head's messages that are not in .q.m (yet).
	for _, r := range st.pendingMsgs(p.now) {
		if r.seq < p.next {
			continue
		}
		switch {
		case p.cut:
			p.beyond++
		case p.full():
			p.cut, p.beyond = true, 1
		default:
			p.see(r)
		}
	}
	var deficit uint64
	if p.cut {
		// Every seq after the last returned one is stored beyond the
		// page, or missing; beyond says how many are stored.
		if want := page.Latest - page.Msgs[len(page.Msgs)-1].Seq; p.beyond < want {
			deficit = want - p.beyond
		}
	} else if p.next <= page.Latest {
		p.gap(p.next, page.Latest)
	}
	if len(p.gaps) == 0 && deficit == 0 {
		return page, nil
	}
	// Some seqs are missing: complete only if every one was removed.
	removed, err := ib.tombstones(ctx, c, sj)
	if err != nil {
		return engine.Page{}, err
	}
	for _, g := range p.gaps {
		if countIn(removed, g[0], g[1]) != g[1]-g[0]+1 {
			page.Complete = false
			return page, nil
		}
	}
	if deficit > 0 && countIn(removed, page.Msgs[len(page.Msgs)-1].Seq+1, page.Latest) < deficit {
		page.Complete = false
	}
	return page, nil
}

// readMessages reads .q.m from the first message with seq > p.after until
// the page is full or .q.m ends.
func (ib *Inbox) readMessages(ctx context.Context, c *inboxConn, sj *inboxSubjects, st *userState, p *pageReader) error {
	if st.lastSeq <= p.after {
		return nil
	}
	pos, err := ib.seek(ctx, c, sj, p.after, st)
	if err != nil {
		return err
	}
	for {
		n := maxReadBatch
		if p.limit > 0 {
			n = min(n, p.limit-len(p.page.Msgs))
		}
		// Without headers the server sends just the stored records (the
		// seqs are inside) and the end-of-batch message says where the
		// batch ended. (Its pending count is not usable then: the server
		// does not count down what it sent without headers.)
		// With replicas, another replica than the one that answered the
		// state may answer, one that is behind (and still has a message
		// deleted since) or ahead: with headers, its messages beyond the
		// state's last one are not taken.
		stop := false
		e, err := c.getMany(ctx, nextReq(sj.m, pos, n, !c.replicated), func(s stored) error {
			if stop || c.replicated && s.pos > st.lastPos {
				stop = true
				return nil
			}
			r, err := parseRecord(s.data)
			if err != nil {
				return err
			}
			if r.kind != recMsg {
				return errBadRecord
			}
			stop = !p.see(r)
			return nil
		})
		switch {
		case err != nil:
			return err
		case stop || e.last == 0 || e.last >= st.lastPos:
			return nil // .q.m read up to where st saw it end
		case p.full():
			p.cut = true
			p.beyond, err = c.count(ctx, sj.m, e.last+1)
			return err
		}
		pos = e.last + 1
	}
}

// count returns how many messages of subj are stored at stream position
// pos or later.
func (c *inboxConn) count(ctx context.Context, subj string, pos uint64) (uint64, error) {
	var n uint64
	_, err := c.getMany(ctx, nextReq(subj, pos, 1, false), func(s stored) error {
		n = 1 + s.pending
		return nil
	})
	return n, err
}

// maxReadBatch is the most messages one batch get of a Read asks for.
const maxReadBatch = 1024

// tombstones returns the seqs of the user's removed messages, sorted.
func (ib *Inbox) tombstones(ctx context.Context, c *inboxConn, sj *inboxSubjects) ([]uint64, error) {
	var seqs []uint64
	var pos uint64
	for {
		got := 0
		e, err := c.getMany(ctx, nextReq(sj.rm, pos, maxReadBatch, true), func(s stored) error {
			got++
			r, err := parseRecord(s.data)
			if err != nil {
				return err
			}
			seqs = append(seqs, r.seq)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if got < maxReadBatch || e.last == 0 {
			break // tombstones are far too small to reach the byte limit
		}
		pos = e.last + 1
	}
	slices.Sort(seqs)
	return slices.Compact(seqs), nil
}

// countIn counts the elements of sorted in [lo, hi].
func countIn(sorted []uint64, lo, hi uint64) uint64 {
	i, _ := slices.BinarySearch(sorted, lo)
	j, _ := slices.BinarySearch(sorted, hi+1)
	return uint64(j - i)
}

// pageReader accumulates one Read.
type pageReader struct {
	page   *engine.Page
	after  uint64
	next   uint64 // the lowest seq above after not yet accounted for
	limit  int
	now    int64
	gaps   [][2]uint64 // seq ranges missing from what was read
	cut    bool        // the page is full and messages remain
	beyond uint64      // when cut: how many messages are stored after the page
}

func (p *pageReader) full() bool { return p.limit > 0 && len(p.page.Msgs) >= p.limit }

// see takes the next message record of the user in seq order; it reports
// false once past the page's Latest (a newer Append than the read's state).
func (p *pageReader) see(r record) bool {
	if r.seq < p.next {
		return true
	}
	if r.seq > p.page.Latest {
		return false
	}
	if r.seq > p.next {
		p.gap(p.next, r.seq-1)
	}
	p.next = r.seq + 1
	if r.expires <= p.now {
		p.gap(r.seq, r.seq)
		return true
	}
	p.page.Msgs = append(p.page.Msgs, engine.StoredMessage{
		Seq:     r.seq,
		ID:      r.id,
		Payload: r.payload,
		Created: time.Unix(0, r.created),
		Expires: time.Unix(0, r.expires),
	})
	return true
}

func (p *pageReader) gap(lo, hi uint64) {
	if n := len(p.gaps); n > 0 && p.gaps[n-1][1]+1 == lo {
		p.gaps[n-1][1] = hi
		return
	}
	p.gaps = append(p.gaps, [2]uint64{lo, hi})
}
