package auth

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is returned (wrapped) by Verify for any token that is
// malformed, unsigned, signed with the wrong key or algorithm, issued for an
// unknown app, or missing a required claim.
var ErrInvalidToken = errors.New("auth: invalid token")

// ErrExpiredToken is returned (wrapped) by Verify for a correctly signed token
// whose "exp" is not after the verification time.
var ErrExpiredToken = errors.New("auth: token expired")

// Supported signing algorithms.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
)

const (
	// minSecretLen is the minimum length in bytes of an HS256 shared secret.
	minSecretLen = 16

	// minRSABits is the smallest RSA modulus accepted for RS256 keys.
	minRSABits = 2048

	// maxTokenLen is the longest token Verify will look at; longer input is
	// rejected with ErrInvalidToken before any decoding.
	maxTokenLen = 8 << 10

	// lifetimeLeeway is the clock skew allowed between the backend that
	// mints tokens and this node when an app's maximum lifetime is checked
	// against the verification time.
	lifetimeLeeway = time.Minute

	// maxDateSeconds bounds a NumericDate: 9999-12-31T23:59:59Z.
	maxDateSeconds = 253402300799
)

// MaxLifetime is the ceiling on every token's lifetime, whatever the app's
// own maximum: a token whose "exp" is further than this from the
// verification time is refused. Herald keeps no revocation list, so a
// token valid for longer is, in practice, a password that never expires.
const MaxLifetime = 10 * 365 * 24 * time.Hour

// b64 is the JWT segment encoding. Strict decoding rejects non-canonical
// trailing bits, so a signed token has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// KeySpec says how one app's client tokens are signed.
type KeySpec struct {
	// Alg is "HS256" (the default when empty), "RS256" or "ES256". The
	// algorithm is pinned: a token signed with any other alg is rejected.
	Alg string
	// Secret is the HS256 shared secret, at least 16 bytes. It must
	// be empty for RS256 and ES256.
	Secret []byte
	// PublicKey is the PEM public key (PKIX, PKCS#1 or a certificate) for
	// RS256 (at least 2048 bits) or ES256 (P-256). It must be empty for HS256.
	PublicKey []byte
	// MaxLifetime, when positive, refuses a token whose "exp" is further
	// than this from the verification time (a minute of clock skew
	// allowed) or, with an "iat" claim, further than this from "iat".
	// Zero means no limit of the app's own (MaxLifetime, the package
	// constant, still applies).
	MaxLifetime time.Duration
}

// Claims are the verified contents of a client token.
type Claims struct {
	// App is the "app" claim: the app (tenant) the token was issued for.
	App string
	// User is the "sub" claim.
	User string
	// Device is the optional "device" claim.
	Device string
	// Rooms is the optional "rooms" claim: exact names, "prefix*" patterns,
	// or "*" for any room. Nil means the client may join no room.
	Rooms []string
	// Send is the optional "send" claim: whether the client may publish.
	Send bool
	// Expires is the "exp" claim, with whole-second precision.
	Expires time.Time
}

// MayJoin reports whether the claims allow joining room. A pattern "*"
// matches any room, a pattern ending in "*" matches every room starting with
// the text before it, and any other pattern must equal room exactly.
func (c Claims) MayJoin(room string) bool {
	for _, p := range c.Rooms {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(room, prefix) {
				return true
			}
		} else if p == room {
			return true
		}
	}
	return false
}

// tokenClaims is the wire form of a client token's payload. Its time
// claims are strict NumericDates (see numericDate); the other registered
// claims are ignored.
type tokenClaims struct {
	Subject   string       `json:"sub,omitempty"`
	ExpiresAt *numericDate `json:"exp,omitempty"`
	NotBefore *numericDate `json:"nbf,omitempty"`
	IssuedAt  *numericDate `json:"iat,omitempty"`
	App       string       `json:"app"`
	Device    string       `json:"device,omitempty"`
	Rooms     []string     `json:"rooms,omitzero"`
	Send      bool         `json:"send,omitempty"`
}

