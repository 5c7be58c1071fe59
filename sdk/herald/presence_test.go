package herald_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sdk/herald"
)

// TestPresence: over each API transport, a presence room's Joined event
// lists the members, the others get a Presence event for each arrival and
// departure, and Client.Presence lists the room's users.
func TestPresence(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) {
				c.PresenceRooms = []string{"chat-*"}
				c.Limits.OfflineDelay = 50 * time.Millisecond
			})
			n.via = tr
			cl := n.client(apiKey)
			a, _ := n.dial("alice")
			next[*herald.Resumed](t, a)
			if err := a.Join("chat-1"); err != nil {
				t.Fatal(err)
			}
			if j := next[*herald.Joined](t, a); j.Room != "chat-1" || !slices.Equal(j.Members, []string{"alice"}) || j.More {
				t.Fatalf("alice joined: %+v", j)
			}
			users := func(want ...string) {
				t.Helper()
				deadline := time.Now().Add(wait)
				for {
					p, err := cl.Presence(ctx(t), "chat-1", "")
					if err != nil {
						t.Fatal(err)
					}
					if p.Room == "chat-1" && p.Next == "" && slices.Equal(p.Users, want) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("presence %+v, want %v", p, want)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			users("alice")
			b, _ := n.dial("bob")
			next[*herald.Resumed](t, b)
			if err := b.Join("chat-1"); err != nil {
				t.Fatal(err)
			}
			if j := next[*herald.Joined](t, b); !slices.Equal(j.Members, []string{"alice", "bob"}) {
				t.Fatalf("bob joined: %+v", j)
			}
			if p := next[*herald.Presence](t, a); p.Room != "chat-1" || !slices.Equal(p.Join, []string{"bob"}) || p.Leave != nil {
				t.Fatalf("alice told %+v", p)
			}
			users("alice", "bob")
			b.Close()
			if p := next[*herald.Presence](t, a); !slices.Equal(p.Leave, []string{"bob"}) || p.Join != nil {
				t.Fatalf("alice told %+v", p)
			}
			users("alice")
			_, err := cl.Presence(ctx(t), "lobby", "")
			var he *herald.Error
			if !errors.As(err, &he) || he.Code != herald.CodeInvalidArgument {
				t.Fatalf("not a presence room: %v", err)
			}
		})
	}
}
