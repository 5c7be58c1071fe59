package server

import (
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/webhook"
)

// pusherEndpoints lists the apps' Pusher-format webhook endpoints (app
// "demo"'s from --pusher-webhook-url in dev mode), signed with each app's
// Pusher secret.
func pusherEndpoints(cfg config.Config) []webhook.Endpoint {
	var out []webhook.Endpoint
	add := func(app string, p *config.Pusher) {
		if p != nil && p.WebhookURL != "" {
			out = append(out, webhook.Endpoint{App: app, URL: p.WebhookURL, Key: []byte(p.Secret), PusherKey: p.Key,
				PusherClientEvents: p.ClientEventWebhooks})
		}
	}
	for _, a := range cfg.Apps {
		add(a.Name, a.Pusher)
	}
	if cfg.Dev {
		add("demo", cfg.DevPusher)
	}
	return out
}
