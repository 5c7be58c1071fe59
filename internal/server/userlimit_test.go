package server

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	heraldv1 "github.com/heraldpush/herald/api/herald/v1"
	"github.com/heraldpush/herald/api/herald/v1/heraldv1connect"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/protocol"
)

// refused fails the test unless the connection is closed with 4009
// before any welcome.
func (c *client) refused() {
	c.t.Helper()
	for m := range c.frames {
		c.t.Fatalf("refused connection got frame %v", m)
	}
	if code := <-c.closed; code != protocol.CloseTooManyConns {
		c.t.Fatalf("closed with %d, want %d", code, protocol.CloseTooManyConns)
	}
}

// userCount returns count and the number of conns of GET /v1/users/{user}.
func (n *node) userCount(query string) (count, listed int) {
	n.t.Helper()
	out := n.ok(200, "GET", "/v1/users/"+query, nil)
	return int(out["count"].(float64)), len(out["conns"].([]any))
}

// TestUserConnectionLimit: one user may hold max_conns_per_user
// connections on a node; the next is closed with 4009 before its welcome,
// while the others stay and keep receiving; other users and other apps'
// users are unaffected; an app's own limit wins over the global one; a
// closed connection frees its place.
func TestUserConnectionLimit(t *testing.T) {
	const limit = 5
	n := startNode(t, func(c *config.Config) {
		c.Limits.MaxConnsPerUser = limit
		c.Apps = []config.App{{Name: "small", APIKeys: []string{"small-key-0123456789"}, TokenSecret: "small-secret-0123456789", MaxConnsPerUser: 2}}
	})
	var alice []*client
	for i := range limit {
		alice = append(alice, n.dial(fmt.Sprintf("user=alice&device=d%d", i), dialOpt{}))
	}
	c, err := n.tryDial("user=alice&device=extra", dialOpt{})
	if err != nil {
		t.Fatal(err)
	}
	c.refused()
	if count, _ := n.userCount("alice"); count != limit {
		t.Fatalf("alice has %d connections, want %d", count, limit)
	}
	n.push("", map[string]any{"to": map[string]any{"users": []string{"alice"}}, "data": "still here"})
	for _, a := range alice {
		a.expectData("still here")
	}
	bob := n.dial("user=bob", dialOpt{})
	n.push("", map[string]any{"to": map[string]any{"users": []string{"bob"}}, "data": "hi bob"})
	bob.expectData("hi bob")
	if m := n.metrics(); !strings.Contains(m, "herald_gateway_user_limit_refused_total 1\n") {
		t.Fatalf("metrics do not count one refusal:\n%s", m)
	}

	// The app's own limit (2) wins; alice of app small is not alice of demo.
	n.dial("app=small&user=alice", dialOpt{})
	n.dial("app=small&user=alice", dialOpt{})
	c, err = n.tryDial("app=small&user=alice", dialOpt{})
	if err != nil {
		t.Fatal(err)
	}
	c.refused()
	n.dial("app=small&user=carol", dialOpt{})

	// A closed connection frees its place.
	alice[0].conn.Close()
	waitFor(t, func() bool { count, _ := n.userCount("alice"); return count == limit-1 })
	n.dial("user=alice&device=again", dialOpt{})
}

// TestUserConnectionLimitConcurrent: many connections of one user at
// once; exactly the limit are welcomed, every other one is closed with
// 4009.
func TestUserConnectionLimitConcurrent(t *testing.T) {
	const limit, tries = 4, 24
	n := startNode(t, func(c *config.Config) { c.Limits.MaxConnsPerUser = limit })
	var (
		mu               sync.Mutex
		welcomed, closed int
		wg               sync.WaitGroup
	)
	for range tries {
		wg.Go(func() {
			c, err := n.tryDial("user=dave", dialOpt{})
			if err != nil {
				t.Error(err)
				return
			}
			m, ok := <-c.frames
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ok && m["type"] == "welcome":
				welcomed++
			case !ok:
				if code := <-c.closed; code != protocol.CloseTooManyConns {
					t.Errorf("closed with %d, want %d", code, protocol.CloseTooManyConns)
				}
				closed++
			default:
				t.Errorf("first frame %v", m)
			}
		})
	}
	wg.Wait()
	if welcomed != limit || closed != tries-limit {
		t.Fatalf("%d welcomed and %d refused, want %d and %d", welcomed, closed, limit, tries-limit)
	}
	if count, _ := n.userCount("dave"); count != limit {
		t.Fatalf("dave has %d connections, want %d", count, limit)
	}
}

