package presence

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// members is this node's copy of every presence room's members, kept from
// a watch of the bucket's member keys, so that a join reads memory rather
// than listing the room (which made filling a room quadratic).
type members struct {
	mu    sync.RWMutex
	ready chan struct{}       // closed once the first copy is complete
	rooms map[string][]string // by member key prefix "s.m.<app>.<room>": users, sorted
	// applied is the bucket revision the copy is complete up to; wake is
	// closed (and replaced) whenever it moves. Both under mu.
	applied uint64
	wake    chan struct{}
}

// advance records that the copy is complete up to rev; caller holds mu.
func (m *members) advance(rev uint64) {
	if rev > m.applied {
		m.applied = rev
		close(m.wake)
		m.wake = make(chan struct{})
	}
}

// add or drop the member whose key is k; caller holds mu.
func (m *members) apply(rooms map[string][]string, k string, present bool) {
	i := strings.LastIndexByte(k, '.')
	if i < 0 {
		return
	}
	u, err := untok(k[i+1:])
	if err != nil {
		return
	}
	room := k[:i]
	users := rooms[room]
	at, found := slices.BinarySearch(users, u)
	switch {
	case present && !found:
		rooms[room] = slices.Insert(users, at, u)
	case !present && found:
		if users = slices.Delete(users, at, at+1); len(users) == 0 {
			delete(rooms, room)
		} else {
			rooms[room] = users
		}
	}
}

// watchMembers keeps t.members current until Close, watching again
// whenever a watch ends.
func (t *Tracker) watchMembers() {
	defer t.wg.Done()
	for {
		if err := t.watchMembersOnce(); err != nil {
			t.cfg.Logger.Warn("presence: watching members; retrying", "err", err)
		}
		select {
		case <-t.closing:
			return
		case <-time.After(time.Second):
		}
	}
}

// watchMembersOnce builds a fresh copy from one watch and applies its
// updates until the watch or the tracker ends.
func (t *Tracker) watchMembersOnce() error {
	// The watch lives as long as its context: the tracker's.
	w, err := t.kv.Watch(t.base, "s.m.>", jetstream.MetaOnly())
	if err != nil {
		return err
	}
	defer func() {
		_ = w.Stop()
		for range w.Updates() { // unblock the watch's delivery until it closes
		}
	}()
	fresh := map[string][]string{}
	rooms := fresh
	var last uint64 // the highest revision of the first copy
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-t.closing:
			return nil
		case e, ok = <-w.Updates():
		}
		switch {
		case !ok:
			return nil
		case e == nil: // the first copy is complete
			t.members.mu.Lock()
			t.members.rooms = fresh
			t.members.advance(last)
			select {
			case <-t.members.ready:
			default:
				close(t.members.ready)
			}
			t.members.mu.Unlock()
			rooms = nil
		case rooms != nil:
			t.members.apply(rooms, e.Key(), e.Operation() == jetstream.KeyValuePut)
			last = max(last, e.Revision())
		default:
			t.members.mu.Lock()
			t.members.apply(t.members.rooms, e.Key(), e.Operation() == jetstream.KeyValuePut)
			t.members.advance(e.Revision())
			t.members.mu.Unlock()
		}
	}
}

// MembersCached returns the users present in an app's room, sorted, at
// most limit (all if limit ≤ 0), and whether there are more, from this
// node's copy of the members. The copy follows the bucket through a watch,
// a moment behind its writes, so the call first asks the bucket's leader
// for the room's last member write and waits (briefly) for the copy to
// have applied it: every arrival stored before the call is in the answer.
// Until the copy is first complete, or when it does not catch up within
// the tracker's timeout, the bucket is listed like Members does.
func (t *Tracker) MembersCached(ctx context.Context, app, room string, limit int) ([]string, bool, error) {
	if !t.cachedUpToDate(ctx, app, room) {
		users, next, err := t.Members(ctx, app, room, "", limit)
		return users, next != "", err
	}
	t.members.mu.RLock()
	defer t.members.mu.RUnlock()
	users := t.members.rooms["s.m."+tok(app)+"."+tok(room)]
	more := limit > 0 && len(users) > limit
	if more {
		users = users[:limit]
	}
	return slices.Clone(users), more, nil
}

// cachedUpToDate reports whether the members copy has applied the room's
// last member write (waiting up to the tracker's timeout for it).
func (t *Tracker) cachedUpToDate(ctx context.Context, app, room string) bool {
	select {
	case <-t.members.ready:
	default:
		return false
	}
	m, err := t.lastMsg(ctx, t.cfg.Bucket, membersFilter(app, room))
	if err != nil {
		return false
	}
	if m == nil {
		return true // no member was ever written
	}
	timeout := time.NewTimer(t.cfg.Timeout)
	defer timeout.Stop()
	for {
		t.members.mu.RLock()
		done, wake := t.members.applied >= m.Seq, t.members.wake
		t.members.mu.RUnlock()
		if done {
			break
		}
		select {
		case <-wake:
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}
