package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/cluster"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/pusher"
)

// PusherApp is an app's Pusher identity as the HTTP API needs it.
type PusherApp struct {
	App    string // the Herald app
	ID     string // Pusher app_id, in the path
	Key    string
	Secret string
}

// Pusher's limits on one trigger (Pusher's documented ones).
const (
	pusherMaxChannels = 100
	pusherMaxBatch    = 10
)

// PusherAPI serves Pusher's HTTP API (/apps/{id}/…) over the push service:
// requests signed with the app's Pusher key and secret publish to the
// rooms of the same name.
type PusherAPI struct {
	apps    map[string]PusherApp // by Pusher app id
	svc     *push.Service
	rooms   PusherRooms
	members PusherMembers // nil: no presence channels
	maxBody int64
	timeout time.Duration
	log     *slog.Logger
}

// PusherRooms counts, lists and empties rooms cluster-wide (package
// cluster's Ops).
type PusherRooms interface {
	Room(ctx context.Context, app, room, cursor string) (cluster.RoomPage, error)
	// Rooms returns the rooms starting with prefix that have members,
	// with their connection counts.
	Rooms(ctx context.Context, app, prefix string) (map[string]int, error)
	// KickRoom closes the room's members (a Pusher connection with 4009).
	KickRoom(ctx context.Context, app, room string) (int, error)
}

// PusherMembers lists the users present in a presence channel,
// cluster-wide (package lifecycle): sorted, at most limit (0: all).
type PusherMembers interface {
	Members(ctx context.Context, app, room string, limit int) ([]string, bool, error)
}

// NewPusherAPI builds the Pusher HTTP API; maxPayload bounds one event's
// data (Herald's max_payload); members may be nil (no Pusher app).
func NewPusherAPI(apps []PusherApp, svc *push.Service, rooms PusherRooms, members PusherMembers, maxPayload int, engineTimeout time.Duration, log *slog.Logger) (*PusherAPI, error) {
	if svc == nil || rooms == nil || maxPayload <= 0 || engineTimeout <= 0 {
		return nil, errors.New("httpapi: pusher API needs the push service, a payload limit and an engine timeout")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &PusherAPI{apps: map[string]PusherApp{}, svc: svc, rooms: rooms, members: members, maxBody: int64(pusherMaxBatch*maxPayload) + 64<<10, timeout: engineTimeout, log: log}
	for _, a := range apps {
		p.apps[a.ID] = a
	}
	return p, nil
}

// Routes registers the Pusher API on mux.
func (p *PusherAPI) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /apps/{id}/events", p.signed(p.events))
	mux.HandleFunc("POST /apps/{id}/batch_events", p.signed(p.batchEvents))
	mux.HandleFunc("GET /apps/{id}/channels/{channel}", p.signed(p.channel))
	mux.HandleFunc("GET /apps/{id}/channels", p.signed(p.channels))
	mux.HandleFunc("GET /apps/{id}/channels/{channel}/users", p.signed(p.users))
	mux.HandleFunc("POST /apps/{id}/users/{user}/terminate_connections", p.signed(p.terminate))
}

// pusherError is an answer of the Pusher API: a status and a plain-text
// message, as Pusher answers.
type pusherError struct {
	status int
	msg    string
}

func (e *pusherError) Error() string { return e.msg }

func perr(status int, msg string) error { return &pusherError{status, msg} }

