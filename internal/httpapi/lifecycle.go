package httpapi

import (
	"net/http"
	"strconv"

	"github.com/heraldpush/herald/internal/push"
)

// presence answers GET /v1/rooms/{room}/presence: one page of the users
// present in a presence room, cluster-wide.
func (a *API) presence(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	app, err := a.appFor(p, q.Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	room := r.PathValue("room")
	users, next, err := a.cfg.Lifecycle.PresencePage(ctx, app, room, q.Get("cursor"))
	if err != nil {
		return err
	}
	body := map[string]any{"room": room, "users": users}
	if next != "" {
		body["next"] = next
	}
	writeJSON(w, 200, body)
	return nil
}

// deadLetters answers GET /v1/webhooks/dead: one page of the app's
// webhook events that ran out of retries.
func (a *API) deadLetters(w http.ResponseWriter, r *http.Request, p principal) error {
	q := r.URL.Query()
	app, err := a.appFor(p, q.Get("app"))
	if err != nil {
		return err
	}
	var after uint64
	if c := q.Get("cursor"); c != "" {
		if after, err = strconv.ParseUint(c, 10, 64); err != nil {
			return push.Errorf(push.CodeInvalidArgument, "cursor must be the next value of a previous page")
		}
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	evs, next, err := a.cfg.Lifecycle.DeadPage(ctx, app, after)
	if err != nil {
		return err
	}
	body := map[string]any{"events": evs}
	if next != 0 {
		body["next"] = strconv.FormatUint(next, 10)
	}
	writeJSON(w, 200, body)
	return nil
}

type replayBody struct {
	App string   `json:"app"`
	IDs []string `json:"ids"`
}

// replayDead answers POST /v1/webhooks/dead/replay: the named dead events
// (every one with no ids) go to their endpoints again.
func (a *API) replayDead(w http.ResponseWriter, r *http.Request, p principal) error {
	var b replayBody
	if r.ContentLength != 0 {
		if err := decode(w, r, 1<<20, &b); err != nil {
			return err
		}
	}
	app, err := a.appFor(p, b.App)
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	n, err := a.cfg.Lifecycle.ReplayDead(ctx, app, b.IDs)
	if err != nil {
		return err
	}
	writeJSON(w, 200, map[string]int{"replayed": n})
	return nil
}

// webhooks answers GET /v1/webhooks: the app's webhook endpoints with
// what the live nodes' outboxes did for each.
func (a *API) webhooks(w http.ResponseWriter, r *http.Request, p principal) error {
	app, err := a.appFor(p, r.URL.Query().Get("app"))
	if err != nil {
		return err
	}
	ctx, cancel := a.engineCtx(r)
	defer cancel()
	st, err := a.ops.Webhooks(ctx, app)
	if err != nil {
		return err
	}
	body := map[string]any{"endpoints": st.Endpoints}
	addPartial(body, st.Missing)
	writeJSON(w, 200, body)
	return nil
}
