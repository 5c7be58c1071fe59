package push

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkIdempotentPush measures the idempotency table on the push path:
// each push names a new id (claim, run, settle), as a backend that sets
// ids on every push does.
func BenchmarkIdempotentPush(b *testing.B) {
	s := &Service{idem: newIdemTable(5*time.Minute, 0)}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "shop\x00k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			key := keys[i&(len(keys)-1)] + strconv.Itoa(i)
			_, _ = s.idempotent(key, func() (string, error) { return key, nil })
		}
	})
}
