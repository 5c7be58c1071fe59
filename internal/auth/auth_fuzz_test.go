package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func FuzzVerify(f *testing.F) {
	fx := testFixtures()
	seeds := []string{
		sign(f, jwt.SigningMethodHS256, testSecret, base("hs", nil)),
		sign(f, jwt.SigningMethodHS256, testSecret, base("hs", map[string]any{"rooms": nil, "device": nil})),
		sign(f, jwt.SigningMethodRS256, fx.rsaKey, base("rs", nil)),
		sign(f, jwt.SigningMethodES256, fx.ecKey, base("es", nil)),
		sign(f, jwt.SigningMethodHS256, testSecret, base("hs", map[string]any{"exp": 1})),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base("hs", nil)),
		sign(f, jwt.SigningMethodHS256, otherSecret, base("hs", nil)),
		"",
		".",
		"..",
		"a.b.c",
		"eyJhbGciOiJub25lIn0.eyJhcHAiOiJocyJ9.",
		"\x00\xff garbage \n",
		strings.Repeat("A", 100),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := fx.ring.Verify(token, testNow)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpiredToken) {
				t.Fatalf("Verify error %v wraps neither sentinel", err)
			}
			return
		}
		if c.User == "" || c.App == "" {
			t.Fatalf("accepted token with empty user or app: %+v", c)
		}
		if c.Expires.IsZero() || !c.Expires.After(testNow) {
			t.Fatalf("accepted token with expiry %v not after now %v", c.Expires, testNow)
		}
		c.MayJoin("lobby")
	})
}
