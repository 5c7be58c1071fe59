// Package config defines Herald's configuration: defaults, the YAML file
// format, and validation. It reads files but holds no global state; the
// command line layer (cmd/herald) applies flags and HERALD_* variables on
// top of a loaded Config.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/webhook"
	"gopkg.in/yaml.v3"
)

// App is one tenant.
type App struct {
	Name    string   `yaml:"name"`
	APIKeys []string `yaml:"api_keys"`
	// Client tokens: HS256 with TokenSecret, or RS256/ES256 with the PEM
	// public key in TokenPublicKey (inline) or TokenPublicKeyFile.
	TokenAlg           string `yaml:"token_alg"`
	TokenSecret        string `yaml:"token_secret"`
	TokenPublicKey     string `yaml:"token_public_key"`
	TokenPublicKeyFile string `yaml:"token_public_key_file"`
	// MaxTokenLifetime refuses client tokens whose exp is further than
	// this from now (or from their iat); 0: no limit of the app's own.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// MaxConnsPerUser overrides limits.max_conns_per_user for this app's
	// users; 0 keeps the global value.
	MaxConnsPerUser int `yaml:"max_conns_per_user"`
	// Webhooks receive the app's lifecycle events (docs/webhooks.md).
	Webhooks []Webhook `yaml:"webhooks"`
	// Pusher, if set, lets Pusher Channels clients and server SDKs use the
	// app (docs/pusher.md).
	Pusher *Pusher `yaml:"pusher"`
}

// Pusher is an app's Pusher Channels identity: pusher-js connects to
// /app/{key}, the server SDKs call /apps/{app_id}/… signed with secret.
type Pusher struct {
	AppID  string `yaml:"app_id"`
	Key    string `yaml:"key"`
	Secret string `yaml:"secret"`
	// ClientEvents allows client- events on private and presence channels.
	ClientEvents bool `yaml:"client_events"`
	// WebhookURL receives Pusher-format webhooks: channel_occupied,
	// channel_vacated, member_added, member_removed and, with
	// ClientEventWebhooks, client_event.
	WebhookURL string `yaml:"webhook_url"`
	// ClientEventWebhooks sends client_event webhooks (as Pusher's app
	// setting does); each client event is then stored in the outbox.
	ClientEventWebhooks bool `yaml:"client_event_webhooks"`
}

// Webhook is one endpoint of an app's lifecycle events.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret is a Standard Webhooks secret: "whsec_" + base64.
	Secret string `yaml:"secret"`
	// Events lists the event types sent; empty: every type except
	// message.*.
	Events []string `yaml:"events"`
}

// RoomHistory makes matching rooms keep their recent messages, so that a
// client rejoining with its last position gets what it missed.
type RoomHistory struct {
	Rooms string        `yaml:"rooms"` // a room name, "prefix*", or "*"
	Size  int           `yaml:"size"`  // messages a rejoin may replay
	TTL   time.Duration `yaml:"ttl"`   // how long a message is kept
}

