package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleFileLoadsWithTheDefaults(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.Limits != def.Limits {
		t.Errorf("example limits %+v differ from the defaults %+v", cfg.Limits, def.Limits)
	}
	if len(cfg.Apps) < 2 || len(cfg.AdminKeys) == 0 {
		t.Errorf("example defines %d apps and %d admin keys", len(cfg.Apps), len(cfg.AdminKeys))
	}
}

func TestLoadRejectsUnknownKeysAndBadValues(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":  "adress: :8080\n",
		"bad duration": "limits:\n  heartbeat: soon\n",
		"not yaml":     "apps: [\n",
	} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil {
			t.Errorf("%s: loaded without error", name)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}

var okHook = Webhook{URL: "https://backend.example.com/herald", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}

func TestValidate(t *testing.T) {
	app := App{Name: "shop", APIKeys: []string{"0123456789abcdef"}, TokenSecret: "0123456789abcdef"}
	cases := []struct {
		name string
		edit func(*Config)
		want string // "" = valid
	}{
		{"dev needs no app", func(c *Config) { c.Dev = true }, ""},
		{"one app", func(c *Config) { c.Apps = []App{app} }, ""},
		{"no apps", func(c *Config) {}, "no apps"},
		{"duplicate app", func(c *Config) { c.Apps = []App{app, app} }, "defined twice"},
		{"short key", func(c *Config) { a := app; a.APIKeys = []string{"short"}; c.Apps = []App{a} }, "shorter than 16"},
		{"key shared with admin", func(c *Config) { c.Apps = []App{app}; c.AdminKeys = app.APIKeys }, "reuses an api key"},
		{"no key", func(c *Config) { a := app; a.APIKeys = nil; c.Apps = []App{a} }, "no api key"},
		{"negative token lifetime", func(c *Config) { a := app; a.MaxTokenLifetime = -time.Hour; c.Apps = []App{a} }, "max_token_lifetime"},
		{"token lifetime", func(c *Config) { a := app; a.MaxTokenLifetime = 24 * time.Hour; c.Apps = []App{a} }, ""},
		{"heartbeat", func(c *Config) { c.Dev = true; c.Limits.HeartbeatLimit = c.Limits.Heartbeat }, "heartbeat_timeout"},
		{"ttl", func(c *Config) { c.Dev = true; c.Limits.DefaultTTL = 2 * c.Limits.MaxTTL }, "default_ttl"},
		{"queue below payload", func(c *Config) { c.Dev = true; c.Limits.QueueBytes = c.Limits.MaxPayload }, "queue_bytes"},
		{"no addr", func(c *Config) { c.Dev = true; c.Addr = "" }, "addr"},
		{"embedded without data", func(c *Config) { c.Dev = true; c.Data = "" }, "data directory"},
		{"external needs no data", func(c *Config) { c.Dev = true; c.Data = ""; c.NATSURL = "nats://127.0.0.1:4222" }, ""},
		{"replicas on an external cluster", func(c *Config) { c.Dev = true; c.NATSURL = "nats://127.0.0.1:4222"; c.Replicas = 3 }, ""},
		{"replicas on one embedded server", func(c *Config) { c.Dev = true; c.Replicas = 3 }, "need a NATS cluster"},
		{"user limit", func(c *Config) { c.Dev = true; c.Limits.MaxConnsPerUser = 0 }, "max_conns_per_user"},
		{"app user limit", func(c *Config) { a := app; a.MaxConnsPerUser = -1; c.Apps = []App{a} }, "max_conns_per_user"},
		{"app user limit above the global", func(c *Config) { a := app; a.MaxConnsPerUser = 500; c.Apps = []App{a} }, ""},
		{"webhook", func(c *Config) { a := app; a.Webhooks = []Webhook{okHook}; c.Apps = []App{a} }, ""},
		{"webhook secret", func(c *Config) {
			a := app
			a.Webhooks = []Webhook{{URL: okHook.URL, Secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
			c.Apps = []App{a}
		}, `app "shop": webhooks[0]: webhook: secret must be "whsec_"`},
		{"webhook event", func(c *Config) {
			a := app
			a.Webhooks = []Webhook{{URL: okHook.URL, Secret: okHook.Secret, Events: []string{"user.online", "user.sneezed"}}}
			c.Apps = []App{a}
		}, `app "shop": webhooks[0]: unknown event type "user.sneezed"`},
		{"webhook http", func(c *Config) {
			a := app
			a.Webhooks = []Webhook{{URL: "http://backend.example.com/h", Secret: okHook.Secret}}
			c.Apps = []App{a}
		}, `app "shop": webhooks[0]: webhook: unsafe endpoint URL`},
		{"webhook loopback", func(c *Config) {
			a := app
			a.Webhooks = []Webhook{{URL: "https://127.0.0.1:9000/h", Secret: okHook.Secret}}
			c.Apps = []App{a}
		}, `app "shop": webhooks[0]: webhook: unsafe endpoint URL`},
		{"webhook loopback allowed", func(c *Config) {
			a := app
			a.Webhooks = []Webhook{{URL: "http://127.0.0.1:9000/h", Secret: okHook.Secret}}
			c.Apps = []App{a}
			c.AllowPrivateWebhooks = true
		}, ""},
		{"dev webhook loopback", func(c *Config) {
			c.Dev = true
			c.DevWebhooks = []Webhook{{URL: "http://127.0.0.1:9000/h", Secret: okHook.Secret}}
		}, ""},
		{"dev webhook without dev", func(c *Config) { c.Apps = []App{app}; c.DevWebhooks = []Webhook{okHook} }, "needs --dev"},
		{"offline delay", func(c *Config) { c.Dev = true; c.Limits.OfflineDelay = -time.Second }, "offline_delay"},
		{"presence rooms", func(c *Config) { c.Dev = true; c.PresenceRooms = []string{"chat-*", ""} }, "presence_rooms[1]"},
		{"pusher", func(c *Config) { a := app; a.Pusher = &Pusher{AppID: "1", Key: "k", Secret: "s"}; c.Apps = []App{a} }, ""},
		{"pusher without secret", func(c *Config) { a := app; a.Pusher = &Pusher{AppID: "1", Key: "k"}; c.Apps = []App{a} }, "pusher needs app_id, key and secret"},
		{"pusher key of two apps", func(c *Config) {
			a, b := app, app
			b.Name, b.APIKeys = "blog", []string{"fedcba9876543210"}
			a.Pusher = &Pusher{AppID: "1", Key: "k", Secret: "s"}
			b.Pusher = &Pusher{AppID: "2", Key: "k", Secret: "t"}
			c.Apps = []App{a, b}
		}, "unique across apps"},
		{"pusher key with a slash", func(c *Config) { a := app; a.Pusher = &Pusher{AppID: "1", Key: "a/b", Secret: "s"}; c.Apps = []App{a} }, "may not contain"},
		{"pusher webhook http", func(c *Config) {
			a := app
			a.Pusher = &Pusher{AppID: "1", Key: "k", Secret: "s", WebhookURL: "http://10.0.0.1/h"}
			c.Apps = []App{a}
		}, "pusher webhook_url"},
		{"pusher client event webhooks without a url", func(c *Config) {
			a := app
			a.Pusher = &Pusher{AppID: "1", Key: "k", Secret: "s", ClientEventWebhooks: true}
			c.Apps = []App{a}
		}, "client_event_webhooks needs a webhook_url"},
		{"dev pusher without dev", func(c *Config) { c.Apps = []App{app}; c.DevPusher = &Pusher{AppID: "1", Key: "k", Secret: "s"} }, "needs --dev"},
		{"dev pusher", func(c *Config) { c.Dev = true; c.DevPusher = &Pusher{AppID: "1", Key: "k", Secret: "s"} }, ""},
		{"too many replicas", func(c *Config) { c.Dev = true; c.NATSURL = "nats://127.0.0.1:4222"; c.Replicas = 7 }, "from 1 to 5"},
	}
	for _, tc := range cases {
		cfg := Default()
		tc.edit(&cfg)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if n := Default().Limits.MaxConnsPerUser; n != 100 {
		t.Errorf("max_conns_per_user %d, want 100", n)
	}
	if d := Default().Limits.OfflineDelay; d != 5*time.Second {
		t.Errorf("offline_delay %v, want the issue's 5 s", d)
	}
	if d := Default().Limits.IdempotencyTTL; d != 5*time.Minute {
		t.Errorf("idempotency window %v, want the contract's 5 minutes", d)
	}
}
