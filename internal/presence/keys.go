package presence

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Kind is what a scope counts.
type Kind uint8

// The kinds of scope.
const (
	// User: the app's user has a connection somewhere (user.online and
	// user.offline).
	User Kind = iota + 1
	// Room: the app's room has a member somewhere (room.occupied and
	// room.vacated).
	Room
	// Member: the user is in the presence room (presence.join and
	// presence.leave).
	Member
)

// String is the kind's name.
func (k Kind) String() string {
	switch k {
	case User:
		return "user"
	case Room:
		return "room"
	case Member:
		return "member"
	}
	return "unknown"
}

// Scope is one thing whose presence is tracked. User scopes have no Room,
// Room scopes no User.
type Scope struct {
	Kind            Kind
	App, Room, User string
}

// Bucket keys (every variable token base64url-encoded, so any string fits
// a key token; "-" is the empty string, which base64 never produces):
//
//	s.u.<app>.<user>         shared state of a User scope
//	s.r.<app>.<room>         ... of a Room scope
//	s.m.<app>.<room>.<user>  ... of a Member scope
//	x.<node>.<scope key without "s.">  the node is in (or finalizes) the scope
//	c.<node>.<conn>          a connection record of the node
//	r.<node>                 the node has (had) entries to sweep
func tok(s string) string {
	if s == "" {
		return "-"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func untok(t string) (string, error) {
	if t == "-" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	return string(b), err
}

// tail is the scope's key without the "s." prefix.
func (s Scope) tail() string {
	switch s.Kind {
	case User:
		return "u." + tok(s.App) + "." + tok(s.User)
	case Room:
		return "r." + tok(s.App) + "." + tok(s.Room)
	default:
		return "m." + tok(s.App) + "." + tok(s.Room) + "." + tok(s.User)
	}
}

func (s Scope) key() string                 { return "s." + s.tail() }
func (s Scope) index(node string) string    { return "x." + tok(node) + "." + s.tail() }
func connKey(node, conn string) string      { return "c." + tok(node) + "." + tok(conn) }
func rosterKey(node string) string          { return "r." + tok(node) }
func membersFilter(app, room string) string { return "s.m." + tok(app) + "." + tok(room) + ".*" }

var errBadKey = errors.New("presence: malformed key")

// parseTail turns a key tail ("u.<app>.<user>", …) back into a scope.
func parseTail(t string) (Scope, error) {
	parts := strings.Split(t, ".")
	dec := func(i int) string {
		v, err := untok(parts[i])
		if err != nil {
			parts = nil
		}
		return v
	}
	var s Scope
	switch {
	case len(parts) == 3 && parts[0] == "u":
		s = Scope{Kind: User, App: dec(1), User: dec(2)}
	case len(parts) == 3 && parts[0] == "r":
		s = Scope{Kind: Room, App: dec(1), Room: dec(2)}
	case len(parts) == 4 && parts[0] == "m":
		s = Scope{Kind: Member, App: dec(1), Room: dec(2), User: dec(3)}
	default:
		return Scope{}, errBadKey
	}
	if parts == nil {
		return Scope{}, errBadKey
	}
	return s, nil
}