// pageUser follows GET /v1/users/{user}?limit= from the first page to the
// last and returns the ids of each page.
func (n *node) pageUser(user string, limit int) [][]string {
	n.t.Helper()
	var pages [][]string
	cursor := ""
	for range 100 {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		out := n.ok(200, "GET", "/v1/users/"+user+"?"+q.Encode(), nil)
		ids, _ := userConns(out)
		pages = append(pages, ids)
		next, _ := out["next"].(string)
		if next == "" {
			return pages
		}
		if next != ids[len(ids)-1] {
			n.t.Fatalf("next %q is not the page's last id %q", next, ids[len(ids)-1])
		}
		cursor = next
	}
	n.t.Fatal("no last page")
	return nil
}

// checkPages fails unless pages hold want (sorted) in order, each page but
// the last full.
func checkPages(t *testing.T, pages [][]string, want []string, limit int) {
	t.Helper()
	var all []string
	for i, p := range pages {
		if len(p) > limit || i < len(pages)-1 && len(p) != limit {
			t.Fatalf("page %d has %d conns (limit %d): %v", i, len(p), limit, pages)
		}
		all = append(all, p...)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("pages %v, want %v in order", pages, want)
	}
}

// TestUserQueryPages: GET /v1/users/{user} returns at most limit (default
// 100, at most 1000) connections per page, ordered by id, with a next
// cursor until the last page, and the user's total in count; the same
// over gRPC.
func TestUserQueryPages(t *testing.T) {
	n := startNode(t, nil)
	var want []string
	for range 7 {
		want = append(want, n.dial("user=erin", dialOpt{}).id)
	}
	slices.Sort(want)
	pages := n.pageUser("erin", 3)
	if len(pages) != 3 {
		t.Fatalf("%d pages, want 3: %v", len(pages), pages)
	}
	checkPages(t, pages, want, 3)
	out := n.ok(200, "GET", "/v1/users/erin?limit=3", nil)
	if out["count"] != float64(7) || out["online"] != true {
		t.Fatalf("first page %v: want count 7, online", out)
	}
	out = n.ok(200, "GET", "/v1/users/erin", nil)
	if ids, _ := userConns(out); !slices.Equal(ids, want) || out["next"] != nil {
		t.Fatalf("default page %v, want all of %v and no next", out, want)
	}
	out = n.ok(200, "GET", "/v1/users/erin?cursor="+url.QueryEscape(want[6]), nil)
	if ids, _ := userConns(out); len(ids) != 0 || out["next"] != nil || out["online"] != true || out["count"] != float64(7) {
		t.Fatalf("page after the last id: %v", out)
	}
	out = n.ok(200, "GET", "/v1/users/nobody?limit=2", nil)
	if mustJSON(out) != `{"conns":[],"count":0,"online":false,"user":"nobody"}` {
		t.Fatalf("unknown user: %s", mustJSON(out))
	}
	for _, bad := range []string{"0", "-1", "1001", "ten"} {
		status, out := n.call("GET", "/v1/users/erin?limit="+bad, "", nil)
		if status != 400 || errCode(out) != "invalid_argument" {
			t.Fatalf("limit=%s: %d %v, want 400 invalid_argument", bad, status, out)
		}
	}
	n.ok(200, "GET", "/v1/users/erin?limit=1000", nil)

	for _, cl := range n.rpcClients() {
		var got []string
		cursor := ""
		for i := 0; ; i++ {
			u, err := call[heraldv1.GetUserRequest, heraldv1.GetUserResponse](cl, "", heraldv1connect.HeraldServiceGetUserProcedure,
				&heraldv1.GetUserRequest{User: "erin", Cursor: cursor, Limit: 3})
			if err != nil {
				t.Fatalf("%s: %v", cl.name, err)
			}
			if u.Count != 7 || !u.Online || len(u.Conns) > 3 || i > 3 {
				t.Fatalf("%s page %d: %v", cl.name, i, u)
			}
			for _, c := range u.Conns {
				got = append(got, c.Id)
			}
			if cursor = u.Next; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s pages %v, want %v", cl.name, got, want)
		}
		_, err := call[heraldv1.GetUserRequest, heraldv1.GetUserResponse](cl, "", heraldv1connect.HeraldServiceGetUserProcedure,
			&heraldv1.GetUserRequest{User: "erin", Limit: 1001})
		if code, detail := errCodes(t, err); code != connect.CodeInvalidArgument || detail != "invalid_argument" {
			t.Fatalf("%s limit 1001: %v %q", cl.name, code, detail)
		}
	}
}

// TestClusterUserQueryPages: a user's connections on two nodes are paged
// as one list, whichever node answers.
func TestClusterUserQueryPages(t *testing.T) {
	_, nodes := startCluster(t, 2, nil)
	var want []string
	for i := range 5 {
		want = append(want, nodes[i%2].dial("user=frank", dialOpt{}).id)
	}
	slices.Sort(want)
	for _, nd := range nodes {
		checkPages(t, nd.pageUser("frank", 2), want, 2)
		if count, listed := nd.userCount("frank?limit=1"); count != 5 || listed != 1 {
			t.Fatalf("count %d, listed %d; want 5 and 1", count, listed)
		}
	}
}
