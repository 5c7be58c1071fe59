package push

import (
	"hash/maphash"
	"sync"
	"time"
)

// idemShards splits the idempotency table so that concurrent pushes with
// ids rarely wait on one another's lock.
const idemShards = 16

// DefaultIdempotencyMax is how many push ids a node remembers when the
// limits name no number.
const DefaultIdempotencyMax = 100_000

// idemTable remembers push ids (app + "\x00" + id) for the idempotency
// window. It is bounded: each shard holds at most max/idemShards ids, and a
// full shard forgets its oldest id first, so the window is guaranteed only
// up to that many ids. Expired ids are dropped from the front of each
// shard's queue (ids are queued in expiry order, the window being the same
// for all), so no call ever scans the whole table.
type idemTable struct {
	ttl    time.Duration
	max    int // per shard
	seed   maphash.Seed
	shards [idemShards]idemShard
}

// idemShard is one part of the table; mu guards m and queue.
type idemShard struct {
	mu sync.Mutex
	m  map[string]*idemEntry
	// queue holds the shard's ids oldest first from head on; a ref whose
	// entry is no longer the key's in m is stale and skipped.
	queue []idemRef
	head  int
}

type idemRef struct {
	key string
	e   *idemEntry
}

type idemEntry struct {
	done    chan struct{}
	id      string
	err     error
	expires time.Time
}

func newIdemTable(ttl time.Duration, limit int) *idemTable {
	if limit <= 0 {
		limit = DefaultIdempotencyMax
	}
	t := &idemTable{ttl: ttl, max: (limit + idemShards - 1) / idemShards, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*idemEntry)
	}
	return t
}

func (t *idemTable) shard(key string) *idemShard {
	return &t.shards[maphash.String(t.seed, key)%idemShards]
}

// claim returns the key's entry within the window and whether the caller
// made it (and so must settle it); otherwise the entry's done closes once
// its owner settled it.
func (t *idemTable) claim(key string, now time.Time) (*idemEntry, bool) {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[key]; e != nil && now.Before(e.expires) {
		return e, false
	}
	sh.expire(now)
	// Full: forget the oldest settled ids. An id whose push is still under
	// way is never forgotten (a retry of it would run twice); pushes under
	// way are bounded by the callers, so the shard may pass max by them.
	for len(sh.m) >= t.max && sh.popSettled() {
	}
	e := &idemEntry{done: make(chan struct{}), expires: now.Add(t.ttl)}
	sh.m[key] = e
	sh.queue = append(sh.queue, idemRef{key: key, e: e})
	if n := len(sh.queue) - sh.head; sh.head > n || n > 2*t.max {
		sh.compact()
	}
	return e, true
}

// settle records the outcome of a claimed key; a failure is forgotten.
func (t *idemTable) settle(key string, e *idemEntry, id string, err error) {
	e.id, e.err = id, err
	if err != nil {
		sh := t.shard(key)
		sh.mu.Lock()
		if sh.m[key] == e {
			delete(sh.m, key)
		}
		sh.mu.Unlock()
	}
	close(e.done)
}

// len returns how many ids the table holds.
func (t *idemTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// has reports whether key is remembered.
func (t *idemTable) has(key string) bool {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[key] != nil
}

// expire drops the ids whose window ended. The caller holds sh.mu.
func (sh *idemShard) expire(now time.Time) {
	for sh.head < len(sh.queue) && !now.Before(sh.queue[sh.head].e.expires) {
		sh.pop()
	}
}

// popSettled is pop, unless the oldest id's push is still under way. The
// caller holds sh.mu.
func (sh *idemShard) popSettled() bool {
	if sh.head < len(sh.queue) {
		select {
		case <-sh.queue[sh.head].e.done:
		default:
			return false
		}
	}
	return sh.pop()
}

// pop forgets the oldest queued id and reports whether there was one. The
// caller holds sh.mu.
func (sh *idemShard) pop() bool {
	if sh.head == len(sh.queue) {
		return false
	}
	r := sh.queue[sh.head]
	sh.queue[sh.head] = idemRef{}
	sh.head++
	if sh.m[r.key] == r.e {
		delete(sh.m, r.key)
	}
	return true
}

// compact drops the consumed front and the stale refs of the queue, in
// time linear in its length: it runs when either outnumbers the live
// part, so a claim's share stays constant. The caller holds sh.mu.
func (sh *idemShard) compact() {
	live := sh.queue[:0]
	for _, r := range sh.queue[sh.head:] {
		if sh.m[r.key] == r.e {
			live = append(live, r)
		}
	}
	clear(sh.queue[len(live):])
	sh.queue, sh.head = live, 0
}
