package push

import (
	"context"
	"hash/maphash"
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
