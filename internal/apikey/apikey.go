// Package apikey authenticates server-API calls by API key and resolves
// the app each call acts on, with the same rules for every transport (the
// HTTP and the gRPC adapters). It does no I/O and holds only the
// configured keys, which are never changed after construction, so it is
// safe for concurrent use.
package apikey

import (
	"crypto/subtle"
	"strings"

	"github.com/heraldpush/herald/internal/push"
)

// Keys maps API keys to apps.
type Keys struct {
	Apps  map[string]string // api key → app
	Admin []string          // admin keys
	// Dev accepts calls without a key, as an admin of app "demo".
	Dev bool
}

// Caller is who is calling.
type Caller struct {
	App   string // the key's app; empty for admins
	Admin bool
}

// Authenticate checks the value of an Authorization header (HTTP) or
// authorization metadata (gRPC): "Bearer <key>". A key that is sent is
// always checked; without one, dev mode calls as an admin.
func (k *Keys) Authenticate(authorization string) (Caller, error) {
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || key == "" {
		if k.Dev {
			return Caller{Admin: true}, nil
		}
		return Caller{}, push.Errorf(push.CodeUnauthorized, "missing API key: send Authorization: Bearer <key>")
	}
	for _, a := range k.Admin {
		if subtle.ConstantTimeCompare([]byte(a), []byte(key)) == 1 {
			return Caller{Admin: true}, nil
		}
	}
	if app, ok := k.Apps[key]; ok {
		return Caller{App: app}, nil
	}
	return Caller{}, push.Errorf(push.CodeUnauthorized, "invalid API key")
}

// AppFor resolves the app a call acts on: the key's app, or for admins the
// named one (by default the only configured one, or "demo" in dev mode).
// An app key naming another app is forbidden; an admin naming an app that
// does not exist (see Exists) is an invalid argument.
func (k *Keys) AppFor(c Caller, named string) (string, error) {
	switch {
	case !c.Admin && named != "" && named != c.App:
		return "", push.Errorf(push.CodeForbidden, "an app key cannot act on another app")
	case !c.Admin:
		return c.App, nil
	case named != "" && !k.Exists(named):
		return "", push.Errorf(push.CodeInvalidArgument, "no app %q is configured", named)
	case named != "":
		return named, nil
	case k.Dev:
		return DevApp, nil
	}
	apps := map[string]bool{}
	for _, app := range k.Apps {
		apps[app] = true
	}
	if len(apps) == 1 {
		for app := range apps {
			return app, nil
		}
	}
	return "", push.Errorf(push.CodeInvalidArgument, "an admin call must name its app")
}

// Exists reports whether app is an app of this node: a configured one
// (every configured app has an API key), or "demo" in dev mode.
func (k *Keys) Exists(app string) bool {
	if k.Dev && app == DevApp {
		return true
	}
	for _, a := range k.Apps {
		if a == app {
			return true
		}
	}
	return false
}

// DevApp is the app of dev mode's keyless calls and tokenless clients.
const DevApp = "demo"

// PushApp resolves the app of a push as AppFor does, except that an
// admin's push to everyone (to.all) without a named app belongs to no one
// app ("*").
func (k *Keys) PushApp(c Caller, named string, all bool) (string, error) {
	if c.Admin && all && named == "" {
		return "*", nil
	}
	return k.AppFor(c, named)
}