// signed reads the body, checks the request's signature against the app of
// the path, and runs h; nothing is published unless the signature holds.
func (p *PusherAPI) signed(h func(ctx context.Context, app PusherApp, r *http.Request, body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		app, ok := p.apps[r.PathValue("id")]
		if !ok {
			notWaitedFor(w, r)
			pusherAnswer(w, nil, perr(http.StatusNotFound, "Unknown app"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
		if err != nil {
			pusherAnswer(w, nil, perr(http.StatusRequestEntityTooLarge, "Request body too large or unreadable"))
			return
		}
		if err := pusher.CheckRequest(app.Key, app.Secret, r.Method, r.URL.Path, r.URL.Query(), body, time.Now()); err != nil {
			pusherAnswer(w, nil, perr(http.StatusUnauthorized, err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
		defer cancel()
		v, err := h(ctx, app, r, body)
		pusherAnswer(w, v, err)
	}
}

func pusherAnswer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		status, msg := http.StatusInternalServerError, err.Error()
		var pe *pusherError
		var se *push.Error
		switch {
		case errors.As(err, &pe):
			status = pe.status
		case errors.As(err, &se):
			status = pushStatus(se)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, msg+"\n")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// pushStatus is the status of a push service refusal: the catalogue's.
func pushStatus(e *push.Error) int { return apierr.Of(e.Code).Status }

// pusherEvent is one event of a trigger or batch.
type pusherEvent struct {
	Name     string   `json:"name"`
	Data     *string  `json:"data"`
	Channels []string `json:"channels"`
	Channel  string   `json:"channel"`
	SocketID string   `json:"socket_id"`
	Info     string   `json:"info"`
}

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// check validates an event and returns its channels.
func (e *pusherEvent) check() ([]string, error) {
	channels := e.Channels
	if e.Channel != "" {
		channels = append(channels, e.Channel)
	}
	switch {
	case !pusher.ValidEvent(e.Name):
		return nil, perr(http.StatusBadRequest, "name must be 1 to 200 characters")
	case e.Data == nil:
		return nil, perr(http.StatusBadRequest, "data is required")
	case len(channels) == 0:
		return nil, perr(http.StatusBadRequest, "channels or channel is required")
	case len(channels) > pusherMaxChannels:
		return nil, perr(http.StatusBadRequest, "at most "+strconv.Itoa(pusherMaxChannels)+" channels per event")
	case e.SocketID != "" && !socketIDPattern.MatchString(e.SocketID):
		return nil, perr(http.StatusBadRequest, "Invalid socket id")
	}
	for _, c := range channels {
		if !pusher.ValidChannel(c) {
			return nil, perr(http.StatusBadRequest, "Invalid channel name "+strconv.Quote(c))
		}
	}
	return channels, nil
}

// pusherData turns Pusher's data string into a push's JSON data: JSON text
// other than a string is kept as it is (pusher-js parses it back), any
// other string becomes a JSON string, so the client sees the same string.
func pusherData(s string) json.RawMessage {
	if b := []byte(s); json.Valid(b) && len(s) > 0 && s[0] != '"' {
		return b
	}
	b, _ := json.Marshal(s)
	return b
}

// publish sends e to each of its channels: one push per channel, as each
// Pusher channel gets its own copy of the event.
func (p *PusherAPI) publish(ctx context.Context, app PusherApp, e *pusherEvent, channels []string) error {
	data := pusherData(*e.Data)
	for _, c := range channels {
		if _, err := p.svc.Push(ctx, &push.Request{App: app.App, To: push.Target{Rooms: []string{c}}, Data: data, Event: e.Name, Except: e.SocketID}); err != nil {
			return err
		}
	}
	return nil
}

// events serves POST /apps/{id}/events.
func (p *PusherAPI) events(ctx context.Context, app PusherApp, _ *http.Request, body []byte) (any, error) {
	var e pusherEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, perr(http.StatusBadRequest, "body is not a JSON event")
	}
	channels, err := e.check()
	if err != nil {
		return nil, err
	}
	if err := checkInfo(e.Info, channels); err != nil {
		return nil, err
	}
	if err := p.publish(ctx, app, &e, channels); err != nil {
		return nil, err
	}
	if e.Info == "" {
		return struct{}{}, nil
	}
	out := map[string]any{}
	for _, c := range channels {
		attrs, err := p.info(ctx, app, c, e.Info)
		if err != nil {
			return nil, err
		}
		out[c] = attrs
	}
	return map[string]any{"channels": out}, nil
}

// checkInfo checks an event's info attributes: subscription_count, and
// user_count when every channel is a presence channel.
func checkInfo(info string, channels []string) error {
	for _, attr := range strings.Split(info, ",") {
		switch attr {
		case "", "subscription_count":
		case "user_count":
			for _, c := range channels {
				if !strings.HasPrefix(c, pusher.PresencePrefix) {
					return perr(http.StatusBadRequest, "Cannot retrieve user_count unless the channel is a presence channel")
				}
			}
		default:
			return perr(http.StatusBadRequest, "unknown info attribute "+strconv.Quote(attr))
		}
	}
	return nil
}

// info returns a channel's attributes for an event's info.
func (p *PusherAPI) info(ctx context.Context, app PusherApp, channel, info string) (map[string]any, error) {
	out := map[string]any{}
	if info == "" {
		return out, nil
	}
	for _, attr := range strings.Split(info, ",") {
		switch {
		case attr == "subscription_count":
			page, err := p.rooms.Room(ctx, app.App, channel, "")
			if err != nil {
				return nil, err
			}
			out["subscription_count"] = page.Conns
		case attr == "user_count":
			n, err := p.userCount(ctx, app, channel)
			if err != nil {
				return nil, err
			}
			out["user_count"] = n
		}
	}
	return out, nil
}

// presenceUsers returns the users present in a presence channel.
func (p *PusherAPI) presenceUsers(ctx context.Context, app PusherApp, channel string) ([]string, error) {
	if p.members == nil {
		return []string{}, nil
	}
	users, _, err := p.members.Members(ctx, app.App, channel, 0)
	if err != nil {
		return nil, &push.Error{Code: push.CodeUnavailable, Message: "presence cannot be read now; retry", Err: err}
	}
	return users, nil
}

func (p *PusherAPI) userCount(ctx context.Context, app PusherApp, channel string) (int, error) {
	users, err := p.presenceUsers(ctx, app, channel)
	return len(users), err
}

// batchEvents serves POST /apps/{id}/batch_events: every event is checked
// before any is published.
func (p *PusherAPI) batchEvents(ctx context.Context, app PusherApp, _ *http.Request, body []byte) (any, error) {
	var b struct {
		Batch []pusherEvent `json:"batch"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, perr(http.StatusBadRequest, "body is not a JSON batch")
	}
	if len(b.Batch) == 0 || len(b.Batch) > pusherMaxBatch {
		return nil, perr(http.StatusBadRequest, "batch must hold 1 to "+strconv.Itoa(pusherMaxBatch)+" events")
	}
	all := make([][]string, len(b.Batch))
	for i := range b.Batch {
		if len(b.Batch[i].Channels) > 0 {
			return nil, perr(http.StatusBadRequest, "batch events name one channel each")
		}
		channels, err := b.Batch[i].check()
		if err != nil {
			return nil, err
		}
		if err := checkInfo(b.Batch[i].Info, channels); err != nil {
			return nil, err
		}
		all[i] = channels
	}
	withInfo := false
	for i := range b.Batch {
		if err := p.publish(ctx, app, &b.Batch[i], all[i]); err != nil {
			return nil, err
		}
		withInfo = withInfo || b.Batch[i].Info != ""
	}
	if !withInfo {
		return struct{}{}, nil
	}
	out := make([]map[string]any, len(b.Batch))
	for i := range b.Batch {
		attrs, err := p.info(ctx, app, all[i][0], b.Batch[i].Info)
		if err != nil {
			return nil, err
		}
		out[i] = attrs
	}
	return map[string]any{"batch": out}, nil
}

// channel serves GET /apps/{id}/channels/{channel}: occupied, and with
// info=subscription_count the connections subscribed, cluster-wide.
func (p *PusherAPI) channel(ctx context.Context, app PusherApp, r *http.Request, _ []byte) (any, error) {
	name := r.PathValue("channel")
	if !pusher.ValidChannel(name) {
		return nil, perr(http.StatusBadRequest, "Invalid channel name "+strconv.Quote(name))
	}
	out := map[string]any{}
	for _, attr := range strings.Split(r.URL.Query().Get("info"), ",") {
		switch attr {
		case "":
		case "subscription_count":
			out["subscription_count"] = 0
		case "user_count":
			if !strings.HasPrefix(name, pusher.PresencePrefix) {
				return nil, perr(http.StatusBadRequest, "Cannot retrieve user_count unless the channel is a presence channel")
			}
			n, err := p.userCount(ctx, app, name)
			if err != nil {
				return nil, err
			}
			out["user_count"] = n
		default:
			return nil, perr(http.StatusBadRequest, "unknown info attribute "+strconv.Quote(attr))
		}
	}
	page, err := p.rooms.Room(ctx, app.App, name, "")
	if err != nil {
		return nil, err
	}
	out["occupied"] = page.Conns > 0
	if _, ok := out["subscription_count"]; ok {
		out["subscription_count"] = page.Conns
	}
	return out, nil
}

// channels serves GET /apps/{id}/channels: the occupied channels,
// cluster-wide, whose names start with filter_by_prefix; with
// info=user_count (presence- prefix only) each one's users.
func (p *PusherAPI) channels(ctx context.Context, app PusherApp, r *http.Request, _ []byte) (any, error) {
	prefix := r.URL.Query().Get("filter_by_prefix")
	withUsers := false
	for _, attr := range strings.Split(r.URL.Query().Get("info"), ",") {
		switch attr {
		case "":
		case "user_count":
			if !strings.HasPrefix(prefix, pusher.PresencePrefix) {
				return nil, perr(http.StatusBadRequest, "user_count may only be requested for presence channels - please supply filter_by_prefix beginning with presence-")
			}
			withUsers = true
		default:
			return nil, perr(http.StatusBadRequest, "unknown info attribute "+strconv.Quote(attr))
		}
	}
	rooms, err := p.rooms.Rooms(ctx, app.App, prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(rooms))
	for name := range rooms {
		if !pusher.ValidChannel(name) || strings.HasPrefix(name, pusher.UserPrefix) {
			continue // a Herald room Pusher cannot name, or a user's own channel
		}
		attrs := map[string]any{}
		if withUsers {
			n, err := p.userCount(ctx, app, name)
			if err != nil {
				return nil, err
			}
			attrs["user_count"] = n
		}
		out[name] = attrs
	}
	return map[string]any{"channels": out}, nil
}

// users serves GET /apps/{id}/channels/{channel}/users: a presence
// channel's users, cluster-wide.
func (p *PusherAPI) users(ctx context.Context, app PusherApp, r *http.Request, _ []byte) (any, error) {
	name := r.PathValue("channel")
	switch {
	case !pusher.ValidChannel(name):
		return nil, perr(http.StatusBadRequest, "Invalid channel name "+strconv.Quote(name))
	case !strings.HasPrefix(name, pusher.PresencePrefix):
		return nil, perr(http.StatusBadRequest, "Cannot retrieve the user list for non-presence channels")
	}
	users, err := p.presenceUsers(ctx, app, name)
	if err != nil {
		return nil, err
	}
	type user struct {
		ID string `json:"id"`
	}
	out := make([]user, len(users))
	for i, u := range users {
		out[i].ID = u
	}
	return map[string]any{"users": out}, nil
}

// terminate serves POST /apps/{id}/users/{user}/terminate_connections:
// every connection signed in as the user, on every node, is closed with
// 4009.
func (p *PusherAPI) terminate(ctx context.Context, app PusherApp, r *http.Request, _ []byte) (any, error) {
	user := r.PathValue("user")
	if !pusher.ValidChannel(pusher.UserPrefix + user) {
		return nil, perr(http.StatusBadRequest, "Invalid user id "+strconv.Quote(user))
	}
	if _, err := p.rooms.KickRoom(ctx, app.App, pusher.UserPrefix+user); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