// The jwt.Claims methods; Verify checks the claims itself, so the parser
// never calls them.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.jwt(), nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.jwt(), nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.jwt(), nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return "", nil }
func (c *tokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

var _ jwt.Claims = (*tokenClaims)(nil)

// numericDate is a JWT NumericDate (RFC 7519 §2): a JSON number of seconds
// since the epoch, kept to whole seconds. Unlike jwt.NumericDate it refuses
// a number given as a string ("1700000000") and anything outside year 1970
// to 9999, so that a time claim has one accepted spelling.
type numericDate struct{ time.Time }

// errNumericDate is the reason a time claim is refused.
var errNumericDate = errors.New("time claim must be a number of seconds from 1970 to 9999")

// UnmarshalJSON accepts a JSON number only.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return errNumericDate // a string, boolean, object, array or negative number
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f > maxDateSeconds {
		return errNumericDate
	}
	d.Time = time.Unix(int64(f), 0).UTC()
	return nil
}

// MarshalJSON writes whole seconds.
func (d *numericDate) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, d.Unix(), 10), nil
}

func (d *numericDate) jwt() *jwt.NumericDate {
	if d == nil {
		return nil
	}
	return jwt.NewNumericDate(d.Time)
}

// appVerifier holds one app's parser, key and lifetime limit, built once
// by NewKeyring.
type appVerifier struct {
	parser      *jwt.Parser
	keyfunc     jwt.Keyfunc
	maxLifetime time.Duration
}

// Keyring verifies tokens for a set of apps. It is immutable and safe for
// concurrent use.
type Keyring struct {
	apps map[string]*appVerifier
}

// Has reports whether the keyring verifies tokens of app. A nil Keyring
// has no app.
func (k *Keyring) Has(app string) bool {
	if k == nil {
		return false
	}
	_, ok := k.apps[app]
	return ok
}

// NewKeyring validates and parses every app's key up front and returns a
// Keyring for them. An error names the offending app and never includes
// secret material.
func NewKeyring(apps map[string]KeySpec) (*Keyring, error) {
	k := &Keyring{apps: make(map[string]*appVerifier, len(apps))}
	for _, name := range slices.Sorted(maps.Keys(apps)) {
		if name == "" {
			return nil, errors.New("auth: empty app name")
		}
		v, err := newAppVerifier(name, apps[name])
		if err != nil {
			return nil, fmt.Errorf("auth: app %q: %w", name, err)
		}
		k.apps[name] = v
	}
	return k, nil
}

func newAppVerifier(name string, spec KeySpec) (*appVerifier, error) {
	if spec.MaxLifetime < 0 {
		return nil, errors.New("negative maximum token lifetime")
	}
	alg := spec.Alg
	if alg == "" {
		alg = algHS256
	}
	var key any
	switch alg {
	case algHS256:
		if len(spec.PublicKey) != 0 {
			return nil, errors.New("HS256 takes a secret, not a public key")
		}
		if len(spec.Secret) < minSecretLen {
			return nil, fmt.Errorf("HS256 secret must be at least %d bytes", minSecretLen)
		}
		key = slices.Clone(spec.Secret)
	case algRS256:
		if len(spec.Secret) != 0 {
			return nil, errors.New("RS256 takes a public key, not a secret")
		}
		pub, err := jwt.ParseRSAPublicKeyFromPEM(spec.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("RS256 public key: %w", err)
		}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RS256 public key is %d bits, need at least %d", pub.N.BitLen(), minRSABits)
		}
		key = pub
	case algES256:
		if len(spec.Secret) != 0 {
			return nil, errors.New("ES256 takes a public key, not a secret")
		}
		pub, err := jwt.ParseECPublicKeyFromPEM(spec.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("ES256 public key: %w", err)
		}
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ES256 public key is on %s, need P-256", pub.Curve.Params().Name)
		}
		key = pub
	default:
		return nil, fmt.Errorf("unsupported alg %q (want HS256, RS256 or ES256)", spec.Alg)
	}

	return &appVerifier{
		maxLifetime: spec.MaxLifetime,
		// Claims are validated by Verify against the caller's now, so the
		// shared parser needs no per-call time function.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
		keyfunc: func(t *jwt.Token) (any, error) {
			// The app was chosen from the unverified payload; make sure the
			// fully decoded payload agrees before handing out its key.
			if c, ok := t.Claims.(*tokenClaims); !ok || c.App != name {
				return nil, errors.New("app claim mismatch")
			}
			return key, nil
		},
	}, nil
}

