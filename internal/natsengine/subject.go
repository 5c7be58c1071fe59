package natsengine

import (
	"encoding/base64"

	"github.com/heraldpush/herald/internal/engine"
)

const prefix = "hrl."

// Subject returns the NATS subject of a topic. Names that are not plain
// subject tokens are base64url-encoded behind a '~'.
func Subject(t engine.Topic) string {
	switch t.Kind {
	case engine.User:
		return prefix + "u." + token(t.App) + "." + token(t.Name)
	case engine.Room:
		return prefix + "r." + token(t.App) + "." + token(t.Name)
	case engine.App:
		return prefix + "a." + token(t.App)
	case engine.All:
		return prefix + "all"
	default:
		return prefix + "n." + token(t.Name)
	}
}

func token(s string) string { return escape(s, '~') }

// escape keeps a name made only of A–Z a–z 0–9 _ - as it is and turns any
// other (and one starting with mark) into mark + base64url, so it can never
// split or wildcard a subject or key.
func escape(s string, mark byte) string {
	plain := s != "" && s[0] != mark
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if plain {
		return s
	}
	return string(mark) + base64.RawURLEncoding.EncodeToString([]byte(s))
}