// Limits bound clients and pushes.
type Limits struct {
	MaxFrame       int           `yaml:"max_frame"`       // largest client frame, bytes
	MaxPayload     int           `yaml:"max_payload"`     // largest push data, bytes
	MaxTargets     int           `yaml:"max_targets"`     // targets in one push
	MaxBatch       int           `yaml:"max_batch"`       // items in one batch push
	QueueBytes     int           `yaml:"queue_bytes"`     // per-connection write queue
	MaxRooms       int           `yaml:"max_rooms"`       // rooms per connection
	InboxCap       int           `yaml:"inbox_cap"`       // stored messages per user; the oldest go first
	SendRate       int           `yaml:"send_rate"`       // client sends per second
	DefaultTTL     time.Duration `yaml:"default_ttl"`     // of a push
	MaxTTL         time.Duration `yaml:"max_ttl"`         // of a push
	IdempotencyTTL time.Duration `yaml:"idempotency_ttl"` // push id memory
	IdempotencyMax int           `yaml:"idempotency_max"` // push ids remembered per node; the oldest go first
	// MaxBodyBytesInFlight bounds the API request bodies being read or
	// handled at once (bytes, HTTP and gRPC); a call over it waits briefly,
	// then gets 503 unavailable. It also caps one batch body.
	MaxBodyBytesInFlight int64         `yaml:"max_body_bytes_in_flight"`
	WriteTimeout         time.Duration `yaml:"write_timeout"`     // one socket write
	EngineTimeout        time.Duration `yaml:"engine_timeout"`    // one engine call
	AuthTimeout          time.Duration `yaml:"auth_timeout"`      // first-frame token wait
	Heartbeat            time.Duration `yaml:"heartbeat"`         // advertised ping interval
	HeartbeatLimit       time.Duration `yaml:"heartbeat_timeout"` // silence before a close
	// Connections the listener accepts, counted before any byte is read.
	MaxConns      int `yaml:"max_conns"`        // 0: the open-file limit minus fd_reserve
	FDReserve     int `yaml:"fd_reserve"`       // descriptors kept free for the engine; 0: 5 % of the limit, 128 to 1,024
	MaxConnsPerIP int `yaml:"max_conns_per_ip"` // 0: 1,000 outside dev mode, none in dev mode; -1: none
	// HTTP deadlines: a request's headers, its body, and an idle keep-alive
	// connection between requests.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	BodyTimeout   time.Duration `yaml:"body_timeout"`
	IdleTimeout   time.Duration `yaml:"idle_timeout"`
	// MaxConnsPerUser is how many connections one user of an app may hold
	// on one node; a connection beyond it is closed with 4009 (apps may
	// override it).
	MaxConnsPerUser int `yaml:"max_conns_per_user"`
	// OfflineDelay holds back user.offline, room.vacated and a
	// disconnect's presence leave; nothing is sent if the user (or a
	// member) is back within it.
	OfflineDelay time.Duration `yaml:"offline_delay"`
	// PresenceMembers caps the members listed in a presence room's joined
	// frame ("more": true beyond it).
	PresenceMembers int `yaml:"presence_members"`
	// WebhookRetryFor is how long a webhook event is retried before it
	// moves to the dead-letter list; WebhookTimeout bounds one attempt.
	WebhookRetryFor time.Duration `yaml:"webhook_retry_for"`
	WebhookTimeout  time.Duration `yaml:"webhook_timeout"`
}

// DefaultMaxConnsPerIP is the per-IP connection cap outside dev mode when
// max_conns_per_ip is 0.
const DefaultMaxConnsPerIP = 1000

// ConnsPerIP is the per-IP connection cap in effect (0: none).
func (c *Config) ConnsPerIP() int {
	switch n := c.Limits.MaxConnsPerIP; {
	case n < 0 || n == 0 && c.Dev:
		return 0
	case n == 0:
		return DefaultMaxConnsPerIP
	default:
		return n
	}
}

