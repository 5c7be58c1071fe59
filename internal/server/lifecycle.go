package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/lifecycle"
	"github.com/heraldpush/herald/internal/natsengine"
	"github.com/heraldpush/herald/internal/presence"
	"github.com/heraldpush/herald/internal/pusherinfo"
	"github.com/heraldpush/herald/internal/webhook"
)

// newLifecycle builds presence and the webhook outbox (nil when no app
// has a webhook). It starts nothing. With no webhook and no presence room
// there is nothing to tell anyone: s.lifecycle stays nil, and connections
// cost what they cost without these features (tracking every connection
// cluster-wide doubles a connection's memory; see docs/benchmarks.md).
func (s *Server) newLifecycle(cfg config.Config, replicas int) error {
	l := cfg.Limits
	lc := &lifecycle.Lifecycle{PresenceRooms: cfg.PresenceRooms, Notices: s.service, Log: s.log}
	var eps []webhook.Endpoint
	add := func(app string, hooks []config.Webhook) error {
		for _, h := range hooks {
			key, err := webhook.ParseSecret(h.Secret)
			if err != nil {
				return fmt.Errorf("app %q: %w", app, err)
			}
			eps = append(eps, webhook.Endpoint{App: app, URL: h.URL, Key: key, Events: h.Events})
		}
		return nil
	}
	for _, a := range cfg.Apps {
		if err := add(a.Name, a.Webhooks); err != nil {
			return err
		}
	}
	if err := add("demo", cfg.DevWebhooks); err != nil {
		return err
	}
	eps = append(eps, pusherEndpoints(cfg)...)
	if len(eps) > 0 {
		ob, err := webhook.New(webhook.Config{NodeID: cfg.NodeID, Replicas: replicas, Endpoints: eps,
			AllowPrivate: cfg.AllowPrivateWebhooks || cfg.Dev, RetryFor: l.WebhookRetryFor, Timeout: l.WebhookTimeout,
			MaxTTL:   l.MaxTTL,
			Observer: s.metrics.Webhooks(), Logger: s.log})
		if err != nil {
			return err
		}
		lc.Outbox = ob
		s.service.SetEvents(ob) // message.* events, for endpoints that list them
		ob.SetExpiryCheck(s.service.Unacked)
	}
	// Pusher presence channels need the tracker, not a record of every
	// connection: then the gateway is given no Lifecycle (gatewayLifecycle).
	s.lifecycleConns = lc.Outbox != nil || len(cfg.PresenceRooms) > 0
	if !s.lifecycleConns && len(pusherApps(cfg)) == 0 {
		return nil
	}
	if len(pusherApps(cfg)) > 0 {
		s.pusherInfo = pusherinfo.New(replicas)
		lc.Notices = pusherNotices{next: s.service, infos: s.pusherInfo, log: s.log}
	}
	s.lifecycle = lc
	tr, err := presence.New(presence.Config{NodeID: cfg.NodeID, Replicas: replicas, OfflineDelay: l.OfflineDelay,
		Timeout: l.EngineTimeout, Logger: s.log}, s.lifecycle)
	if err != nil {
		return err
	}
	s.lifecycle.Tracker = tr
	return nil
}

// startLifecycle starts the outbox, then presence (whose first sweep may
// already emit events).
func (s *Server) startLifecycle(ctx context.Context) error {
	if s.lifecycle == nil {
		return nil
	}
	nc := s.engine.Conn()
	// Their buckets and streams wait for JetStream, as the inbox's do (a
	// clustered node starting before its peers).
	err := s.waitForEngine(ctx, "JetStream (presence and webhooks)", func(ctx context.Context) error {
		// Short attempts: a fresh cluster drops JetStream requests until
		// it has a meta leader, and a repeated create is answered at once.
		ctx, cancel := context.WithTimeout(ctx, min(s.cfg.Limits.EngineTimeout, 2*time.Second))
		defer cancel()
		err := s.lifecycle.Tracker.Bind(ctx, nc)
		if err == nil && s.pusherInfo != nil {
			err = s.pusherInfo.Bind(ctx, nc)
		}
		if err == nil && s.lifecycle.Outbox != nil {
			err = s.lifecycle.Outbox.Start(ctx, nc)
		}
		if natsengine.Unavailable(err) {
			err = errors.Join(engine.ErrUnavailable, err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.lifecycle.Tracker.Start(ctx, nc); err != nil {
		if s.lifecycle.Outbox != nil {
			s.lifecycle.Outbox.Close()
		}
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// closeLifecycle stops presence (its queued changes written, its lease
// given up), then the outbox.
func (s *Server) closeLifecycle() error {
	if s.lifecycle == nil {
		return nil
	}
	err := s.lifecycle.Tracker.Close()
	if s.lifecycle.Outbox != nil {
		err = errors.Join(err, s.lifecycle.Outbox.Close())
	}
	return err
}

// gatewayLifecycle is s.lifecycle for the gateway's config: a nil
// interface, not a nil pointer in one, when there is none.
func (s *Server) gatewayLifecycle() gateway.Lifecycle {
	if s.lifecycle == nil || !s.lifecycleConns {
		return nil
	}
	return s.lifecycle
}

// gatewayPresence is s.lifecycle as the gateway's member lister, or a nil
// interface.
func (s *Server) gatewayPresence() gateway.Presence {
	if s.lifecycle == nil {
		return nil
	}
	return s.lifecycle
}
