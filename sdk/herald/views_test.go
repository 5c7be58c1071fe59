package herald_test

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// TestRecentMessagesAndHistory: the recent pushes come newest first with
// their targets, paged by cursor; the history has points from the start.
func TestRecentMessagesAndHistory(t *testing.T) { eachTransport(t, testRecentMessagesAndHistory) }

func testRecentMessagesAndHistory(t *testing.T, n *node) {
	cl := n.client(apiKey)
	first, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Rooms: []string{"lobby"}}, Data: 1})
	if err != nil {
		t.Fatal(err)
	}
	second, err := cl.Push(ctx(t), herald.PushRequest{To: herald.Target{Users: []string{"bob", "carol"}}, Data: 2, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := cl.RecentMessages(ctx(t), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	m := page.Messages
	if len(m) != 1 || m[0].ID != second || !m[0].Offline || m[0].To != (herald.RecentTargets{Users: 2, First: "bob"}) ||
		m[0].Node == "" || time.Since(m[0].At) > time.Hour || page.Next == "" {
		t.Fatalf("first page %+v", page)
	}
	page, err = cl.RecentMessages(ctx(t), page.Next, 1)
	if err != nil || len(page.Messages) != 1 || page.Messages[0].ID != first || page.Messages[0].To != (herald.RecentTargets{Rooms: 1, First: "lobby"}) {
		t.Fatalf("second page %+v, %v", page, err)
	}
	if _, err := cl.RecentMessages(ctx(t), "bogus", 0); herald.ErrorCode(err) != herald.CodeInvalidArgument {
		t.Fatalf("a bad cursor: %v", err)
	}
	h, err := cl.StatsHistory(ctx(t), time.Time{})
	if err != nil || h.Interval != 5*time.Second || len(h.Points) == 0 || h.Points[0].At.IsZero() {
		t.Fatalf("history %+v, %v", h, err)
	}
	last := h.Points[len(h.Points)-1].At
	if h, err = cl.StatsHistory(ctx(t), last.Add(-time.Millisecond)); err != nil || len(h.Points) == 0 || !h.Points[0].At.Equal(last) {
		t.Fatalf("history since the last point: %+v, %v", h, err)
	}
}
