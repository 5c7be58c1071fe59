package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/push"
)

// Names the browser sees.
const (
	// CookieName is the session cookie.
	CookieName = "herald_admin"
	// CSRFHeader carries the session's CSRF token on every API call made
	// with the session cookie.
	CSRFHeader = "X-Herald-CSRF"
)

// Defaults of the session rules.
const (
	// SessionTTL is how long a session lives after login.
	SessionTTL = 8 * time.Hour
	// MaxSessions bounds the sessions one node holds.
	MaxSessions = 10000
	// LoginBurst failed logins from one IP are allowed at once; then one
	// more every LoginRefill.
	LoginBurst  = 5
	LoginRefill = 12 * time.Second
	// maxThrottled bounds the IPs the throttle remembers.
	maxThrottled = 10000
)

// session is one login.
type session struct {
	caller  apikey.Caller
	csrf    string
	expires time.Time
}

// sessions is the node's table of logins. mu guards every field.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	now  func() time.Time
	ttl  time.Duration
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session for c and returns its id and CSRF token;
// ok is false when the table is full of live sessions.
func (s *sessions) create(c apikey.Caller) (id, csrf string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= MaxSessions {
		for k, v := range s.byID {
			if !now.Before(v.expires) {
				delete(s.byID, k)
			}
		}
		if len(s.byID) >= MaxSessions {
			return "", "", false
		}
	}
	id, csrf = newToken(), newToken()
	s.byID[id] = &session{caller: c, csrf: csrf, expires: now.Add(s.ttl)}
	return id, csrf, true
}

// get returns the live session id names.
func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[id]
	if ok && !s.now().Before(v.expires) {
		delete(s.byID, id)
		return nil, false
	}
	return v, ok
}

// live counts the sessions that have not expired.
func (s *sessions) live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := s.now(), 0
	for _, v := range s.byID {
		if now.Before(v.expires) {
			n++
		}
	}
	return n
}

// Sessions is how many admin sessions are live on this node.
func (a *Admin) Sessions() int { return a.sessions.live() }

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// throttle limits failed logins per IP: a bucket of LoginBurst tokens,
// one back every LoginRefill. mu guards every field.
type throttle struct {
	mu    sync.Mutex
	ips   map[string]*bucket
	now   func() time.Time
	burst float64
	every time.Duration
}

type bucket struct {
	tokens float64
	at     time.Time
}

// refill brings b up to date; caller holds t.mu.
func (t *throttle) refill(b *bucket, now time.Time) {
	b.tokens = min(t.burst, b.tokens+float64(now.Sub(b.at))/float64(t.every))
	b.at = now
}

// allowed reports whether ip may try a login now, and if not, when.
func (t *throttle) allowed(ip string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.ips[ip]
	if !ok {
		return true, 0
	}
	now := t.now()
	t.refill(b, now)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(t.every))
}

// failed takes one token from ip's bucket.
func (t *throttle) failed(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	b, ok := t.ips[ip]
	if !ok {
		if len(t.ips) >= maxThrottled {
			for k, v := range t.ips {
				if t.refill(v, now); v.tokens >= t.burst {
					delete(t.ips, k)
				}
			}
		}
		if len(t.ips) >= maxThrottled {
			return // full of recent failures: this IP goes unthrottled rather than evicting one that is
		}
		b = &bucket{tokens: t.burst, at: now}
		t.ips[ip] = b
	}
	t.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Authenticate is who an API call comes from: the API key of its
// Authorization header; without one, the session of its cookie, which
// needs the session's CSRF header and, for an app key's session, a
// read-only method; without either, what the keys allow keyless (dev
// mode). A cookie that names no live session is unauthorized, never
// keyless.
func (a *Admin) Authenticate(r *http.Request) (apikey.Caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return a.keys.Authenticate(h)
	}
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return a.keys.Authenticate("")
	}
	s, ok := a.sessions.get(ck.Value)
	if !ok {
		return apikey.Caller{}, push.Errorf(push.CodeUnauthorized, "the admin session has expired or is unknown: log in again")
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(s.csrf)) != 1 {
		return apikey.Caller{}, push.Errorf(push.CodeForbidden, "a call with the admin session cookie needs the session's %s header", CSRFHeader)
	}
	if !s.caller.Admin && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apikey.Caller{}, push.Errorf(push.CodeForbidden, "an app key's admin session is read-only")
	}
	return s.caller, nil
}
