package recent

import (
	"fmt"
	"testing"
)

func ids(list []Entry) []string {
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.ID
	}
	return out
}

// TestRingKeepsTheLastNewestFirst: past Size pushes the oldest go; the
// list is newest first and pages by cursor without repeats or gaps.
func TestRingKeepsTheLastNewestFirst(t *testing.T) {
	var l Log
	for i := range Size + 50 {
		l.Add("a", Entry{ID: fmt.Sprintf("m%03d", i), At: int64(1000 + i)})
	}
	l.Add("b", Entry{ID: "other", At: 5000})
	all, more := l.List("a", Key{}, 1000)
	if more || len(all) != Size {
		t.Fatalf("got %d entries (more %v), want %d", len(all), more, Size)
	}
	if all[0].ID != fmt.Sprintf("m%03d", Size+49) || all[Size-1].ID != "m050" {
		t.Fatalf("first %s last %s", all[0].ID, all[Size-1].ID)
	}
	var paged []Entry
	cursor := Key{}
	for {
		page, more := l.List("a", cursor, 30)
		paged = append(paged, page...)
		if !more {
			break
		}
		cursor = page[len(page)-1].Key()
	}
	if fmt.Sprint(ids(paged)) != fmt.Sprint(ids(all)) {
		t.Fatalf("paging gave %v", ids(paged))
	}
	if list, _ := l.List("none", Key{}, 10); len(list) != 0 {
		t.Fatalf("unknown app listed %v", list)
	}
}

// TestAddAllocatesNothing: once an app's ring exists, recording a push
// allocates nothing (it is on the push path).
func TestAddAllocatesNothing(t *testing.T) {
	var l Log
	e := Entry{ID: "m_1", At: 1, Users: 1, First: "alice"}
	l.Add("a", e)
	if n := testing.AllocsPerRun(1000, func() { l.Add("a", e) }); n != 0 {
		t.Fatalf("Add allocates %v times", n)
	}
}

// TestAppsAreBounded: past MaxApps, a new app's pushes are not kept.
func TestAppsAreBounded(t *testing.T) {
	var l Log
	for i := range MaxApps + 5 {
		l.Add(fmt.Sprint("app", i), Entry{ID: "m", At: 1})
	}
	if list, _ := l.List(fmt.Sprint("app", MaxApps+1), Key{}, 10); len(list) != 0 {
		t.Fatalf("app past the bound kept %v", list)
	}
	if list, _ := l.List("app0", Key{}, 10); len(list) != 1 {
		t.Fatalf("first app lost its push")
	}
}

// TestMergeAcrossNodes: pages from several nodes come out newest first,
// cut at limit, with a cursor that continues after the last kept.
func TestMergeAcrossNodes(t *testing.T) {
	list := []Entry{{ID: "a1", At: 10}, {ID: "b1", At: 30}, {ID: "c1", At: 20}, {ID: "a2", At: 40}, {ID: "b0", At: 30}}
	page, next := Merge(list, false, Key{}, 3)
	if got := fmt.Sprint(ids(page)); got != "[a2 b1 b0]" || next != "30.b0" {
		t.Fatalf("page %s next %q", got, next)
	}
	k, err := ParseCursor(next)
	if err != nil {
		t.Fatal(err)
	}
	page, next = Merge(list, false, k, 3)
	if got := fmt.Sprint(ids(page)); got != "[c1 a1]" || next != "" {
		t.Fatalf("second page %s next %q", got, next)
	}
	for _, bad := range []string{"x", "12", "12.", "-3.a", "a.b"} {
		if _, err := ParseCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

// BenchmarkAdd is what recording a push costs on the push path,
// uncontended and with every core pushing to one app.
func BenchmarkAdd(b *testing.B) {
	var l Log
	e := Entry{ID: "m_1", At: 1, Users: 1, First: "alice"}
	b.Run("goroutines=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Add("a", e)
		}
	})
	b.Run("goroutines=parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Add("a", e)
			}
		})
	})
}
