package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/push"
	"github.com/nats-io/nats.go"
)

// Limits of the live tail.
const (
	// MaxTails is how many tails one node runs at once.
	MaxTails = 16
	// TailRate is how many pushes per second one tail shows; the rest are
	// counted and reported as skipped.
	TailRate = 20
	// tailQueue is how many pushes wait for one tail's writer.
	tailQueue = 256
)

// Tapper copies the payloads published to a topic to h, without taking
// part in delivery.
type Tapper interface {
	Tap(t engine.Topic, h func(payload []byte)) (stop func(), err error)
}

// NATSTap taps the engine's NATS subjects through the node's connection,
// and Local, the pushes a node that is the whole cluster delivers without
// the engine (nil: none).
type NATSTap struct {
	Conn  func() *nats.Conn
	Local *push.Taps
}

// Tap implements Tapper with a plain subscription of its own (a push
// reaches h once: it goes either through the engine or around it).
func (n NATSTap) Tap(t engine.Topic, h func([]byte)) (func(), error) {
	nc := n.Conn()
	if nc == nil {
		return nil, push.Errorf(push.CodeUnavailable, "engine unavailable")
	}
	sub, err := nc.Subscribe(natsengine.Subject(t), func(m *nats.Msg) { h(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("admin: tap: %w", err)
	}
	stopLocal := func() {}
	if n.Local != nil {
		stopLocal = n.Local.Add(t, h)
	}
	return func() { _ = sub.Unsubscribe(); stopLocal() }, nil
}

// tailEvent is one line of the tail stream.
type tailEvent struct {
	Kind    string          `json:"kind"` // "push" or "recall"
	Msg     json.RawMessage `json:"msg,omitempty"`
	Skipped int64           `json:"skipped,omitempty"`
}

// serveTail answers GET /v1/admin/tail?target=room:<name>|user:<id>[&app=]
// (admin sessions and keys only) with a text/event-stream of the pushes
// published to that room or user, at most TailRate a second.
func (a *Admin) serveTail(w http.ResponseWriter, r *http.Request) {
	c, err := a.Authenticate(r)
	if err == nil && !c.Admin {
		err = push.Errorf(push.CodeForbidden, "the live tail needs an admin key")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if a.tap == nil {
		writeError(w, push.Errorf(push.CodeUnavailable, "no live tail on this node"))
		return
	}
	app, err := a.keys.AppFor(c, r.URL.Query().Get("app"))
	if err != nil {
		writeError(w, err)
		return
	}
	kind, name, _ := strings.Cut(r.URL.Query().Get("target"), ":")
	t := engine.Topic{App: app, Name: name}
	switch {
	case name == "":
		err = push.Errorf(push.CodeInvalidArgument, "target must be room:<name> or user:<id>")
	case kind == "room":
		t.Kind = engine.Room
	case kind == "user":
		t.Kind = engine.User
	default:
		err = push.Errorf(push.CodeInvalidArgument, "target must be room:<name> or user:<id>")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	select {
	case a.tails <- struct{}{}:
		defer func() { <-a.tails }()
	default:
		writeError(w, push.Errorf(push.CodeRateLimited, "%d live tails are running on this node", MaxTails))
		return
	}
	q := make(chan []byte, tailQueue)
	var skipped atomic.Int64
	stop, err := a.tap.Tap(t, func(p []byte) {
		select {
		case q <- bytes.Clone(p):
		default:
			skipped.Add(1)
		}
	})
	if err != nil {
		writeError(w, err)
		return
	}
	defer stop()
	a.stream(w, r, q, &skipped)
}

// stream writes the tail's events until the client goes or the node
// closes the admin UI.
func (a *Admin) stream(w http.ResponseWriter, r *http.Request, q chan []byte, skipped *atomic.Int64) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(": tail\n\n"))
	_ = rc.Flush()
	tick := time.NewTicker(time.Second / TailRate)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.ctx.Done():
			return
		case <-tick.C:
		}
		var ev tailEvent
		select {
		case p := <-q:
			ev = event(p)
			if n := skipped.Swap(0); n > 0 {
				ev.Skipped = n
			}
		default:
			n := skipped.Swap(0)
			if n == 0 {
				continue
			}
			ev = tailEvent{Kind: "skipped", Skipped: n}
		}
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// event reads an engine payload: an envelope line, then the message. A
// tail shows the message only (the envelope's "k" tells a recall).
func event(p []byte) tailEvent {
	head, msg, ok := bytes.Cut(p, []byte("\n"))
	if !ok || !json.Valid(msg) {
		return tailEvent{Kind: "push"}
	}
	var env struct {
		Kind string `json:"k"`
	}
	_ = json.Unmarshal(head, &env)
	if env.Kind == "recall" {
		return tailEvent{Kind: "recall", Msg: msg}
	}
	return tailEvent{Kind: "push", Msg: msg}
}
