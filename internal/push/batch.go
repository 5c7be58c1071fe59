package push

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/protocol"
)

// batchLanes is how many pushes of one batch are in flight at once.
const batchLanes = 32

var laneSeed = maphash.MakeSeed()

// PushMany pushes a batch. reqs[i] is skipped where errs[i] is already set;
// errs[i] receives each push's error and the returned ids[i] its id.
// Pushes to different users run concurrently (storing an offline message
// waits for the engine, so a batch of them would otherwise take one round
// trip per item); pushes to the same single user keep their order, and a
// batch with a push to several users runs in order, one at a time.
func (s *Service) PushMany(ctx context.Context, reqs []*Request, errs []error) []string {
	if s.storable(reqs, errs) {
		return s.storeMany(ctx, reqs, errs)
	}
	ids := make([]string, len(reqs))
	lanes := batchLanes
	for i, r := range reqs {
		if errs[i] == nil && len(r.To.Users) > 1 {
			lanes = 1
			break
		}
	}
	work := make([][]int, lanes)
	for i, r := range reqs {
		if errs[i] != nil {
			continue
		}
		lane := i % lanes
		if len(r.To.Users) == 1 {
			lane = int(maphash.String(laneSeed, r.App+"\x00"+r.To.Users[0]) % uint64(lanes))
		}
		work[lane] = append(work[lane], i)
	}
	var wg sync.WaitGroup
	for _, items := range work {
		if len(items) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, i := range items {
				ids[i], errs[i] = s.Push(ctx, reqs[i])
			}
		}()
	}
	wg.Wait()
	return ids
}

// orderStripes serialise, per user (and per history room), storing a
// message and publishing it live, so that this node publishes a user's
// stored messages in sequence order: a client acking the highest seq it
// has seen has then seen every one before it.
const orderStripes = 256

type orderLocks [orderStripes]sync.Mutex

// lock takes the stripes of keys in ascending order (so two callers never
// wait on each other crosswise) and returns the unlock.
func (o *orderLocks) lock(app string, keys []string) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, int(maphash.String(laneSeed, app+"\x00"+k)%orderStripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		o[i].Lock()
	}
	return func() {
		for _, i := range idx {
			o[i].Unlock()
		}
	}
}

// storable reports whether every push of a batch still to do is an offline
// push to one user and nothing else: such a batch is stored with one
// pipelined engine call per app (storeMany).
func (s *Service) storable(reqs []*Request, errs []error) bool {
	n := 0
	for i, r := range reqs {
		if errs[i] != nil {
			continue
		}
		t := &r.To
		if !r.Offline || len(t.Users) != 1 || len(t.Conns)+len(t.Rooms) > 0 || t.App || t.All {
			return false
		}
		n++
	}
	return n > 1
}

// storeMany stores a storable batch: validated, then per app one AppendMany
// (each user's messages keep their order), one round of records, and each
// message published live with its seq. A push with an id seen within the
// idempotency window is not stored again: it gets the first one's answer.
func (s *Service) storeMany(ctx context.Context, reqs []*Request, errs []error) []string {
	ids := make([]string, len(reqs))
	byApp := map[string][]int{}
	owned := map[int]*idemEntry{}
	repeats := map[int]*idemEntry{}
	for i, r := range reqs {
		if errs[i] != nil {
			continue
		}
		if errs[i] = s.validate(r); errs[i] != nil {
			continue
		}
		if r.ID != "" {
			e, own := s.claim(r.App + "\x00" + r.ID)
			if !own {
				repeats[i] = e
				continue
			}
			owned[i] = e
		}
		byApp[r.App] = append(byApp[r.App], i)
	}
	for app, items := range byApp {
		s.storeApp(ctx, app, reqs, items, ids, errs)
	}
	for i, e := range owned {
		s.settle(reqs[i].App+"\x00"+reqs[i].ID, e, ids[i], errs[i])
	}
	for i, e := range repeats {
		<-e.done
		ids[i], errs[i] = e.id, e.err
	}
	for i, err := range errs {
		if err == nil {
			s.accepted(reqs[i], ids[i])
		}
	}
	return ids
}

func (s *Service) storeApp(ctx context.Context, app string, reqs []*Request, items []int, ids []string, errs []error) {
	users := make([]string, len(items))
	for k, i := range items {
		users[k] = reqs[i].To.Users[0]
	}
	unlock := s.order.lock(app, users)
	now := time.Now()
	batch := newID()
	entries := make([]engine.Entry, len(items))
	for k, i := range items {
		r := reqs[i]
		ttl := s.limits.DefaultTTL
		if r.TTL != nil {
			ttl = time.Duration(*r.TTL) * time.Second
		}
		id := r.ID
		if id == "" {
			id = engine.BatchID(batch, k)
		}
		m := protocol.Message{ID: id, Event: r.Event, Data: r.Data, TS: now.UnixMilli()}
		entries[k] = engine.Entry{User: users[k], ID: m.ID, Payload: protocol.AppendMessage(nil, &m), TTL: ttl}
	}
	seqs, failed := s.inbox.AppendMany(ctx, app, entries)
	records := make([]engine.MessageRecord, 0, len(items))
	var msg []byte
	stored := 0
	for k, i := range items {
		if failed != nil && failed[k] != nil {
			errs[i] = &Error{Code: CodeUnavailable, Message: "the message could not be stored", Err: failed[k]}
			continue
		}
		e := &entries[k]
		ids[i] = e.ID
		stored++
		records = append(records, engine.MessageRecord{ID: e.ID, App: app, Created: now, TTL: e.TTL,
			Users: []engine.UserSeq{{User: e.User, Seq: seqs[k]}}})
		if s.limits.Alone && !s.hub.Online(app, e.User) {
			// A connection registers before it reads its inbox, so
			// one that registers from now on replays this message.
			continue
		}
		msg = protocol.AppendWithSeq(msg[:0], e.Payload, seqs[k])
		env := envelope{App: app, Users: []string{e.User}, ID: e.ID, Seq: seqs[k]}
		if err := s.publishTopic(ctx, engine.Topic{Kind: engine.User, App: app, Name: e.User}, &env, msg, false); err != nil {
			s.log.Warn("publishing a stored message live", "id", e.ID, "err", err)
		}
	}
	unlock() // the records need no order
	if err := retried(ctx, func() error { return s.records.PutBatch(ctx, app, batch, records) }); err != nil {
		// Not acknowledged without their records (see store). The live
		// copies went out under the order lock, before the records (which
		// keeps a batch's records off the lock): users online then have
		// had them, and a retry delivers them again with new seqs.
		copies := make([]engine.UserSeq, 0, len(records))
		for _, rec := range records {
			copies = append(copies, rec.Users...)
		}
		s.unstore(ctx, app, copies)
		for _, i := range items {
			if errs[i] == nil {
				ids[i], errs[i] = "", &Error{Code: CodeUnavailable, Err: err,
					Message: "the message's status could not be recorded; its stored copy was removed (users online then may have had it)"}
			}
		}
		stored = 0
	} else {
		s.scheduleExpiry(ctx, app, records...)
	}
	s.count(app, stored, 0)
	s.countStored(app, stored)
	s.metrics.Pushed("api", stored)
}
