package admin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/push"
)

//go:embed ui
var uiFS embed.FS

// Observer counts the logins (metrics.AdminObserver).
type Observer interface {
	LoginAttempt()
	LoginFailed()
	LoginThrottled()
}

// Admin serves the admin UI, its login and the live tail.
type Admin struct {
	keys     *apikey.Keys
	tap      Tapper
	obs      Observer
	log      *slog.Logger
	sessions *sessions
	throttle *throttle
	assets   map[string]asset
	tails    chan struct{} // one token per running tail
	ctx      context.Context
	stop     context.CancelFunc
}

type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

// New builds the admin UI over the node's keys; tap feeds the live tail
// (nil: no tail) and obs counts the logins.
func New(keys *apikey.Keys, tap Tapper, obs Observer, log *slog.Logger) (*Admin, error) {
	if keys == nil || obs == nil {
		return nil, errors.New("admin: missing keys or observer")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Admin{
		keys: keys, tap: tap, obs: obs, log: log, assets: assets,
		sessions: &sessions{byID: map[string]*session{}, now: time.Now, ttl: SessionTTL},
		throttle: &throttle{ips: map[string]*bucket{}, now: time.Now, burst: LoginBurst, every: LoginRefill},
		tails:    make(chan struct{}, MaxTails),
		ctx:      ctx, stop: stop,
	}, nil
}

// Close ends the running tails; call it when the server shuts down.
func (a *Admin) Close() { a.stop() }

// loadAssets reads the embedded UI and gzips each file once.
func loadAssets() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(uiFS, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := uiFS.ReadFile(p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = w.Write(body)
		_ = w.Close()
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "ui/")] = asset{body: body, gz: gz.Bytes(), ctype: ctype,
			etag: fmt.Sprintf(`"%x"`, sum[:12])}
		return nil
	})
	return out, err
}

// Routes registers /admin/ and its login, and the live tail.
func (a *Admin) Routes(mux *http.ServeMux) {
	a.UIRoutes(mux)
	a.APIRoutes(mux)
}

// UIRoutes registers /admin/: the UI's files, its login and logout.
func (a *Admin) UIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET /admin/", a.serveAsset)
	mux.HandleFunc("POST /admin/login", a.login)
	mux.HandleFunc("POST /admin/logout", a.logout)
	mux.HandleFunc("GET /admin/session", a.session)
}

// APIRoutes registers the admin API this package owns: the live tail.
func (a *Admin) APIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/tail", a.serveTail)
}

// WithoutSessions hides the session cookie from h: a listener that does
// not serve the UI (the main one, when the UI has a listener of its own)
// takes API keys only, never a session.
func WithoutSessions(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cks := r.Cookies()
		if !slices.ContainsFunc(cks, func(c *http.Cookie) bool { return c.Name == CookieName }) {
			h.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.Header.Del("Cookie")
		for _, c := range cks {
			if c.Name != CookieName {
				r.AddCookie(c)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// serveAsset answers the UI's files; any other path under /admin/ is the
// page itself (its routes live after the '#').
func (a *Admin) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/admin/")
	f, ok := a.assets[name]
	if !ok {
		if name != "" {
			writeError(w, push.Errorf(push.CodeNotFound, "no such file"))
			return
		}
		f = a.assets["index.html"]
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("Vary", "Accept-Encoding")
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// sameOrigin refuses a browser request sent from another origin (login
// CSRF): an Origin header, when present, must name this host.
func sameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host != r.Host {
		return push.Errorf(push.CodeForbidden, "cross-origin admin request")
	}
	return nil
}

// sessionInfo is what the UI learns about its session.
type sessionInfo struct {
	Dev     bool     `json:"dev"`
	Admin   bool     `json:"admin"`
	App     string   `json:"app,omitempty"`
	Apps    []string `json:"apps"`
	CSRF    string   `json:"csrf,omitempty"`
	Expires string   `json:"expires,omitempty"`
}

func (a *Admin) info(c apikey.Caller) sessionInfo {
	if !c.Admin {
		return sessionInfo{App: c.App, Apps: []string{c.App}}
	}
	var apps []string
	for _, app := range a.keys.Apps {
		if !slices.Contains(apps, app) {
			apps = append(apps, app)
		}
	}
	if a.keys.Dev && !slices.Contains(apps, apikey.DevApp) {
		apps = append(apps, apikey.DevApp)
	}
	slices.Sort(apps)
	return sessionInfo{Admin: true, Apps: apps}
}

// login answers POST /admin/login {"key":"…"}: a session cookie for a
// valid API key.
func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	ip := clientIP(r)
	a.obs.LoginAttempt()
	if ok, wait := a.throttle.allowed(ip); !ok {
		a.obs.LoginThrottled()
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeError(w, push.Errorf(push.CodeRateLimited, "too many failed logins from this address; try again later"))
		return
	}
	var b struct {
		Key string `json:"key"`
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, push.Errorf(push.CodeInvalidArgument, "send the key as JSON: {\"key\":\"…\"}"))
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&b); err != nil {
		writeError(w, push.Errorf(push.CodeInvalidJSON, "send the key as JSON: {\"key\":\"…\"}"))
		return
	}
	var c apikey.Caller
	var err error = push.Errorf(push.CodeUnauthorized, "missing API key")
	if b.Key != "" {
		c, err = a.keys.Authenticate("Bearer " + b.Key)
	}
	if err != nil {
		a.obs.LoginFailed()
		a.throttle.failed(ip)
		a.log.Info("admin login refused", "ip", ip)
		writeError(w, push.Errorf(push.CodeUnauthorized, "invalid API key"))
		return
	}
	id, csrf, ok := a.sessions.create(c)
	if !ok {
		writeError(w, push.Errorf(push.CodeRateLimited, "too many admin sessions on this node"))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	info := a.info(c)
	info.CSRF = csrf
	info.Expires = time.Now().Add(SessionTTL).UTC().Format(time.RFC3339)
	a.log.Info("admin login", "ip", ip, "admin", c.Admin, "app", c.App)
	writeJSON(w, http.StatusOK, info)
}

// logout answers POST /admin/logout: the session ends (it needs the
// session's CSRF header, so no other site can log anyone out).
func (a *Admin) logout(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	if ck, err := r.Cookie(CookieName); err == nil {
		if _, err := a.Authenticate(withoutAuthorization(r)); err != nil {
			writeError(w, err)
			return
		}
		a.sessions.remove(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
}

func withoutAuthorization(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header.Del("Authorization")
	r2.Method = http.MethodGet // logout is allowed to read-only sessions too
	return r2
}

// session answers GET /admin/session: who the UI is logged in as, and its
// CSRF token (readable by the UI's own origin only: no CORS here).
func (a *Admin) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		if a.keys.Dev {
			info := a.info(apikey.Caller{Admin: true})
			info.Dev = true
			writeJSON(w, http.StatusOK, info)
			return
		}
		writeError(w, push.Errorf(push.CodeUnauthorized, "not logged in"))
		return
	}
	s, ok := a.sessions.get(ck.Value)
	if !ok {
		writeError(w, push.Errorf(push.CodeUnauthorized, "the admin session has expired or is unknown: log in again"))
		return
	}
	info := a.info(s.caller)
	info.CSRF = s.csrf
	info.Expires = s.expires.UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusOK, info)
}

func writeError(w http.ResponseWriter, err error) {
	pe := apierr.From(err)
	writeJSON(w, apierr.Of(pe.Code).Status, map[string]any{"error": map[string]string{"code": pe.Code, "message": pe.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
