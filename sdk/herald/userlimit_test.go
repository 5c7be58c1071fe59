package herald_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sdk/herald"
)

// TestTooManyConnsAndUserPages: a connection beyond the user's limit is
// refused with 4009 and Dial returns at once instead of retrying; User
// reads every page of the user's connections and UserPage one page, over
// each transport.
func TestTooManyConnsAndUserPages(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) { c.Limits.MaxConnsPerUser = 3 })
			n.via = tr
			var want []string
			for range 3 {
				_, hello := n.dial("alice")
				want = append(want, hello.Conn)
			}
			slices.Sort(want)
			_, err := herald.Dial(ctx(t), "ws://"+n.addr+"/v1/ws", herald.WithToken(token(t, "alice", nil)))
			var ce *herald.CloseError
			if !errors.As(err, &ce) || ce.Code != herald.CloseTooManyConns {
				t.Fatalf("fourth connection: %v, want close %d", err, herald.CloseTooManyConns)
			}

			cl := n.client(apiKey)
			var got []string
			cursor := ""
			for i := 0; ; i++ {
				page, err := cl.UserPage(ctx(t), "alice", cursor, 2)
				if err != nil || page.Count != 3 || !page.Online || len(page.Conns) > 2 || i > 2 {
					t.Fatalf("page %d: %+v, %v", i, page, err)
				}
				for _, c := range page.Conns {
					got = append(got, c.ID)
				}
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages hold %v, want %v", got, want)
			}
			all, err := cl.User(ctx(t), "alice")
			if err != nil || all.Count != 3 || len(all.Conns) != 3 || all.Next != "" {
				t.Fatalf("user: %+v, %v", all, err)
			}
			if _, err := cl.UserPage(ctx(t), "alice", "", herald.MaxPageSize+1); herald.ErrorCode(err) != herald.CodeInvalidArgument {
				t.Fatalf("limit above the maximum: %v", err)
			}
		})
	}
}
