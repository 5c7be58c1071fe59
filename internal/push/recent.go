package push

import (
	"time"

	"github.com/heraldpush/herald/internal/recent"
)

// accepted notes an accepted push: the debug log, and the app's ring of
// recent pushes. It allocates nothing (it is on the push path).
func (s *Service) accepted(r *Request, id string) {
	s.logPush(r, id)
	t := &r.To
	e := recent.Entry{ID: id, At: time.Now().UnixNano(), Users: int32(len(t.Users)), Conns: int32(len(t.Conns)),
		Rooms: int32(len(t.Rooms)), App: t.App, All: t.All, Offline: r.Offline}
	switch {
	case len(t.Users) > 0:
		e.First = t.Users[0]
	case len(t.Conns) > 0:
		e.First = t.Conns[0]
	case len(t.Rooms) > 0:
		e.First = t.Rooms[0]
	}
	s.recent.Add(r.App, e)
}

// Recent returns the pushes of app this node accepted lately, newest
// first, after cursor, at most limit, and whether more follow (see
// package recent).
func (s *Service) Recent(app string, cursor recent.Key, limit int) ([]recent.Entry, bool) {
	return s.recent.List(app, cursor, limit)
}

// Totals are a node's cumulative counts for one app (or all).
type Totals struct {
	Pushes, Deliveries uint64
	Stored             uint64 // copies stored in users' inboxes
	Acks               uint64 // acks stored (a client's acks arriving together count once)
}

// AllTotals returns the cumulative counts of every app this node has
// counted, keyed by app ("": every app).
func (s *Service) AllTotals() map[string]Totals {
	out := map[string]Totals{}
	s.counters.Range(func(k, v any) bool {
		c := v.(*counters)
		out[k.(string)] = Totals{Pushes: c.pushes.Load(), Deliveries: c.deliveries.Load(), Stored: c.stored.Load(), Acks: c.acks.Load()}
		return true
	})
	return out
}

// countStored counts n copies of messages stored in app's inboxes.
func (s *Service) countStored(app string, n int) {
	s.countersOf("").stored.Add(uint64(n))
	s.countersOf(app).stored.Add(uint64(n))
}

// countAck counts an ack stored for a user of app.
func (s *Service) countAck(app string) {
	s.countersOf("").acks.Add(1)
	s.countersOf(app).acks.Add(1)
}
