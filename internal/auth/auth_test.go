package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testNow      = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	testSecret   = []byte("0123456789abcdef-hs-app-secret")
	otherSecret  = []byte("fedcba9876543210-not-the-secret")
	testFixtures = sync.OnceValue(newFixtures)
)

// fixtures holds keys that are expensive to generate, shared by all tests.
type fixtures struct {
	rsaKey *rsa.PrivateKey
	rsaPEM []byte
	ecKey  *ecdsa.PrivateKey
	ecPEM  []byte
	ring   *Keyring
}

func newFixtures() *fixtures {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	f := &fixtures{rsaKey: rk, ecKey: ek, rsaPEM: pubPEM(&rk.PublicKey), ecPEM: pubPEM(&ek.PublicKey)}
	f.ring, err = NewKeyring(map[string]KeySpec{
		"hs":  {Secret: testSecret},
		"hs2": {Alg: "HS256", Secret: otherSecret},
		"rs":  {Alg: "RS256", PublicKey: f.rsaPEM},
		"es":  {Alg: "ES256", PublicKey: f.ecPEM},
	})
	if err != nil {
		panic(err)
	}
	return f
}

func pubPEM(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign returns claims signed with method and key, failing the test on error.
func sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}

// base returns a complete, valid claim set for app, with overrides applied;
// a nil override value deletes the claim.
func base(app string, overrides map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"app":    app,
		"sub":    "user-1",
		"exp":    testNow.Add(time.Hour).Unix(),
		"device": "phone",
		"rooms":  []string{"lobby", "news*"},
		"send":   true,
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestVerify(t *testing.T) {
	f := testFixtures()
	hs := func(claims jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, claims) }
	full := Claims{
		App: "hs", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"},
		Send: true, Expires: testNow.Add(time.Hour),
	}
	valid := hs(base("hs", nil))
	// Re-encode the last signature character with different unused low bits:
	// a lax base64 decoder would accept it as the same signature.
	malleated := valid[:len(valid)-1] + string(flipLowBits(valid[len(valid)-1]))
	// Replace the payload of a valid token with one granting more rooms.
	parts := strings.Split(valid, ".")
	tamperedParts := strings.Split(hs(base("hs", map[string]any{"rooms": []string{"*"}})), ".")
	tampered := parts[0] + "." + tamperedParts[1] + "." + parts[2]

	tests := []struct {
		name    string
		token   string
		want    Claims // checked when wantErr is nil
		wantErr error
	}{
		{name: "valid HS256", token: valid, want: full},
		{name: "valid HS256 minimal claims", token: hs(base("hs", map[string]any{"device": nil, "rooms": nil, "send": nil})),
			want: Claims{App: "hs", User: "user-1", Expires: testNow.Add(time.Hour)}},
		{name: "valid HS256 second app", token: sign(t, jwt.SigningMethodHS256, otherSecret, base("hs2", nil)),
			want: Claims{App: "hs2", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true, Expires: testNow.Add(time.Hour)}},
		{name: "valid exp one second after now", token: hs(base("hs", map[string]any{"exp": testNow.Unix() + 1})),
			want: Claims{App: "hs", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true, Expires: testNow.Add(time.Second)}},
		{name: "valid nbf in past", token: hs(base("hs", map[string]any{"nbf": testNow.Unix() - 10})), want: full},
		{name: "valid empty rooms array", token: hs(base("hs", map[string]any{"rooms": []string{}})),
			want: Claims{App: "hs", User: "user-1", Device: "phone", Rooms: []string{}, Send: true, Expires: testNow.Add(time.Hour)}},
		{name: "valid RS256", token: sign(t, jwt.SigningMethodRS256, f.rsaKey, base("rs", nil)),
			want: Claims{App: "rs", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true, Expires: testNow.Add(time.Hour)}},
		{name: "valid ES256", token: sign(t, jwt.SigningMethodES256, f.ecKey, base("es", nil)),
			want: Claims{App: "es", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true, Expires: testNow.Add(time.Hour)}},

		{name: "expired", token: hs(base("hs", map[string]any{"exp": testNow.Add(-time.Minute).Unix()})), wantErr: ErrExpiredToken},
		{name: "expires exactly now (no leeway)", token: hs(base("hs", map[string]any{"exp": testNow.Unix()})), wantErr: ErrExpiredToken},
		{name: "expired RS256", token: sign(t, jwt.SigningMethodRS256, f.rsaKey, base("rs", map[string]any{"exp": 1})), wantErr: ErrExpiredToken},
		{name: "missing exp", token: hs(base("hs", map[string]any{"exp": nil})), wantErr: ErrInvalidToken},
		{name: "exp wrong type", token: hs(base("hs", map[string]any{"exp": "tomorrow"})), wantErr: ErrInvalidToken},
		{name: "nbf in future", token: hs(base("hs", map[string]any{"nbf": testNow.Unix() + 60})), wantErr: ErrInvalidToken},
		{name: "exp as a numeric string", token: hs(base("hs", map[string]any{"exp": "1893456000"})), wantErr: ErrInvalidToken},
		{name: "exp as a JSON number in a string far ahead", token: hs(base("hs", map[string]any{"exp": "253402300799"})), wantErr: ErrInvalidToken},
		{name: "exp in the year 9999", token: hs(base("hs", map[string]any{"exp": int64(253402300799)})), wantErr: ErrInvalidToken},
		{name: "exp beyond the ceiling", token: hs(base("hs", map[string]any{"exp": testNow.Add(MaxLifetime + time.Hour).Unix()})), wantErr: ErrInvalidToken},
		{name: "exp huge float", token: hs(base("hs", map[string]any{"exp": 1e300})), wantErr: ErrInvalidToken},
		{name: "exp negative", token: hs(base("hs", map[string]any{"exp": -1})), wantErr: ErrInvalidToken},
		{name: "exp boolean", token: hs(base("hs", map[string]any{"exp": true})), wantErr: ErrInvalidToken},
		{name: "nbf as a string", token: hs(base("hs", map[string]any{"nbf": "1"})), wantErr: ErrInvalidToken},
		{name: "iat as a string", token: hs(base("hs", map[string]any{"iat": "1"})), wantErr: ErrInvalidToken},
		{name: "valid iat in past", token: hs(base("hs", map[string]any{"iat": testNow.Unix() - 10})), want: full},
		{name: "valid fractional exp", token: hs(base("hs", map[string]any{"exp": float64(testNow.Add(time.Hour).Unix()) + 0.5})), want: full},
		{name: "valid exp within the ceiling", token: hs(base("hs", map[string]any{"exp": testNow.Add(MaxLifetime - time.Hour).Unix()})),
			want: Claims{App: "hs", User: "user-1", Device: "phone", Rooms: []string{"lobby", "news*"}, Send: true, Expires: testNow.Add(MaxLifetime - time.Hour)}},

		{name: "forged signature (other secret)", token: sign(t, jwt.SigningMethodHS256, otherSecret, base("hs", nil)), wantErr: ErrInvalidToken},
		{name: "forged and expired reports invalid, not expired", token: sign(t, jwt.SigningMethodHS256, otherSecret, base("hs", map[string]any{"exp": 1})), wantErr: ErrInvalidToken},
		{name: "tampered payload", token: tampered, wantErr: ErrInvalidToken},
		{name: "non-canonical signature encoding", token: malleated, wantErr: ErrInvalidToken},
		{name: "RS256 signed by other key", token: sign(t, jwt.SigningMethodRS256, mustRSA(t), base("rs", nil)), wantErr: ErrInvalidToken},

		{name: "HS256 token to RS256 app", token: sign(t, jwt.SigningMethodHS256, testSecret, base("rs", nil)), wantErr: ErrInvalidToken},
		{name: "HS256 keyed with RS256 app's public PEM (key confusion)", token: sign(t, jwt.SigningMethodHS256, f.rsaPEM, base("rs", nil)), wantErr: ErrInvalidToken},
		{name: "HS256 keyed with ES256 app's public PEM (key confusion)", token: sign(t, jwt.SigningMethodHS256, f.ecPEM, base("es", nil)), wantErr: ErrInvalidToken},
		{name: "RS256 token to HS256 app", token: sign(t, jwt.SigningMethodRS256, f.rsaKey, base("hs", nil)), wantErr: ErrInvalidToken},
		{name: "ES256 token to RS256 app", token: sign(t, jwt.SigningMethodES256, f.ecKey, base("rs", nil)), wantErr: ErrInvalidToken},
		{name: "HS512 token to HS256 app", token: sign(t, jwt.SigningMethodHS512, testSecret, base("hs", nil)), wantErr: ErrInvalidToken},
		{name: "alg none to HS256 app", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base("hs", nil)), wantErr: ErrInvalidToken},
		{name: "alg none to RS256 app", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base("rs", nil)), wantErr: ErrInvalidToken},

		{name: "unknown app", token: sign(t, jwt.SigningMethodHS256, testSecret, base("nope", nil)), wantErr: ErrInvalidToken},
		{name: "missing app", token: hs(base("hs", map[string]any{"app": nil})), wantErr: ErrInvalidToken},
		{name: "empty app", token: hs(base("", nil)), wantErr: ErrInvalidToken},
		{name: "app wrong type", token: hs(base("hs", map[string]any{"app": 7})), wantErr: ErrInvalidToken},
		{name: "missing sub", token: hs(base("hs", map[string]any{"sub": nil})), wantErr: ErrInvalidToken},
		{name: "empty sub", token: hs(base("hs", map[string]any{"sub": ""})), wantErr: ErrInvalidToken},
		{name: "sub wrong type", token: hs(base("hs", map[string]any{"sub": 42})), wantErr: ErrInvalidToken},
		{name: "rooms is a string", token: hs(base("hs", map[string]any{"rooms": "lobby"})), wantErr: ErrInvalidToken},
		{name: "rooms has a number", token: hs(base("hs", map[string]any{"rooms": []any{"lobby", 3}})), wantErr: ErrInvalidToken},
		{name: "send wrong type", token: hs(base("hs", map[string]any{"send": "yes"})), wantErr: ErrInvalidToken},
		{name: "device wrong type", token: hs(base("hs", map[string]any{"device": false})), wantErr: ErrInvalidToken},

		{name: "empty string", token: "", wantErr: ErrInvalidToken},
		{name: "two segments", token: "a.b", wantErr: ErrInvalidToken},
		{name: "four segments", token: valid + ".x", wantErr: ErrInvalidToken},
		{name: "garbage", token: "not a token at all", wantErr: ErrInvalidToken},
		{name: "payload not JSON", token: "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", wantErr: ErrInvalidToken},
		{name: "too long", token: valid + strings.Repeat("A", maxTokenLen), wantErr: ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.ring.Verify(tt.token, testNow)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == ErrInvalidToken && errors.Is(err, ErrExpiredToken) {
					t.Fatalf("Verify error = %v, should not also be ErrExpiredToken", err)
				}
				if !reflect.DeepEqual(got, Claims{}) {
					t.Errorf("Verify returned claims %+v alongside error", got)
				}
				if strings.Contains(err.Error(), string(testSecret)) || strings.Contains(err.Error(), string(otherSecret)) {
					t.Errorf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify error = %v, want nil", err)
			}
			if !got.Expires.Equal(tt.want.Expires) {
				t.Errorf("Expires = %v, want %v", got.Expires, tt.want.Expires)
			}
			got.Expires, tt.want.Expires = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Verify = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// flipLowBits returns a base64url character that differs from c only in its
// two lowest bits (unused at the end of a 32-byte HMAC signature).
func flipLowBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

func mustRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyNilKeyring(t *testing.T) {
	var k *Keyring
	if _, err := k.Verify("a.b.c", testNow); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("nil Keyring Verify error = %v, want ErrInvalidToken", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	f := testFixtures()
	tokens := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, base("hs", nil)),
		sign(t, jwt.SigningMethodRS256, f.rsaKey, base("rs", nil)),
		sign(t, jwt.SigningMethodES256, f.ecKey, base("es", nil)),
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				tok := tokens[(i+j)%len(tokens)]
				if _, err := f.ring.Verify(tok, testNow); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestMayJoin(t *testing.T) {
	tests := []struct {
		name  string
		rooms []string
		room  string
		want  bool
	}{
		{"nil rooms", nil, "lobby", false},
		{"nil rooms empty name", nil, "", false},
		{"empty rooms", []string{}, "lobby", false},
		{"star matches any", []string{"*"}, "anything/at-all", true},
		{"prefix matches", []string{"news*"}, "news-1", true},
		{"prefix matches prefix itself", []string{"news*"}, "news", true},
		{"prefix does not match shorter", []string{"news*"}, "new", false},
		{"prefix does not match other", []string{"news*"}, "sports", false},
		{"prefix is case sensitive", []string{"news*"}, "News-1", false},
		{"exact matches", []string{"lobby"}, "lobby", true},
		{"exact is not a prefix", []string{"lobby"}, "lobby-2", false},
		{"exact does not match shorter", []string{"lobby"}, "lob", false},
		{"inner star is literal", []string{"a*b"}, "axb", false},
		{"inner star exact", []string{"a*b"}, "a*b", true},
		{"second pattern matches", []string{"lobby", "news*"}, "news-9", true},
		{"none of several", []string{"lobby", "news*"}, "sports", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Claims{Rooms: tt.rooms}).MayJoin(tt.room); got != tt.want {
				t.Errorf("MayJoin(%q) with rooms %q = %v, want %v", tt.room, tt.rooms, got, tt.want)
			}
		})
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	ring, err := NewKeyring(map[string]KeySpec{"app1": {Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	exp := testNow.Add(90 * time.Minute)
	tests := []struct {
		name string
		in   Claims
		want Claims
	}{
		{
			name: "all claims",
			in:   Claims{App: "app1", User: "u-7", Device: "dev-1", Rooms: []string{"lobby", "news*", "*"}, Send: true, Expires: exp},
			want: Claims{App: "app1", User: "u-7", Device: "dev-1", Rooms: []string{"lobby", "news*", "*"}, Send: true, Expires: exp},
		},
		{
			name: "minimal, App taken from argument",
			in:   Claims{User: "u-8", Expires: exp},
			want: Claims{App: "app1", User: "u-8", Expires: exp},
		},
		{
			name: "empty non-nil rooms kept",
			in:   Claims{User: "u-9", Rooms: []string{}, Expires: exp},
			want: Claims{App: "app1", User: "u-9", Rooms: []string{}, Expires: exp},
		},
		{
			name: "sub-second expiry truncated",
			in:   Claims{User: "u-10", Expires: exp.Add(900 * time.Millisecond)},
			want: Claims{App: "app1", User: "u-10", Expires: exp},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Mint("app1", testSecret, tt.in)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			got, err := ring.Verify(tok, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.Expires.Equal(tt.want.Expires) {
				t.Errorf("Expires = %v, want %v", got.Expires, tt.want.Expires)
			}
			got.Expires, tt.want.Expires = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("round trip = %#v, want %#v", got, tt.want)
			}
			if _, err := ring.Verify(tok, exp.Add(time.Second)); !errors.Is(err, ErrExpiredToken) {
				t.Errorf("Verify after expiry error = %v, want ErrExpiredToken", err)
			}
		})
	}
}

func TestMintErrors(t *testing.T) {
	exp := testNow.Add(time.Hour)
	tests := []struct {
		name   string
		app    string
		secret []byte
		c      Claims
	}{
		{"zero expiry", "app1", testSecret, Claims{User: "u"}},
		{"empty user", "app1", testSecret, Claims{Expires: exp}},
		{"empty app", "", testSecret, Claims{User: "u", Expires: exp}},
		{"conflicting app", "app1", testSecret, Claims{App: "app2", User: "u", Expires: exp}},
		{"short secret", "app1", []byte("short"), Claims{User: "u", Expires: exp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Mint(tt.app, tt.secret, tt.c)
			if err == nil {
				t.Fatalf("Mint = %q, want error", tok)
			}
		})
	}
}

func TestNewKeyringErrors(t *testing.T) {
	f := testFixtures()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	shortSecret := []byte("tooshort-secret")
	tests := []struct {
		name string
		spec KeySpec
	}{
		{"short secret", KeySpec{Secret: shortSecret}},
		{"missing secret", KeySpec{Alg: "HS256"}},
		{"HS256 with public key", KeySpec{Secret: testSecret, PublicKey: f.rsaPEM}},
		{"bad PEM RS256", KeySpec{Alg: "RS256", PublicKey: []byte("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")}},
		{"not PEM RS256", KeySpec{Alg: "RS256", PublicKey: []byte("garbage")}},
		{"missing key RS256", KeySpec{Alg: "RS256"}},
		{"bad PEM ES256", KeySpec{Alg: "ES256", PublicKey: []byte("garbage")}},
		{"EC key for RS256", KeySpec{Alg: "RS256", PublicKey: f.ecPEM}},
		{"RSA key for ES256", KeySpec{Alg: "ES256", PublicKey: f.rsaPEM}},
		{"P-384 key for ES256", KeySpec{Alg: "ES256", PublicKey: pubPEM(&p384.PublicKey)}},
		{"1024-bit RSA key", KeySpec{Alg: "RS256", PublicKey: pubPEM(&small.PublicKey)}},
		{"RS256 with secret", KeySpec{Alg: "RS256", PublicKey: f.rsaPEM, Secret: testSecret}},
		{"unknown alg", KeySpec{Alg: "HS512", Secret: testSecret}},
		{"alg none", KeySpec{Alg: "none"}},
		{"lowercase alg", KeySpec{Alg: "hs256", Secret: testSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyring(map[string]KeySpec{"good": {Secret: testSecret}, "bad-app": tt.spec})
			if err == nil {
				t.Fatalf("NewKeyring = %v, want error", k)
			}
			if !strings.Contains(err.Error(), `"bad-app"`) {
				t.Errorf("error %q does not name the app", err)
			}
			for _, s := range [][]byte{testSecret, shortSecret} {
				if strings.Contains(err.Error(), string(s)) {
					t.Errorf("error %q leaks the secret", err)
				}
			}
		})
	}
	if _, err := NewKeyring(map[string]KeySpec{"": {Secret: testSecret}}); err == nil {
		t.Error("NewKeyring with empty app name: want error")
	}
}

func TestNewKeyringCopiesSecret(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	ring, err := NewKeyring(map[string]KeySpec{"hs": {Secret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, base("hs", nil))
	for i := range secret {
		secret[i] = 'x'
	}
	if _, err := ring.Verify(tok, testNow); err != nil {
		t.Fatalf("Verify after caller mutated its secret: %v", err)
	}
}

func TestVerifyMaxLifetime(t *testing.T) {
	ring, err := NewKeyring(map[string]KeySpec{
		"day":  {Secret: testSecret, MaxLifetime: 24 * time.Hour},
		"free": {Secret: otherSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	day := func(over map[string]any) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, base("day", over))
	}
	for _, tt := range []struct {
		name string
		tok  string
		ok   bool
	}{
		{"exp within the maximum", day(map[string]any{"exp": testNow.Add(23 * time.Hour).Unix()}), true},
		{"exp at the maximum", day(map[string]any{"exp": testNow.Add(24 * time.Hour).Unix()}), true},
		{"exp within the clock-skew leeway", day(map[string]any{"exp": testNow.Add(24*time.Hour + 30*time.Second).Unix()}), true},
		{"exp beyond the maximum", day(map[string]any{"exp": testNow.Add(25 * time.Hour).Unix()}), false},
		{"exp in the year 9999", day(map[string]any{"exp": int64(253402300799)}), false},
		{"iat and exp within the maximum", day(map[string]any{"iat": testNow.Add(-time.Hour).Unix(), "exp": testNow.Add(time.Hour).Unix()}), true},
		{"exp - iat beyond the maximum", day(map[string]any{"iat": testNow.Add(-24 * time.Hour).Unix(), "exp": testNow.Add(time.Hour).Unix()}), false},
		{"no limit on another app", sign(t, jwt.SigningMethodHS256, otherSecret, base("free", map[string]any{"exp": testNow.Add(300 * 24 * time.Hour).Unix()})), true},
	} {
		_, err := ring.Verify(tt.tok, testNow)
		if tt.ok && err != nil {
			t.Errorf("%s: %v, want ok", tt.name, err)
		}
		if !tt.ok && (!errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrExpiredToken)) {
			t.Errorf("%s: %v, want ErrInvalidToken", tt.name, err)
		}
	}
	if _, err := NewKeyring(map[string]KeySpec{"neg": {Secret: testSecret, MaxLifetime: -time.Second}}); err == nil {
		t.Error("NewKeyring with a negative MaxLifetime: want error")
	}
}
