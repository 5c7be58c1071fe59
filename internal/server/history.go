package server

import (
	"context"

	"github.com/heraldpush/herald/internal/apikey"
	"github.com/heraldpush/herald/internal/history"
)

// readings are the node's counts for the overview's history: the hub's
// connections and users, the push service's cumulative counts and the
// webhook outbox's backlog, per app and in total (""). Every configured
// app is there, so that its history starts with the node.
func (s *Server) readings(ctx context.Context) map[string]history.Reading {
	out := map[string]history.Reading{}
	for _, a := range s.cfg.Apps {
		out[a.Name] = history.Reading{}
	}
	if s.cfg.Dev {
		out[apikey.DevApp] = history.Reading{}
	}
	for app, t := range s.service.AllTotals() {
		out[app] = history.Reading{Pushes: t.Pushes, Deliveries: t.Deliveries, Stored: t.Stored, Acks: t.Acks}
	}
	total := history.Reading{}
	for app, n := range s.hub.CountsByApp() {
		r := out[app]
		r.Conns, r.Users = n.Conns, n.Users
		out[app] = r
		total.Conns += n.Conns
		total.Users += n.Users
	}
	if s.lifecycle != nil && s.lifecycle.Outbox != nil {
		for _, ep := range s.lifecycle.Outbox.Stats(ctx, "") {
			r := out[ep.App]
			r.Backlog += ep.Pending
			out[ep.App] = r
			total.Backlog += ep.Pending
		}
	}
	t := out[""]
	t.Conns, t.Users, t.Backlog = total.Conns, total.Users, total.Backlog
	out[""] = t
	return out
}