// Verify checks token's signature with its app's pinned algorithm and key and
// returns its claims. The "app", "sub" and "exp" claims are required, and
// "exp", "nbf" and "iat" must be JSON numbers; a token whose "exp" is not
// after now fails with ErrExpiredToken, and every other failure wraps
// ErrInvalidToken: among them a lifetime over MaxLifetime or the app's
// maximum.
func (k *Keyring) Verify(token string, now time.Time) (Claims, error) {
	if k == nil {
		return Claims{}, fmt.Errorf("%w: no keyring", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	app, err := peekApp(token)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, err)
	}
	if app == "" {
		return Claims{}, fmt.Errorf("%w: missing app", ErrInvalidToken)
	}
	v, ok := k.apps[app]
	if !ok {
		return Claims{}, fmt.Errorf("%w: unknown app", ErrInvalidToken)
	}

	var tc tokenClaims
	if _, err := v.parser.ParseWithClaims(token, &tc, v.keyfunc); err != nil {
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	switch {
	case tc.ExpiresAt == nil:
		return Claims{}, fmt.Errorf("%w: missing exp", ErrInvalidToken)
	case tc.Subject == "":
		return Claims{}, fmt.Errorf("%w: missing sub", ErrInvalidToken)
	case tc.NotBefore != nil && now.Before(tc.NotBefore.Time):
		return Claims{}, fmt.Errorf("%w: not valid yet", ErrInvalidToken)
	case !now.Before(tc.ExpiresAt.Time):
		return Claims{}, fmt.Errorf("%w: exp %s", ErrExpiredToken, tc.ExpiresAt.UTC().Format(time.RFC3339))
	case tc.ExpiresAt.Sub(now) > MaxLifetime:
		return Claims{}, fmt.Errorf("%w: exp is more than %v ahead", ErrInvalidToken, MaxLifetime)
	}
	if limit := v.maxLifetime; limit > 0 {
		switch {
		case tc.ExpiresAt.Sub(now) > limit+lifetimeLeeway:
			return Claims{}, fmt.Errorf("%w: exp is further ahead than the app's max_token_lifetime %v", ErrInvalidToken, limit)
		case tc.IssuedAt != nil && tc.ExpiresAt.Sub(tc.IssuedAt.Time) > limit:
			return Claims{}, fmt.Errorf("%w: exp - iat is over the app's max_token_lifetime %v", ErrInvalidToken, limit)
		}
	}
	return Claims{
		App:     tc.App,
		User:    tc.Subject,
		Device:  tc.Device,
		Rooms:   tc.Rooms,
		Send:    tc.Send,
		Expires: tc.ExpiresAt.UTC(),
	}, nil
}

// peekApp returns the unverified "app" claim, used only to pick the key.
func peekApp(token string) (string, error) {
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return "", errors.New("malformed")
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", errors.New("malformed")
	}
	raw, err := b64.DecodeString(payload)
	if err != nil {
		return "", errors.New("malformed payload")
	}
	var p struct {
		App string `json:"app"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", errors.New("malformed claims")
	}
	return p.App, nil
}

// reason maps a jwt parse error to a short, fixed description.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable"
	default:
		return "rejected"
	}
}

// Mint returns an HS256 token for app signed with secret, carrying c.User as
// "sub", app as "app", c.Expires as "exp" (truncated to whole seconds) and
// c.Device, c.Rooms and c.Send when set (a non-nil empty Rooms is kept). It
// fails if app, c.User or c.Expires is empty, if c.App is set and differs
// from app, or if secret is shorter than 16 bytes.
func Mint(app string, secret []byte, c Claims) (string, error) {
	switch {
	case app == "":
		return "", errors.New("auth: mint: empty app")
	case c.App != "" && c.App != app:
		return "", errors.New("auth: mint: claims app differs from app")
	case c.User == "":
		return "", errors.New("auth: mint: empty user")
	case c.Expires.IsZero():
		return "", errors.New("auth: mint: expiry required")
	case len(secret) < minSecretLen:
		return "", fmt.Errorf("auth: mint: secret must be at least %d bytes", minSecretLen)
	}
	tc := tokenClaims{
		Subject:   c.User,
		ExpiresAt: &numericDate{c.Expires.Truncate(time.Second).UTC()},
		App:       app,
		Device:    c.Device,
		Rooms:     c.Rooms,
		Send:      c.Send,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &tc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return s, nil
}
