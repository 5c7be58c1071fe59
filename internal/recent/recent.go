package recent

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Size is how many pushes a ring keeps per app.
const Size = 200

// MaxApps bounds the apps a node keeps rings for (a ring is about 20 KB);
// the pushes of apps beyond it are not kept.
const MaxApps = 256

// Entry is one accepted push.
type Entry struct {
	ID string
	At int64 // when it was accepted, in Unix nanoseconds
	// The push's targets: how many users, conns and rooms it named, whether
	// it went to the whole app or to everyone, and the first name it gave
	// (its first user, else conn, else room).
	Users, Conns, Rooms int32
	App, All            bool
	First               string
	Offline             bool // stored in the users' inboxes: it has a status record
	Node                string
}

// Key orders entries: newer first, then by id, descending.
type Key struct {
	At int64
	ID string
}

// Key returns e's place in the order.
func (e *Entry) Key() Key { return Key{e.At, e.ID} }

// Less reports whether k comes after o in the newest-first order (k is
// older, or as old with a smaller id).
func (k Key) Less(o Key) bool { return k.At < o.At || k.At == o.At && k.ID < o.ID }

// String is k as a cursor: "<at>.<id>".
func (k Key) String() string { return strconv.FormatInt(k.At, 10) + "." + k.ID }

// ErrBadCursor is a cursor ParseCursor does not understand.
var ErrBadCursor = errors.New("recent: bad cursor")

// ParseCursor reads a cursor made by Key.String; "" is the start.
func ParseCursor(s string) (Key, error) {
	if s == "" {
		return Key{}, nil
	}
	at, id, ok := strings.Cut(s, ".")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || n <= 0 || id == "" {
		return Key{}, ErrBadCursor
	}
	return Key{n, id}, nil
}

// Log holds the rings of every app.
type Log struct {
	rings sync.Map // app → *ring
	apps  atomic.Int32
}

// ring is one app's last Size pushes. mu guards every field.
type ring struct {
	mu    sync.Mutex
	added uint64 // entries ever added; the next one goes to buf[added%Size]
	buf   [Size]Entry
}

// Add records a push of app.
func (l *Log) Add(app string, e Entry) {
	r := l.ring(app)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.buf[r.added%Size] = e
	r.added++
	r.mu.Unlock()
}

func (l *Log) ring(app string) *ring {
	if r, ok := l.rings.Load(app); ok {
		return r.(*ring)
	}
	if l.apps.Load() >= MaxApps {
		return nil
	}
	r, loaded := l.rings.LoadOrStore(app, new(ring))
	if !loaded {
		l.apps.Add(1)
	}
	return r.(*ring)
}

// List returns app's entries after cursor (all when cursor is the zero
// Key) in newest-first order, at most limit, and whether more follow.
func (l *Log) List(app string, cursor Key, limit int) ([]Entry, bool) {
	v, ok := l.rings.Load(app)
	if !ok || limit <= 0 {
		return nil, false
	}
	r := v.(*ring)
	r.mu.Lock()
	n := int(min(r.added, Size))
	all := make([]Entry, n)
	for i := range n {
		all[i] = r.buf[(r.added-1-uint64(i))%Size] // newest first
	}
	r.mu.Unlock()
	Sort(all) // equal times may have been added out of order
	if cursor != (Key{}) {
		all = slices.DeleteFunc(all, func(e Entry) bool { return !e.Key().Less(cursor) })
	}
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// Sort orders entries newest first.
func Sort(list []Entry) {
	slices.SortFunc(list, func(a, b Entry) int {
		switch ka, kb := a.Key(), b.Key(); {
		case kb.Less(ka):
			return -1
		case ka.Less(kb):
			return 1
		}
		return 0
	})
}

// Merge orders the nodes' pages, merged in list, newest first, keeps the
// first limit after cursor and returns them with the next page's cursor
// ("" on the last page). more says a node had entries beyond its page.
func Merge(list []Entry, more bool, cursor Key, limit int) ([]Entry, string) {
	if cursor != (Key{}) {
		list = slices.DeleteFunc(list, func(e Entry) bool { return !e.Key().Less(cursor) })
	}
	Sort(list)
	// A push repeated with its id within the idempotency window is listed
	// once, at its latest time.
	seen := make(map[string]bool, len(list))
	list = slices.DeleteFunc(list, func(e Entry) bool {
		dup := seen[e.ID]
		seen[e.ID] = true
		return dup
	})
	if len(list) > limit {
		list, more = list[:limit], true
	}
	if !more || len(list) == 0 {
		return list, ""
	}
	return list, list[len(list)-1].Key().String()
}
