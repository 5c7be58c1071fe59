package push

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
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
