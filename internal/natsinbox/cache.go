package natsinbox

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// tipCache remembers, for inboxes this process appended to, the stream
// position of its last write to the inbox's head or messages and the
// latest seq it left, so that the next append can skip reading the inbox
// first. It is only a hint: the next head write is a compare-and-swap on
// that position, which fails if anything was written (or the last message
// was deleted) since, and the writer then reads the inbox after all. See
// Inbox.
//
// It holds at most max inboxes: two generations of max/2, the older one
// dropped when the newer one fills up.
type tipCache struct {
	half     int
	mu       sync.Mutex
	cur, old map[string]tipHint
}

type tipHint struct {
	tip    uint64 // stream position of the inbox's last write (its last copy)
	latest uint64 // the inbox's latest seq, carried by that write
}

func newTipCache(size int) *tipCache {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	return &tipCache{half: half, cur: make(map[string]tipHint)}
}

func (c *tipCache) get(key string) (tipHint, bool) {
	if c == nil {
		return tipHint{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.cur[key]; ok {
		return h, true
	}
	h, ok := c.old[key]
	return h, ok
}

func (c *tipCache) put(key string, h tipHint) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[key]; !ok && len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[string]tipHint, c.half)
	}
	c.cur[key] = h
	delete(c.old, key)
}

func (c *tipCache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, key)
	delete(c.old, key)
}

// userIndex is the set of inboxes (by userKey) that may have any state,
// kept when Config.Exclusive says this process is the stream's only
// writer, with each inbox's latest seq once this process knows it and when
// its head must be written next (see appendSolo). Its invariant: every
// inbox that has a head or a message in the stream is in the set. An inbox
// has state (a latest seq, an ack, messages, tombstones) only once it has
// a head or a message, and the head is never deleted or expired, only
// replaced. Start adds every inbox that has either then; every append of
// this process adds its inbox before it publishes. Nothing is ever
// removed, so the set may hold inboxes whose first write failed, which
// only costs those a round trip. With another writer the invariant breaks:
// that writer's new inboxes would read as empty here.
type userIndex struct {
	seed   maphash.Seed
	shards [64]indexShard
}

type indexShard struct {
	mu sync.RWMutex
	m  map[string]inboxMem
}

// inboxMem is what the index keeps of one inbox.
type inboxMem struct {
	next    uint64 // the latest seq + 1; 0 while not known
	headDue int64  // unix nanoseconds by which the head must hold the latest seq; 0: it does
}

func newUserIndex() *userIndex {
	x := &userIndex{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = make(map[string]inboxMem)
	}
	return x
}

func (x *userIndex) shard(key string) *indexShard {
	return &x.shards[maphash.String(x.seed, key)%uint64(len(x.shards))]
}

func (x *userIndex) has(key string) bool {
	s := x.shard(key)
	s.mu.RLock()
	_, ok := s.m[key]
	s.mu.RUnlock()
	return ok
}

func (x *userIndex) add(key string) {
	s := x.shard(key)
	s.mu.RLock()
	_, ok := s.m[key]
	s.mu.RUnlock()
	if ok {
		return
	}
	s.mu.Lock()
	if _, ok := s.m[key]; !ok {
		s.m[key] = inboxMem{}
	}
	s.mu.Unlock()
}

// known adds the inbox if it is not in the set (a new inbox: its latest
// seq is 0) and reports whether its latest seq is known.
func (x *userIndex) known(key string) bool {
	s := x.shard(key)
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if ok {
		return v.next > 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok = s.m[key]
	if !ok {
		s.m[key] = inboxMem{next: 1}
		return true
	}
	return v.next > 0
}

// learn records a latest seq read from the stream, unless one is known
// already (this process's own appends keep it from then on); headDue > 0
// says the head is behind and must be written by then.
func (x *userIndex) learn(key string, latest uint64, headDue int64) {
	s := x.shard(key)
	s.mu.Lock()
	if v := s.m[key]; v.next == 0 {
		s.m[key] = inboxMem{next: latest + 1, headDue: headDue}
	}
	s.mu.Unlock()
}

// dueHeads returns the inboxes whose head must be written by now (every
// head not written, with all), with their latest seqs and deadlines.
func (x *userIndex) dueHeads(now int64, all bool) (keys []string, latest []uint64, due []int64) {
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		for k, v := range s.m {
			if v.headDue != 0 && (all || v.headDue <= now) {
				keys, latest, due = append(keys, k), append(latest, v.next-1), append(due, v.headDue)
			}
		}
		s.mu.RUnlock()
	}
	return keys, latest, due
}

// headWritten notes that the inbox's head was written as of deadline due
// (an append since then set a new one, which stays).
func (x *userIndex) headWritten(key string, due int64) {
	s := x.shard(key)
	s.mu.Lock()
	if v := s.m[key]; v.headDue == due {
		v.headDue = 0
		s.m[key] = v
	}
	s.mu.Unlock()
}

func (x *userIndex) len() int {
	n := 0
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// keys returns every inbox in the set.
func (x *userIndex) keys() []string {
	var out []string
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		for k := range s.m {
			out = append(out, k)
		}
		s.mu.RUnlock()
	}
	return out
}

// load adds every inbox that has a head or a message in the stream, from
// the stream's subject counts, a page (100,000 subjects, sorted) at a time.
// Nothing else writes while it runs, so the pages see one state.
func (x *userIndex) load(ctx context.Context, nc *nats.Conn) error {
	const filter = inboxPrefix + "*.*.q.*"
	for offset := 0; ; {
		req, err := json.Marshal(struct {
			Filter string `json:"subjects_filter"`
			Offset int    `json:"offset,omitempty"`
		}{filter, offset})
		if err != nil {
			return err
		}
		m, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+Stream, req)
		if err != nil {
			return err
		}
		var resp struct {
			Total int `json:"total"`
			State struct {
				Subjects map[string]uint64 `json:"subjects"`
			} `json:"state"`
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			return fmt.Errorf("stream info reply: %w", err)
		}
		if resp.Error != nil {
			return resp.Error
		}
		for subj := range resp.State.Subjects {
			if key, ok := strings.CutPrefix(subj, inboxPrefix); ok {
				if k, ok := strings.CutSuffix(key, ".q.h"); ok {
					x.add(strings.Clone(k))
				} else if k, ok := strings.CutSuffix(key, ".q.m"); ok {
					x.add(strings.Clone(k))
				}
			}
		}
		offset += len(resp.State.Subjects)
		if len(resp.State.Subjects) == 0 || offset >= resp.Total {
			return nil
		}
	}
}
