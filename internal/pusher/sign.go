package pusher

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sign is the hex HMAC-SHA256 of s with secret: Pusher's signature of
// channel auth strings, API requests and webhooks.
func Sign(secret, s string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelAuthOK checks a subscribe's auth "<key>:<signature>" for
// socketID and channel (and channelData, for presence channels):
// the key must be the app's and the signature match, compared in
// constant time.
func ChannelAuthOK(key, secret, auth, socketID, channel, channelData string) bool {
	k, sig, ok := strings.Cut(auth, ":")
	if !ok || k != key {
		return false
	}
	s := socketID + ":" + channel
	if channelData != "" {
		s += ":" + channelData
	}
	return hmac.Equal([]byte(sig), []byte(Sign(secret, s)))
}

// Request-signing errors: each is answered 401.
var (
	ErrAuthMissing   = errors.New("auth_key, auth_timestamp, auth_version and auth_signature are required")
	ErrAuthKey       = errors.New("unknown auth_key")
	ErrAuthTimestamp = errors.New("auth_timestamp is more than 600 seconds from the server's time")
	ErrAuthVersion   = errors.New("auth_version must be 1.0")
	ErrBodyMD5       = errors.New("body_md5 does not match the body")
	ErrSignature     = errors.New("invalid signature: check your secret and the string signed (METHOD\\npath\\nsorted query)")
)

// MaxSkew is how far auth_timestamp may be from the server's clock.
const MaxSkew = 600 * time.Second

// CheckRequest verifies a signed API request: key is the app's key (the
// caller looked the app up by its id), query the request's decoded query,
// body the raw body (nil for GET). It returns nil or one of the Err…
// values.
func CheckRequest(key, secret, method, path string, query url.Values, body []byte, now time.Time) error {
	if query.Get("auth_key") == "" || query.Get("auth_timestamp") == "" || query.Get("auth_signature") == "" {
		return ErrAuthMissing
	}
	if query.Get("auth_key") != key {
		return ErrAuthKey
	}
	if v := query.Get("auth_version"); v != "" && v != "1.0" {
		return ErrAuthVersion
	}
	ts, err := strconv.ParseInt(query.Get("auth_timestamp"), 10, 64)
	if err != nil {
		return ErrAuthTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		return ErrAuthTimestamp
	}
	if len(body) > 0 || query.Has("body_md5") {
		sum := md5.Sum(body)
		if !hmac.Equal([]byte(strings.ToLower(query.Get("body_md5"))), []byte(hex.EncodeToString(sum[:]))) {
			return ErrBodyMD5
		}
	}
	sig := query.Get("auth_signature")
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, StringToSign(method, path, query)))) {
		return ErrSignature
	}
	return nil
}

// StringToSign is "METHOD\npath\nk=v&…": the query without
// auth_signature, keys lower-cased and sorted, values as sent (decoded).
func StringToSign(method, path string, query url.Values) string {
	keys := make([]string, 0, len(query))
	lower := make(map[string]string, len(query))
	for k, vs := range query {
		lk := strings.ToLower(k)
		if lk == "auth_signature" || len(vs) == 0 {
			continue
		}
		keys = append(keys, lk)
		lower[lk] = vs[0]
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(lower[k])
	}
	return b.String()
}
