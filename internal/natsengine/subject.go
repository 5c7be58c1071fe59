package natsengine

import (
	"encoding/base64"

	"github.com/heraldpush/herald/internal/engine"
)

// Prefix begins every subject Herald uses (the inbox stream's too).
const Prefix = "hrl."

// Subject returns the NATS subject of a topic. Names that are not plain
// subject tokens are base64url-encoded behind a '~'.
func Subject(t engine.Topic) string {
	switch t.Kind {
	case engine.User:
		return Prefix + "u." + Token(t.App) + "." + Token(t.Name)
	case engine.Room:
		return Prefix + "r." + Token(t.App) + "." + Token(t.Name)
	case engine.App:
		return Prefix + "a." + Token(t.App)
	case engine.All:
		return Prefix + "all"
	default:
		return Prefix + "n." + Token(t.Name)
	}
}

// Token returns s as one literal subject token: as it is when plain,
// else '~' + base64url (see escape). Parts built on the engine (the inbox)
// name their subjects with it too.
func Token(s string) string { return escape(s, '~') }

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
