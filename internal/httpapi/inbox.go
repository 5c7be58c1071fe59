package httpapi

import "net/http"

// inbox answers GET /v1/users/{user}/inbox: where the user's inbox stands
// (latest, delivered and acked seq). Read only.
func (a *API) inbox(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	st, err := a.svc.Inbox(ctx, app, r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, st)
	return nil
}
