package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldpush/herald/internal/bench"
)

const benchSummary = `Load-test a running node. SCENARIO is one of:
  idle       open --conns clients (own user each, one room); connect rate, server RSS per connection
  broadcast  --pushes pushes of --size bytes to one room of --conns clients, back to back (or --rate/s)
  latency    --rate pushes/s to the room for --duration; p50/p99/p999/max sent→received
  unicast    pushes to random single users from --concurrency publishers (--batch N: batch API;
             --stream: gRPC PushStream)
  churn      connect --conns clients and drop them all at once, --rounds times
  resume     store --pushes offline messages for one user, then time connect → resumed
  webhooks   connect and drop --conns clients while a receiver on --receiver answers 503, then 204:
             lifecycle events delivered per second (serve with --webhook-url http://RECEIVER/)
  workload   --conns clients each join --joins of conns×joins/--room-size rooms; --concurrency publishers
             push --rate messages/s to the rooms in turn for --duration: connect/s, messages in,
             deliveries out, p50/p95/p99, server CPU and RSS (a cluster: --connect, --publish-all, --server-pids)
  knee       --conns clients in one room; after a warm-up, the push rate steps up from --rate by --step,
             --duration a step, until the delivery p99 passes --limit twice: the last rate within it

Clients are spread over --workers processes dialing from --sources addresses of a random 127.x.y.0/24.
Give --server-pid to read the server's RSS and CPU from /proc, otherwise /metrics is used.
--protocol pusher makes the clients Pusher Channels clients (idle, broadcast, latency; serve with --pusher-key).
--protocol centrifugo drives a Centrifugo v6 server instead (idle, broadcast, latency, unicast): clients speak its
JSON protocol on /connection/websocket (tokens signed with --token-secret, "sub" the user; none in insecure client
mode), pushes are /api/publish calls with --centrifugo-api-key (docs/benchmarks.md: "Rerun the comparison").
Example: herald bench broadcast --conns 10000 --pushes 200 --server-pid $(pgrep -n herald)`

