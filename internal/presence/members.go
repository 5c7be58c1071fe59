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
			select {
			case <-t.members.ready:
			default:
				close(t.members.ready)
			}
			t.members.mu.Unlock()
			rooms = nil
		case rooms != nil:
			t.members.apply(rooms, e.Key(), e.Operation() == jetstream.KeyValuePut)
		default:
			t.members.mu.Lock()
			t.members.apply(t.members.rooms, e.Key(), e.Operation() == jetstream.KeyValuePut)
			t.members.mu.Unlock()
		}
	}
}

// MembersCached returns the users present in an app's room, sorted, at
// most limit (all if limit ≤ 0), and whether there are more, from this
// node's copy of the members. The copy follows the bucket through a watch,
// a moment behind its writes; until it is first complete the bucket is
// listed like Members does.
func (t *Tracker) MembersCached(ctx context.Context, app, room string, limit int) ([]string, bool, error) {
	select {
	case <-t.members.ready:
	default:
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
