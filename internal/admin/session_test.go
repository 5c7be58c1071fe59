package admin

import (
	"bytes"
	"compress/gzip"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/apikey"
)

// TestSessionExpires: a session is gone at its expiry, with a fake clock.
func TestSessionExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &sessions{byID: map[string]*session{}, now: func() time.Time { return now }, ttl: time.Hour}
	id, csrf, ok := s.create(apikey.Caller{Admin: true})
	if !ok || id == "" || csrf == "" || id == csrf {
		t.Fatalf("create: %q %q %v", id, csrf, ok)
	}
	now = now.Add(time.Hour - time.Second)
	if _, ok := s.get(id); !ok {
		t.Fatal("session gone before its expiry")
	}
	now = now.Add(time.Second)
	if _, ok := s.get(id); ok {
		t.Fatal("session alive at its expiry")
	}
}

// TestThrottleRefills: after LoginBurst failures an IP waits LoginRefill
// for its next try; other IPs are not affected.
func TestThrottleRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	th := &throttle{ips: map[string]*bucket{}, now: func() time.Time { return now }, burst: LoginBurst, every: LoginRefill}
	for range LoginBurst {
		if ok, _ := th.allowed("1.2.3.4"); !ok {
			t.Fatal("refused within the burst")
		}
		th.failed("1.2.3.4")
	}
	ok, wait := th.allowed("1.2.3.4")
	if ok || wait <= 0 || wait > LoginRefill {
		t.Fatalf("after the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := th.allowed("5.6.7.8"); !ok {
		t.Fatal("another IP is throttled")
	}
	now = now.Add(LoginRefill)
	if ok, _ := th.allowed("1.2.3.4"); !ok {
		t.Fatal("still refused after one refill")
	}
}

// TestAssetBudget: every file of the UI, gzipped, fits in 200 KiB.
func TestAssetBudget(t *testing.T) {
	assets, err := loadAssets()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, a := range assets {
		r, err := gzip.NewReader(bytes.NewReader(a.gz))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := out.ReadFrom(r); err != nil || !bytes.Equal(out.Bytes(), a.body) {
			t.Fatalf("%s: gzip round trip: %v", name, err)
		}
		total += len(a.gz)
	}
	if _, ok := assets["index.html"]; !ok || total > 200<<10 {
		t.Fatalf("assets %d bytes gzipped (index.html present: %v), budget 200 KiB", total, ok)
	}
}