func benchCmd(args []string) error {
	if len(args) > 0 && args[0] == "worker" {
		return benchWorker(args[1:])
	}
	fs := newFlags("bench SCENARIO", benchSummary)
	var o bench.Options
	fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "server base URL (the API; clients too unless --connect)")
	connect := fs.String("connect", "", "comma-separated base URLs of the nodes clients connect to, spread by worker (default: --url)")
	fs.IntVar(&o.Conns, "conns", 10000, "client connections")
	fs.IntVar(&o.Workers, "workers", 0, "worker processes (0: one per 10,000 connections)")
	fs.IntVar(&o.Sources, "sources", 0, "distinct 127.0.0.x source addresses (0: one per worker)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "server process id, to read RSS and CPU from /proc")
	fs.IntVar(&o.Size, "size", 100, "payload bytes")
	fs.IntVar(&o.Pushes, "pushes", 200, "pushes (broadcast)")
	fs.IntVar(&o.Rate, "rate", 0, "pushes per second (latency; broadcast and unicast: 0 = as fast as they go)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to push (latency, unicast) or settle (idle)")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "concurrent HTTP publishers (unicast)")
	fs.IntVar(&o.Batch, "batch", 0, "pushes per batch request (unicast; 0: single pushes)")
	fs.BoolVar(&o.Stream, "stream", false, "unicast: each publisher is one gRPC PushStream (pipelined, up to --window pushes unanswered)")
	fs.IntVar(&o.Window, "window", 256, "unicast --stream: pushes in flight per stream")
	fs.BoolVar(&o.Offline, "offline", false, "unicast: offline pushes, stored in each user's inbox")
	fs.IntVar(&o.Away, "away", 0, "unicast: also push to this many users who have no connection (with --offline: stored only)")
	fs.IntVar(&o.Runs, "runs", 1, "repetitions (the table adds the median)")
	fs.IntVar(&o.Rounds, "rounds", 3, "connect/disconnect rounds (churn)")
	fs.StringVar(&o.Key, "key", "", "API key (none with a --dev server)")
	fs.StringVar(&o.App, "app", "", "app to mint client tokens for (with --token-secret; none with a --dev server)")
	fs.StringVar(&o.TokenSecret, "token-secret", "", "the app's token secret (--protocol centrifugo: the server's client.token.hmac_secret_key)")
	fs.StringVar(&o.Transport, "transport", "ws", "how clients connect: ws (WebSocket) or sse (Server-Sent Events; idle, broadcast, latency)")
	fs.StringVar(&o.Protocol, "protocol", "herald", "what WebSocket clients speak: herald (v1), pusher (Pusher Channels on /app/KEY; idle, broadcast, latency)\nor centrifugo (a Centrifugo v6 server: JSON protocol, HTTP API; idle, broadcast, latency, unicast)")
	fs.StringVar(&o.PusherKey, "pusher-key", "", "with --protocol pusher: the app's Pusher key (serve with --pusher-key)")
	fs.StringVar(&o.CentrifugoKey, "centrifugo-api-key", "", "with --protocol centrifugo: the server's HTTP API key (http_api.key)")
	fs.StringVar(&o.Receiver, "receiver", "127.0.0.1:9099", "webhooks: host:port of the bench's webhook receiver")
	fs.IntVar(&o.RoomSize, "room-size", 100, "workload: members per room")
	fs.IntVar(&o.Joins, "joins", 1, "workload: rooms each client joins")
	fs.BoolVar(&o.PublishAll, "publish-all", false, "workload: publish through every --connect node in turn (default: --url only)")
	serverPIDs := fs.String("server-pids", "", "comma-separated process ids of a cluster's nodes: their CPU and RSS summed")
	fs.DurationVar(&o.Limit, "limit", 100*time.Millisecond, "knee: the delivery p99 that ends the search")
	fs.Float64Var(&o.Step, "step", 1.5, "knee: factor from one push rate to the next")
	asJSON := fs.Bool("json", false, "print results as JSON")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errors.New("bench: name a scenario")
	}
	o.Scenario = args[0]
	if _, err := parse(fs, args[1:], "url", "key", "token-secret", "centrifugo-api-key"); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *connect != "" {
		o.Connect = strings.Split(*connect, ",")
	}
	for _, p := range strings.FieldsFunc(*serverPIDs, func(r rune) bool { return r == ',' }) {
		pid, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || pid <= 0 {
			return fmt.Errorf("bench: --server-pids: %q is not a process id", p)
		}
		o.ServerPIDs = append(o.ServerPIDs, pid)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Exe = exe
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	results, err := bench.Run(ctx, o)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
	} else {
		bench.WriteTable(os.Stdout, results)
	}
	return err
}

func benchWorker(args []string) error {
	fs := newFlags("bench worker", "A load-generating worker; herald bench starts these itself.")
	var c bench.WorkerConfig
	fs.StringVar(&c.URL, "url", "", "WebSocket URL (SSE: the stream's http URL)")
	fs.StringVar(&c.Source, "source", "127.0.0.2", "local address to dial from")
	fs.IntVar(&c.First, "first", 0, "first client index")
	fs.IntVar(&c.Count, "count", 0, "clients")
	fs.IntVar(&c.Users, "users", 0, "distinct users (0: one per client)")
	fs.StringVar(&c.Room, "room", "", "room to join")
	fs.StringVar(&c.Prefix, "prefix", "u", "user name prefix")
	fs.StringVar(&c.App, "app", "", "app to mint tokens for")
	fs.StringVar(&c.TokenSecret, "token-secret", "", "token secret")
	fs.IntVar(&c.Dial, "dial", 256, "concurrent dials")
	fs.StringVar(&c.Transport, "transport", "ws", "ws or sse (--url is then http://host:port/v1/sse)")
	fs.StringVar(&c.Protocol, "protocol", "herald", "herald, pusher (--url is then ws://host:port/app/KEY?protocol=7) or centrifugo (ws://host:port/connection/websocket)")
	fs.IntVar(&c.Rooms, "rooms", 0, "spread clients over rooms ROOM0 … ROOM<rooms-1> (0: all in --room)")
	fs.IntVar(&c.Joins, "joins", 1, "with --rooms: rooms each client joins")
	if _, err := parse(fs, args, "token-secret"); err != nil {
		return err
	}
	if c.URL == "" || c.Count <= 0 {
		return fmt.Errorf("bench worker: --url and --count are required")
	}
	return bench.RunWorker(c, os.Stdin, os.Stdout)
}
