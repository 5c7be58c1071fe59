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

func token(s string) string {
	plain := s != "" && s[0] != '~'
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if plain {
		return s
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(s))
}
