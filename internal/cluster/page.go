package cluster

import (
	"slices"
	"sort"
	"strings"

	"github.com/heraldpush/herald/internal/hub"
)

// Paging of cluster-wide lists (a room's members, a user's connections):
// every list is ordered by connection id, and a cursor is the last id of
// the previous page. Each node answers its first limit items after the
// cursor and whether it has more (pageAfter); the node taking the call
// merges the answers, keeps the first limit and, when anything is left,
// names the last kept id as the next cursor (mergePage). Connections that
// come or go between two calls may be missed or appear, but no connection
// present throughout is returned twice or skipped.

// PageSize is how many items a page holds when the call names no limit.
const PageSize = 100

// MaxPageSize bounds the limit a call may name.
const MaxPageSize = 1000

// pageAfter returns the items of sorted (ordered by id) after cursor, at
// most limit, and whether more follow them.
func pageAfter[T any](sorted []T, id func(T) string, cursor string, limit int) ([]T, bool) {
	start := sort.Search(len(sorted), func(i int) bool { return id(sorted[i]) > cursor })
	end := min(len(sorted), start+limit)
	return sorted[start:end], end < len(sorted)
}

// mergePage orders the nodes' pages merged in items by id, keeps the first
// limit after cursor and returns them with the next cursor ("" on the last
// page). more says some node had items beyond its page.
func mergePage[T any](items []T, more bool, id func(T) string, cursor string, limit int) ([]T, string) {
	// A node that ignores the cursor (an older version) must not bring
	// back earlier pages.
	items = slices.DeleteFunc(items, func(x T) bool { return cursor != "" && id(x) <= cursor })
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	if len(items) > limit {
		items, more = items[:limit], true
	}
	if !more || len(items) == 0 {
		return items, ""
	}
	return items, id(items[len(items)-1])
}

func memberID(m Member) string     { return m.Conn }
func connID(c ConnInfo) string     { return c.ID }
func hubConnID(c *hub.Conn) string { return c.ID }
