package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

func version() string { return server.Version }

func serve(args []string) error {
	fs := newFlags("serve", "Run a Herald node. With no --nats-url it embeds a NATS server (JetStream in --data).\nEvery flag also reads HERALD_<NAME> (e.g. HERALD_NATS_URL); the command line wins.")
	def := config.Default()
	var (
		dev           = fs.Bool("dev", false, "development mode: loopback only, app \"demo\", no tokens or API keys needed")
		addr          = fs.String("addr", def.Addr, "listen address (127.0.0.1:8080 with --dev)")
		adminAddr     = fs.String("admin-addr", "", "serve the admin UI (/admin/) and the API on this host:port instead of on --addr")
		data          = fs.String("data", def.Data, "data directory of the embedded engine")
		file          = fs.String("config", "", "YAML config file (see config.example.yaml)")
		natsURL       = fs.String("nats-url", "", "external NATS cluster URL(s), comma-separated; empty embeds one")
		clusterName   = fs.String("cluster-name", "", "cluster the embedded NATS servers of several nodes under this name (with --cluster-listen and --cluster-peers)")
		clusterListen = fs.String("cluster-listen", "", "host:port this node accepts cluster routes on")
		clusterPeers  listFlag
		replicas      = fs.Int("replicas", 0, "copies JetStream keeps of Herald's data (0: 3 with --cluster-*, else 1); set 3 with --nats-url of a NATS cluster")
		tlsCert       = fs.String("tls-cert", "", "TLS certificate (PEM) of the listener, with --tls-key: HTTPS, wss:// and gRPC over TLS")
		tlsKey        = fs.String("tls-key", "", "TLS private key (PEM) of --tls-cert")
		advertise     = fs.String("advertise", "", "host:port clients reach this node at, for /v1/nodes and /v1/route (default: the listen address)")
		nodeID        = fs.String("node-id", "", "node id (a-z, 0-9, '-'); random when empty")
		syncInterval  = fs.Duration("sync-interval", 0, "how often the embedded JetStream flushes its files to disk (0: 2m)")
		maxConns      = fs.Int("max-conns", 0, "connections the listener accepts (0: the open-file limit minus a reserve for the engine)")
		maxConnsPerIP = fs.Int("max-conns-per-ip", 0, "connections from one IP address (0: 1000, none with --dev; -1: none)")
		app           = fs.String("app", "", "define one app with this name")
		apiKey        = fs.String("api-key", "", "API key of --app")
		secret        = fs.String("token-secret", "", "HS256 client-token secret of --app")
		adminKey      = fs.String("admin-key", "", "an admin API key")
		authWait      = fs.Duration("auth-timeout", def.Limits.AuthTimeout, "wait for a first-frame token")
		heartbeat     = fs.Duration("heartbeat", def.Limits.Heartbeat, "client ping interval advertised in welcome")
		hbTimeout     = fs.Duration("heartbeat-timeout", def.Limits.HeartbeatLimit, "silence after which a client is closed")
		maxFrame      = fs.Int("max-frame", def.Limits.MaxFrame, "largest client frame, bytes")
		maxPayload    = fs.Int("max-payload", def.Limits.MaxPayload, "largest push data, bytes")
		queueBytes    = fs.Int("queue-bytes", def.Limits.QueueBytes, "per-connection write queue limit, bytes")
		userConns     = fs.Int("max-conns-per-user", def.Limits.MaxConnsPerUser, "connections one user of an app may hold on this node; one more is closed with 4009")
		logLevel      = fs.String("log-level", def.LogLevel, "debug, info, warn or error")
		logFormat     = fs.String("log-format", def.LogFormat, "text or json")
		grace         = fs.Duration("grace", 10*time.Second, "graceful shutdown limit")
		drainTime     = fs.Duration("drain-time", def.DrainTime, "a drain (herald drain) spreads closing the clients over this time")
		pprof         = fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ (admin key required outside --dev)")
		gcPercent     = fs.Int("gc-percent", def.GCPercent, "garbage collector target, as GOGC (the GOGC variable wins)")
		origins       listFlag
		presenceRooms listFlag
		webhookURL    = fs.String("webhook-url", "", "a webhook endpoint of --app (of app \"demo\" with --dev) receiving lifecycle events")
		webhookSecret = fs.String("webhook-secret", "", "Standard Webhooks secret (\"whsec_\" + base64) of --webhook-url")
		pusherAppID   = fs.String("pusher-app-id", "", "Pusher app id of --app (of app \"demo\" with --dev): the server SDKs' appId")
		pusherKey     = fs.String("pusher-key", "", "Pusher key of --app (of app \"demo\" with --dev): pusher-js connects to /app/<key>")
		pusherSecret  = fs.String("pusher-secret", "", "Pusher secret of --app (of app \"demo\" with --dev): signs channel auth and API calls")
		pusherClient  = fs.Bool("pusher-client-events", false, "allow Pusher client- events on private and presence channels")
		pusherHook    = fs.String("pusher-webhook-url", "", "Pusher-format webhook endpoint of --app (of app \"demo\" with --dev): channel and member events")
		pusherHookCE  = fs.Bool("pusher-client-event-webhooks", false, "with --pusher-webhook-url: also send client_event webhooks (each client event is stored in the outbox)")
		allowPrivate  = fs.Bool("allow-private-webhooks", false, "accept http:// and private or loopback webhook URLs (always with --dev)")
	)
	fs.Var(&presenceRooms, "presence-rooms", "presence rooms: names or prefix* patterns, comma-separated")
	fs.Var(&clusterPeers, "cluster-peers", "nats://host:port of the other nodes' cluster listeners, comma-separated")
	fs.Var(&origins, "allowed-origins", "WebSocket Origin values accepted, comma-separated (empty: any)")
	set, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg := def
	if *file != "" {
		if cfg, err = config.Load(*file); err != nil {
			return err
		}
	}
	over := func(name string, apply func()) {
		if set[name] {
			apply()
		}
	}
	over("dev", func() { cfg.Dev = *dev })
	over("addr", func() { cfg.Addr = *addr })
	over("admin-addr", func() { cfg.AdminAddr = *adminAddr })
	over("data", func() { cfg.Data = *data })
	over("nats-url", func() { cfg.NATSURL = *natsURL })
	over("advertise", func() { cfg.Advertise = *advertise })
	over("tls-cert", func() { cfg.TLSCert = *tlsCert })
	over("tls-key", func() { cfg.TLSKey = *tlsKey })
	over("cluster-name", func() { cfg.ClusterName = *clusterName })
	over("cluster-listen", func() { cfg.ClusterListen = *clusterListen })
	over("cluster-peers", func() { cfg.ClusterPeers = clusterPeers })
	over("replicas", func() { cfg.Replicas = *replicas })
	over("node-id", func() { cfg.NodeID = *nodeID })
	over("sync-interval", func() { cfg.SyncInterval = *syncInterval })
	over("max-conns", func() { cfg.Limits.MaxConns = *maxConns })
	over("max-conns-per-ip", func() { cfg.Limits.MaxConnsPerIP = *maxConnsPerIP })
	over("admin-key", func() { cfg.AdminKeys = append(cfg.AdminKeys, *adminKey) })
	over("auth-timeout", func() { cfg.Limits.AuthTimeout = *authWait })
	over("heartbeat", func() { cfg.Limits.Heartbeat = *heartbeat })
	over("heartbeat-timeout", func() { cfg.Limits.HeartbeatLimit = *hbTimeout })
	over("max-frame", func() { cfg.Limits.MaxFrame = *maxFrame })
	over("max-payload", func() { cfg.Limits.MaxPayload = *maxPayload })
	over("queue-bytes", func() { cfg.Limits.QueueBytes = *queueBytes })
	over("max-conns-per-user", func() { cfg.Limits.MaxConnsPerUser = *userConns })
	over("log-level", func() { cfg.LogLevel = *logLevel })
	over("log-format", func() { cfg.LogFormat = *logFormat })
	over("allowed-origins", func() { cfg.AllowedOrigins = origins })
	over("pprof", func() { cfg.Pprof = *pprof })
	over("gc-percent", func() { cfg.GCPercent = *gcPercent })
	over("drain-time", func() { cfg.DrainTime = *drainTime })
	over("presence-rooms", func() { cfg.PresenceRooms = presenceRooms })
	over("allow-private-webhooks", func() { cfg.AllowPrivateWebhooks = *allowPrivate })
	if set["app"] || set["api-key"] || set["token-secret"] {
		if err := oneApp(set, *app, *apiKey, *secret); err != nil {
			return err
		}
		cfg.Apps = append(cfg.Apps, config.App{Name: *app, APIKeys: []string{*apiKey}, TokenSecret: *secret})
	}
	if set["webhook-url"] || set["webhook-secret"] {
		if *webhookURL == "" || *webhookSecret == "" {
			return errors.New("--webhook-url and --webhook-secret go together")
		}
		hook := config.Webhook{URL: *webhookURL, Secret: *webhookSecret}
		if set["app"] {
			last := &cfg.Apps[len(cfg.Apps)-1]
			last.Webhooks = append(last.Webhooks, hook)
		} else {
			cfg.DevWebhooks = append(cfg.DevWebhooks, hook)
		}
	}
	if set["pusher-app-id"] || set["pusher-key"] || set["pusher-secret"] || set["pusher-client-events"] || set["pusher-webhook-url"] ||
		set["pusher-client-event-webhooks"] {
		p := &config.Pusher{AppID: *pusherAppID, Key: *pusherKey, Secret: *pusherSecret, ClientEvents: *pusherClient, WebhookURL: *pusherHook,
			ClientEventWebhooks: *pusherHookCE}
		if set["app"] {
			cfg.Apps[len(cfg.Apps)-1].Pusher = p
		} else {
			cfg.DevPusher = p
		}
	}
	if cfg.Dev {
		if !set["addr"] && cfg.Addr == def.Addr {
			cfg.Addr = "127.0.0.1:8080"
		}
		if err := loopbackOnly(cfg.Addr); err != nil {
			return err
		}
		if cfg.AdminAddr != "" {
			if err := loopbackOnly(cfg.AdminAddr); err != nil {
				return fmt.Errorf("--admin-addr: %w", err)
			}
		}
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if cfg.Dev {
		log.Warn("DEV MODE: anyone on this machine can connect as any user of app \"demo\" and call the API without a key. Never use --dev in production.")
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(cfg.GCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx, *grace)
}

// oneApp checks that --app, --api-key and --token-secret (or their
// HERALD_ variables) are all given and none is empty, and says which is
// not.
func oneApp(set map[string]bool, app, apiKey, secret string) error {
	var wrong []string
	for _, f := range []struct{ name, value string }{{"app", app}, {"api-key", apiKey}, {"token-secret", secret}} {
		env := "HERALD_" + strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
		switch {
		case !set[f.name]:
			wrong = append(wrong, "--"+f.name+" is missing")
		case f.value == "":
			wrong = append(wrong, "--"+f.name+" (or "+env+") is empty")
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("--app, --api-key and --token-secret go together: %s", strings.Join(wrong, "; "))
	}
	return nil
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--dev listens on loopback only; %q is not a loopback address", addr)
	}
	return nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}