// Config is the whole server configuration.
type Config struct {
	Addr      string `yaml:"addr"`
	Advertise string `yaml:"advertise"` // host:port clients reach this node at (default: addr)
	// AdminAddr, when set, is a listener of its own for the admin UI
	// (/admin/) and the API; the main listener then serves no /admin/ and
	// accepts no admin session cookie.
	AdminAddr string `yaml:"admin_addr"`
	Data      string `yaml:"data"`
	NATSURL   string `yaml:"nats_url"`
	// ClusterName, ClusterListen and ClusterPeers cluster the embedded NATS
	// servers of several Herald nodes (no external NATS needed).
	ClusterName   string   `yaml:"cluster_name"`
	ClusterListen string   `yaml:"cluster_listen"`
	ClusterPeers  []string `yaml:"cluster_peers"`
	// Replicas is how many copies JetStream keeps of Herald's streams and
	// buckets; 0 means 3 with the cluster_* settings, else 1. Set it to 3
	// with a nats_url of a NATS cluster.
	Replicas int `yaml:"replicas"`
	// SyncInterval is how often the embedded JetStream flushes its files
	// to disk (0: its default, 2 minutes); shorter is safer against a
	// machine crash and costs disk I/O.
	SyncInterval time.Duration `yaml:"sync_interval"`
	NodeID       string        `yaml:"node_id"`
	// DrainTime is how long a drain (herald drain, POST /v1/admin/drain)
	// spreads closing the node's clients over, unless the call names one.
	DrainTime time.Duration `yaml:"drain_time"`
	// TLSCert and TLSKey (PEM files) make the listener serve TLS: HTTPS,
	// wss:// and gRPC over HTTP/2 with TLS.
	TLSCert        string   `yaml:"tls_cert"`
	TLSKey         string   `yaml:"tls_key"`
	Dev            bool     `yaml:"dev"`
	AdminKeys      []string `yaml:"admin_keys"`
	AllowedOrigins []string `yaml:"allowed_origins"`
	LogLevel       string   `yaml:"log_level"`  // debug, info, warn, error
	LogFormat      string   `yaml:"log_format"` // text or json
	Pprof          bool     `yaml:"pprof"`      // serve /debug/pprof/ (admin key required)
	// GCPercent is the Go garbage collector's target (GOGC), unless the
	// GOGC environment variable is set. Connection state is long-lived, so
	// a lower target than Go's 100 trades a little CPU for a lot of memory.
	GCPercent int   `yaml:"gc_percent"`
	Apps      []App `yaml:"apps"`
	// RoomHistory rules apply to the rooms of every app; the first match
	// wins.
	RoomHistory []RoomHistory `yaml:"room_history"`
	// PresenceRooms: rooms matching one of these (a name, "prefix*" or
	// "*") are presence rooms, in every app.
	PresenceRooms []string `yaml:"presence_rooms"`
	// AllowPrivateWebhooks accepts http:// webhook URLs and private or
	// loopback addresses (always accepted in dev mode).
	AllowPrivateWebhooks bool `yaml:"allow_private_webhooks"`
	// DevWebhooks are the webhooks of app "demo" in dev mode
	// (--webhook-url without --app).
	DevWebhooks []Webhook `yaml:"-"`
	// DevPusher is the Pusher identity of app "demo" in dev mode (the
	// --pusher-* flags without --app).
	DevPusher *Pusher `yaml:"-"`
	Limits    Limits  `yaml:"limits"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:      ":8080",
		Data:      "./herald-data",
		LogLevel:  "info",
		LogFormat: "text",
		GCPercent: 50,
		DrainTime: 30 * time.Second,
		Limits: Limits{
			MaxFrame:             64 << 10,
			MaxPayload:           64 << 10,
			MaxTargets:           1000,
			MaxBatch:             1000,
			QueueBytes:           1 << 20,
			MaxRooms:             256,
			InboxCap:             1000,
			SendRate:             20,
			DefaultTTL:           86400 * time.Second,
			MaxTTL:               604800 * time.Second,
			IdempotencyTTL:       5 * time.Minute,
			IdempotencyMax:       100_000,
			MaxBodyBytesInFlight: 64 << 20,
			WriteTimeout:         10 * time.Second,
			EngineTimeout:        5 * time.Second,
			AuthTimeout:          5 * time.Second,
			Heartbeat:            25 * time.Second,
			HeartbeatLimit:       60 * time.Second,
			HeaderTimeout:        10 * time.Second,
			BodyTimeout:          30 * time.Second,
			IdleTimeout:          60 * time.Second,
			MaxConnsPerUser:      100, // per node: see docs/security.md
			OfflineDelay:         5 * time.Second,
			PresenceMembers:      1000,
			WebhookRetryFor:      24 * time.Hour,
			WebhookTimeout:       10 * time.Second,
		},
	}
}

// Load reads a YAML file over the defaults. Unknown keys are an error.
func Load(path string) (Config, error) {
	cfg := Default()
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	}
	if c.NATSURL == "" && c.Data == "" {
		errs = append(errs, errors.New("data directory is empty"))
	}
	if (c.ClusterName != "" || c.ClusterListen != "" || len(c.ClusterPeers) > 0) &&
		(c.ClusterName == "" || c.ClusterListen == "" || len(c.ClusterPeers) == 0 || c.NATSURL != "") {
		errs = append(errs, errors.New("cluster_name, cluster_listen and cluster_peers go together, and not with nats_url"))
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		errs = append(errs, fmt.Errorf("replicas must be from 1 to 5 (0: automatic), not %d", c.Replicas))
	case c.Replicas > 1 && c.NATSURL == "" && c.ClusterName == "":
		errs = append(errs, errors.New("replicas above 1 need a NATS cluster (nats_url or cluster_*)"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert and tls_key go together"))
	}
	if !c.Dev && len(c.Apps) == 0 {
		errs = append(errs, errors.New("no apps configured: use --app/--api-key/--token-secret, a config file, or --dev"))
	}
	seenApp, seenKey := map[string]bool{}, map[string]bool{}
	for _, k := range c.AdminKeys {
		seenKey[k] = true
	}
	for i, a := range c.Apps {
		if a.Name == "" {
			errs = append(errs, fmt.Errorf("apps[%d] has no name", i))
		}
		if seenApp[a.Name] {
			errs = append(errs, fmt.Errorf("app %q is defined twice", a.Name))
		}
		seenApp[a.Name] = true
		if a.MaxTokenLifetime < 0 {
			errs = append(errs, fmt.Errorf("app %q: max_token_lifetime must not be negative", a.Name))
		}
		if len(a.APIKeys) == 0 {
			errs = append(errs, fmt.Errorf("app %q has no api key", a.Name))
		}
		if a.MaxConnsPerUser < 0 {
			errs = append(errs, fmt.Errorf("app %q: max_conns_per_user must be at least 1 (0: the global limit)", a.Name))
		}
		errs = append(errs, c.validWebhooks(a.Name, a.Webhooks)...)
		for _, k := range a.APIKeys {
			if len(k) < 16 {
				errs = append(errs, fmt.Errorf("app %q has an api key shorter than 16 characters", a.Name))
			}
			if seenKey[k] {
				errs = append(errs, fmt.Errorf("app %q reuses an api key", a.Name))
			}
			seenKey[k] = true
		}
	}
	for _, k := range c.AdminKeys {
		if len(k) < 16 {
			errs = append(errs, errors.New("an admin key is shorter than 16 characters"))
		}
	}
	l := c.Limits
	if l.MaxFrame < 128 || l.MaxPayload < 1 || l.MaxTargets < 1 || l.MaxBatch < 1 || l.QueueBytes < max(l.MaxFrame, 2*l.MaxPayload) ||
		l.MaxRooms < 1 || l.SendRate < 1 || l.InboxCap < 1 {
		errs = append(errs, errors.New("limits: sizes and counts must be positive, max_frame at least 128, queue_bytes at least max_frame and twice max_payload"))
	}
	if l.MaxConnsPerUser < 1 {
		errs = append(errs, errors.New("limits: max_conns_per_user must be at least 1"))
	}
	if l.IdempotencyMax < 1 || l.MaxBodyBytesInFlight < int64(l.MaxPayload)+64<<10 {
		errs = append(errs, errors.New("limits: idempotency_max must be positive and max_body_bytes_in_flight at least max_payload + 64 KiB"))
	}
	if l.DefaultTTL < time.Second || l.MaxTTL < l.DefaultTTL || l.IdempotencyTTL <= 0 {
		errs = append(errs, errors.New("limits: default_ttl must be at least 1s and within max_ttl; idempotency_ttl positive"))
	}
	if l.WriteTimeout <= 0 || l.EngineTimeout <= 0 || l.AuthTimeout <= 0 || l.Heartbeat <= 0 || l.HeartbeatLimit <= l.Heartbeat {
		errs = append(errs, errors.New("limits: timeouts must be positive and heartbeat_timeout above heartbeat"))
	}
	if l.MaxConns < 0 || l.FDReserve < 0 || l.HeaderTimeout <= 0 || l.BodyTimeout <= 0 || l.IdleTimeout <= 0 {
		errs = append(errs, errors.New("limits: max_conns and fd_reserve must not be negative; header_timeout, body_timeout and idle_timeout must be positive"))
	}
	for i, h := range c.RoomHistory {
		if h.Rooms == "" || h.Size < 1 || h.Size > l.InboxCap || h.TTL < time.Second || h.TTL > l.MaxTTL {
			errs = append(errs, fmt.Errorf("room_history[%d]: needs rooms, a size from 1 to inbox_cap and a ttl from 1s to max_ttl", i))
		}
	}
	if c.DrainTime < 0 || c.DrainTime > 24*time.Hour {
		errs = append(errs, errors.New("drain_time must be from 0 to 24h"))
	}
	if len(c.DevWebhooks) > 0 && !c.Dev {
		errs = append(errs, errors.New("--webhook-url without --app needs --dev (app \"demo\")"))
	}
	errs = append(errs, c.validWebhooks("demo", c.DevWebhooks)...)
	errs = append(errs, c.validPusher()...)
	if l.OfflineDelay < 0 || l.OfflineDelay > time.Hour || l.PresenceMembers < 1 {
		errs = append(errs, errors.New("limits: offline_delay must be from 0 to 1h and presence_members at least 1"))
	}
	if l.WebhookRetryFor <= 0 || l.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("limits: webhook_retry_for and webhook_timeout must be positive"))
	}
	for i, p := range c.PresenceRooms {
		if p == "" {
			errs = append(errs, fmt.Errorf("presence_rooms[%d] is empty", i))
		}
	}
	if c.SyncInterval < 0 {
		errs = append(errs, errors.New("sync_interval must not be negative"))
	}
	if c.GCPercent < 10 {
		errs = append(errs, errors.New("gc_percent must be at least 10"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// validWebhooks checks an app's webhooks: a Standard Webhooks secret,
// known event types, and a safe URL unless private webhooks are allowed.
func (c *Config) validWebhooks(app string, hooks []Webhook) []error {
	var errs []error
	for i, w := range hooks {
		if _, err := webhook.ParseSecret(w.Secret); err != nil {
			errs = append(errs, fmt.Errorf("app %q: webhooks[%d]: %w", app, i, err))
		}
		for _, t := range w.Events {
			if !webhook.ValidType(t) {
				errs = append(errs, fmt.Errorf("app %q: webhooks[%d]: unknown event type %q", app, i, t))
			}
		}
		if err := webhook.CheckURL(w.URL, c.AllowPrivateWebhooks || c.Dev); err != nil {
			errs = append(errs, fmt.Errorf("app %q: webhooks[%d]: %w", app, i, err))
		}
	}
	return errs
}

// validPusher checks the apps' Pusher identities: app id, key and secret
// all set, and no app id or key shared by two apps (a key must never reach
// another app).
func (c *Config) validPusher() []error {
	var errs []error
	ids, keys := map[string]bool{}, map[string]bool{}
	check := func(app string, p *Pusher) {
		if p == nil {
			return
		}
		if p.AppID == "" || p.Key == "" || p.Secret == "" {
			errs = append(errs, fmt.Errorf("app %q: pusher needs app_id, key and secret", app))
		}
		if ids[p.AppID] || keys[p.Key] {
			errs = append(errs, fmt.Errorf("app %q: pusher app_id and key must be unique across apps", app))
		}
		ids[p.AppID], keys[p.Key] = true, true
		if strings.ContainsAny(p.Key, "/?#") || strings.ContainsAny(p.AppID, "/?#") {
			errs = append(errs, fmt.Errorf("app %q: pusher app_id and key may not contain '/', '?' or '#'", app))
		}
		if p.WebhookURL != "" {
			if err := webhook.CheckURL(p.WebhookURL, c.AllowPrivateWebhooks || c.Dev); err != nil {
				errs = append(errs, fmt.Errorf("app %q: pusher webhook_url: %w", app, err))
			}
		}
		if p.ClientEventWebhooks && p.WebhookURL == "" {
			errs = append(errs, fmt.Errorf("app %q: pusher client_event_webhooks needs a webhook_url", app))
		}
	}
	for _, a := range c.Apps {
		check(a.Name, a.Pusher)
	}
	if c.DevPusher != nil && !c.Dev {
		errs = append(errs, errors.New("--pusher-* without --app needs --dev (app \"demo\")"))
	}
	check("demo", c.DevPusher)
	return errs
}
