// Package admin owns the embedded admin web UI (/admin/), its login
// sessions and the admin-only live tail (GET /v1/admin/tail). A session is
// issued for a valid API key (an admin key, or an app key for a read-only
// view of that app) and stands for that key on the v1 API: the API's
// authentication asks Authenticate, which accepts the session cookie only
// together with the session's CSRF header. The package implements no
// operation of the API itself.
//
// Sessions and the login throttle live in memory, per node, behind one
// mutex each; every exported method is safe for concurrent use.
package admin
