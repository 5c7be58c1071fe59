package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// Options configure one benchmark run.
type Options struct {
	Scenario string // idle, broadcast, latency, unicast, churn, resume, webhooks
	URL      string // http://host:port of the server (the API; clients too unless Connect)
	// Connect lists the http://host:port of the nodes clients connect to,
	// worker w to Connect[w % len(Connect)] (empty: URL).
	Connect     []string
	Conns       int
	Workers     int
	Sources     int // distinct 127.0.0.x source addresses
	ServerPID   int // read RSS and CPU from /proc/<pid> (0: from /metrics)
	Size        int // payload bytes
	Pushes      int // pushes per run (broadcast)
	Rate        int // pushes per second (latency, broadcast at a fixed rate)
	Duration    time.Duration
	Concurrency int // HTTP publishers (unicast)
	Batch       int // items per batch request (unicast; 0: single pushes)
	// Stream makes each unicast publisher one gRPC PushStream with up to
	// Window pushes awaiting their answers.
	Stream      bool
	Window      int
	Offline     bool // unicast: store every push in the user's inbox
	Away        int  // unicast: users without a connection pushed to as well (with Offline: stored only)
	Runs        int  // repetitions; results are reported per run and as the median
	Rounds      int  // churn rounds
	Key         string
	App         string // with TokenSecret: mint client tokens (non-dev servers)
	TokenSecret string
	Exe         string // the herald binary to run workers from
	// Transport is how clients connect: "ws" (default) or "sse" (idle,
	// broadcast and latency only).
	Transport string
	// Protocol is what WebSocket clients speak: "herald" (default) or
	// "pusher" (Pusher Channels protocol 7 on /app/<PusherKey>, subscribed
	// to the room's channel; idle, broadcast and latency only).
	// "centrifugo" (Centrifugo v6's JSON protocol on /connection/websocket,
	// pushes through its HTTP API with CentrifugoKey; idle, broadcast,
	// latency and unicast).
	Protocol      string
	PusherKey     string
	CentrifugoKey string
	// Receiver is the host:port the webhooks scenario's endpoint listens
	// on (the server's --webhook-url points at it).
	Receiver string
	Progress io.Writer

	// Workload and knee (workload.go).
	RoomSize   int           // workload: members per room
	Joins      int           // workload: rooms each client joins
	PublishAll bool          // workload: publish through every Connect node in turn (default: URL)
	ServerPIDs []int         // the processes of a cluster's nodes: their CPU and RSS summed
	Limit      time.Duration // knee: the delivery p99 that ends the search
	Step       float64       // knee: the publish rate's factor from one step to the next
}

// Result is one run's measurements; zero fields do not apply.
type Result struct {
	Scenario       string  `json:"scenario"`
	Conns          int     `json:"conns"`
	ConnectPerSec  float64 `json:"connect_per_sec,omitempty"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib,omitempty"`
	ServerRSSMiB   float64 `json:"server_rss_mib,omitempty"`
	Pushes         int     `json:"pushes,omitempty"`
	PushesPerSec   float64 `json:"pushes_per_sec,omitempty"`
	Deliveries     uint64  `json:"deliveries,omitempty"`
	Expected       uint64  `json:"expected,omitempty"`
	Lost           int64   `json:"lost"`
	Dups           uint64  `json:"dups"`
	DeliveriesPerS float64 `json:"deliveries_per_sec,omitempty"`
	CPUPerMillion  float64 `json:"server_cpu_s_per_million,omitempty"`
	ClientCPUPerM  float64 `json:"client_cpu_s_per_million,omitempty"` // latency: the workers' CPU per million deliveries
	CPUPerPushUS   float64 `json:"server_cpu_us_per_push,omitempty"`   // unicast: server CPU over the push phase, per push
	P50ms          float64 `json:"p50_ms,omitempty"`
	P99ms          float64 `json:"p99_ms,omitempty"`
	P999ms         float64 `json:"p999_ms,omitempty"`
	Maxms          float64 `json:"max_ms,omitempty"`
	APIP50ms       float64 `json:"api_p50_ms,omitempty"`
	APIP99ms       float64 `json:"api_p99_ms,omitempty"`
	DisconnectS    float64 `json:"mass_disconnect_s,omitempty"`
	ResumeMS       float64 `json:"resume_ms,omitempty"`
	DrainS         float64 `json:"drain_s,omitempty"` // webhooks: receiver accepting → last event
	Seconds        float64 `json:"seconds"`

	Nodes     int     `json:"nodes,omitempty"`
	Joins     int     `json:"joins,omitempty"` // room memberships
	Rooms     int     `json:"rooms,omitempty"`
	P95ms     float64 `json:"p95_ms,omitempty"`
	ServerCPU float64 `json:"server_cpu_cores,omitempty"` // server CPU seconds per second while publishing
	Steps     []Step  `json:"steps,omitempty"`            // knee: every rate tried
	Knee      *Step   `json:"knee,omitempty"`             // knee: the last step within the limit
	Over      *Step   `json:"over,omitempty"`             // knee: the first step past it
}

// Run runs the scenario opts.Runs times.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	opts = withDefaults(opts)
	fn := map[string]func(*coordinator, context.Context) (Result, error){
		"idle": (*coordinator).idle, "broadcast": (*coordinator).broadcast, "latency": (*coordinator).latency,
		"unicast": (*coordinator).unicast, "churn": (*coordinator).churn, "resume": (*coordinator).resume,
		"webhooks": (*coordinator).webhooks, "workload": (*coordinator).workload, "knee": (*coordinator).knee,
	}[opts.Scenario]
	if fn == nil {
		return nil, fmt.Errorf("bench: unknown scenario %q (idle, broadcast, latency, unicast, churn, resume, webhooks, workload, knee)", opts.Scenario)
	}
	switch opts.Transport {
	case "", "ws":
	case "sse":
		if opts.Scenario != "idle" && opts.Scenario != "broadcast" && opts.Scenario != "latency" {
			return nil, fmt.Errorf("bench: --transport sse runs idle, broadcast and latency, not %s", opts.Scenario)
		}
	default:
		return nil, fmt.Errorf("bench: unknown transport %q (ws, sse)", opts.Transport)
	}
	if err := checkProtocol(opts); err != nil {
		return nil, err
	}
	var out []Result
	for run := 1; run <= opts.Runs; run++ {
		c, err := newCoordinator(opts)
		if err != nil {
			return out, err
		}
		fmt.Fprintf(opts.Progress, "run %d/%d: %s with %d connections over %d workers\n", run, opts.Runs, opts.Scenario, opts.Conns, opts.Workers)
		res, err := c.runOnce(ctx, fn)
		if err != nil {
			return out, err
		}
		res.Scenario, res.Conns = opts.Scenario, opts.Conns
		out = append(out, res)
	}
	return out, nil
}

// withDefaults fills the options left zero.
func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = max(1, len(opts.Connect), (opts.Conns+9999)/10000) // every node gets clients
	}
	if opts.Sources <= 0 {
		opts.Sources = opts.Workers
	}
	if opts.Runs <= 0 {
		opts.Runs = 1
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	return opts
}

// newCoordinator prepares one run. A fresh 127.x.y.0/24 each run, so that
// ports left in TIME_WAIT by an earlier run never collide with this one's.
func newCoordinator(opts Options) (*coordinator, error) {
	subnet := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), rand.IntN(256))
	local := &net.TCPAddr{IP: net.ParseIP(subnet + "1")}
	c := &coordinator{opts: opts, subnet: subnet, prefix: fmt.Sprintf("r%d-", rand.IntN(1e9)), http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: max(16, opts.Concurrency*2),
		DialContext:         (&net.Dialer{LocalAddr: local}).DialContext,
	}}}
	// No retries and no client-made ids: a failed push fails the run, and
	// the server keeps no idempotency memory for the bench's pushes.
	api, err := herald.NewClient(opts.URL, opts.Key, herald.WithHTTPClient(c.http), herald.WithMaxAttempts(1), herald.WithAutoID(false))
	if err != nil {
		return nil, err
	}
	c.api = api
	return c, nil
}

type coordinator struct {
	opts    Options
	subnet  string         // "127.x.y.": this run's source addresses
	prefix  string         // this run's user name prefix
	http    *http.Client   // dials from this run's subnet: /metrics, and api's requests
	api     *herald.Client // the server API
	workers []*workerProc
	index   atomic.Int64 // message index, increasing over the whole run
	live    atomic.Int64 // unicast pushes to connected users
	toldWhy bool         // the progress output has said why the server closed connections
}

type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *coordinator) runOnce(ctx context.Context, fn func(*coordinator, context.Context) (Result, error)) (Result, error) {
	if err := c.start(); err != nil {
		c.stop()
		return Result{}, err
	}
	defer c.stop()
	return fn(c, ctx)
}

// start launches the workers; clients are spread evenly.
func (c *coordinator) start() error {
	nodes := c.opts.Connect
	if len(nodes) == 0 {
		nodes = []string{c.opts.URL}
	}
	per := (c.opts.Conns + c.opts.Workers - 1) / c.opts.Workers
	users := 0
	room := ""
	switch c.opts.Scenario {
	case "idle", "broadcast", "latency", "knee":
		room = "bench"
	case "workload":
		room = "w"
	}
	for w := 0; w < c.opts.Workers; w++ {
		first := w * per
		count := min(per, c.opts.Conns-first)
		if count <= 0 {
			break
		}
		wsURL := "ws" + strings.TrimPrefix(nodes[w%len(nodes)], "http") + "/v1/ws"
		if c.opts.Transport == "sse" {
			wsURL = nodes[w%len(nodes)] + "/v1/sse"
		}
		switch c.opts.Protocol {
		case "pusher":
			wsURL = "ws" + strings.TrimPrefix(nodes[w%len(nodes)], "http") + "/app/" + url.PathEscape(c.opts.PusherKey) + "?protocol=7"
		case "centrifugo":
			wsURL = "ws" + strings.TrimPrefix(nodes[w%len(nodes)], "http") + "/connection/websocket"
		}
		args := []string{"bench", "worker", "--url", wsURL, "--transport", c.opts.Transport, "--protocol", c.opts.Protocol, "--source", c.subnet + strconv.Itoa(2+w%c.opts.Sources),
			"--first", strconv.Itoa(first), "--count", strconv.Itoa(count), "--users", strconv.Itoa(users), "--room", room,
			"--app", c.opts.App, "--prefix", c.prefix}
		args = append(args, c.workloadArgs()...)
		cmd := exec.Command(c.opts.Exe, args...)
		cmd.Env = append(os.Environ(), "HERALD_TOKEN_SECRET="+c.opts.TokenSecret)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("bench: starting worker: %w", err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		c.workers = append(c.workers, &workerProc{cmd: cmd, in: in, out: sc})
	}
	return nil
}

func (c *coordinator) stop() {
	for _, w := range c.workers {
		w.in.Close()
	}
	for _, w := range c.workers {
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = w.cmd.Process.Kill()
			<-done
		}
	}
	c.workers = nil
}

// all sends cmd to every worker and merges the answers.
func (c *coordinator) all(cmd string) (report, error) {
	for _, w := range c.workers {
		if _, err := io.WriteString(w.in, cmd+"\n"); err != nil {
			return report{}, fmt.Errorf("bench: worker: %w", err)
		}
	}
	sum := report{Hist: newHist()}
	var errs []error
	for _, w := range c.workers {
		if !w.out.Scan() {
			return sum, fmt.Errorf("bench: worker ended: %v", w.out.Err())
		}
		var r report
		if err := json.Unmarshal(w.out.Bytes(), &r); err != nil {
			return sum, fmt.Errorf("bench: worker answer: %w", err)
		}
		if r.Err != "" {
			errs = append(errs, errors.New(r.Err))
		}
		sum.Conns += r.Conns
		sum.Failed += r.Failed
		sum.Closed += r.Closed
		if sum.Why == "" {
			sum.Why = r.Why
		}
		sum.Received += r.Received
		sum.Dups += r.Dups
		sum.LastNS = max(sum.LastNS, r.LastNS)
		sum.ConnectS = max(sum.ConnectS, r.ConnectS)
		sum.Hist.Merge(r.Hist)
	}
	if sum.Why != "" && !c.toldWhy {
		c.toldWhy = true
		fmt.Fprintf(c.opts.Progress, "  the server closed connections (%d so far; the first: %s)\n", sum.Closed, sum.Why)
	}
	return sum, errors.Join(errs...)
}

// connect opens every client and returns the connect rate.
func (c *coordinator) connect() (float64, error) {
	start := time.Now()
	r, err := c.all("connect")
	if err != nil {
		return 0, err
	}
	rate := float64(r.Conns) / time.Since(start).Seconds()
	fmt.Fprintf(c.opts.Progress, "  %d connected (%.0f/s)\n", r.Conns, rate)
	return rate, nil
}

// waitDelivered polls the workers until want messages arrived or nothing
// new arrived for quiet.
func (c *coordinator) waitDelivered(want uint64, quiet time.Duration) (report, error) {
	var last uint64
	lastChange := time.Now()
	for {
		r, err := c.all("report")
		if err != nil {
			return r, err
		}
		if r.Received >= want {
			return r, nil
		}
		if r.Received != last {
			last, lastChange = r.Received, time.Now()
		} else if time.Since(lastChange) > quiet {
			return r, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payload builds one bench message's data: its index, send time and
// padding up to the configured size.
func (c *coordinator) payload(i int64) []byte {
	b := make([]byte, 0, c.opts.Size+48)
	b = append(b, `{"i":`...)
	b = strconv.AppendInt(b, i, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, time.Now().UnixNano(), 10)
	b = append(b, `,"p":"`...)
	for len(b) < c.opts.Size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// pushRoom pushes bench message i to the room every client is in.
func (c *coordinator) pushRoom(ctx context.Context, i int64) error {
	if c.opts.Protocol == "centrifugo" {
		return c.centrifugoPublish(ctx, "bench", c.payload(i))
	}
	_, err := c.api.Push(ctx, herald.PushRequest{To: herald.Target{Rooms: []string{"bench"}}, Data: json.RawMessage(c.payload(i))})
	return err
}

// pushUser pushes bench message i to user: a Herald user push, or a
// publication to the user's personal Centrifugo channel.
func (c *coordinator) pushUser(ctx context.Context, user string, i int64) error {
	if c.opts.Protocol == "centrifugo" {
		return c.centrifugoPublish(ctx, centrifugoPersonal(user), c.payload(i))
	}
	_, err := c.api.Push(ctx, c.userPush(user, i))
	return err
}

// userPush is bench message i for user (stored with --offline).
func (c *coordinator) userPush(user string, i int64) herald.PushRequest {
	return herald.PushRequest{To: herald.Target{Users: []string{user}}, Data: json.RawMessage(c.payload(i)), Offline: c.opts.Offline}
}

// pushBatch pushes items in one batch request and fails if any is refused.
func (c *coordinator) pushBatch(ctx context.Context, items []herald.PushRequest) error {
	res, err := c.api.Batch(ctx, items)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("bench: batch item refused: %w", r.Err)
		}
	}
	return nil
}

// serverSample reads the server's RSS (bytes) and CPU time.
func (c *coordinator) serverSample() (rss int64, cpu time.Duration, err error) {
	if c.opts.ServerPID > 0 {
		return procSample(c.opts.ServerPID)
	}
	return metricsSample(c.http, c.opts.URL)
}

// cpuTimes is the CPU time the server and the workers have used so far.
func (c *coordinator) cpuTimes() (server, client time.Duration, err error) {
	if _, server, err = c.serverSample(); err != nil {
		return 0, 0, err
	}
	for _, w := range c.workers {
		_, cpu, err := procSample(w.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		client += cpu
	}
	return server, client, nil
}

// metricsSample reads a node's RSS and CPU time from its /metrics.
func metricsSample(hc *http.Client, base string) (rss int64, cpu time.Duration, err error) {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "process_resident_memory_bytes":
			rss = int64(v)
		case "process_cpu_seconds_total":
			cpu = time.Duration(v * float64(time.Second))
		}
	}
	return rss, cpu, sc.Err()
}

// procSample reads VmRSS and utime+stime of pid.
func procSample(pid int) (int64, time.Duration, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var rss int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the ")" that ends the command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (100 per second).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	if len(f) < 13 {
		return 0, 0, errors.New("bench: short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rss, time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// target names a random user of the unicast scenario: one of the Conns
// connected ones (counted in live) or one of the Away ones that have no
// connection.
func (c *coordinator) target() string {
	i := rand.IntN(c.opts.Conns + c.opts.Away)
	if i >= c.opts.Conns {
		return c.prefix + "away" + strconv.Itoa(i)
	}
	c.live.Add(1)
	return c.prefix + strconv.Itoa(i)
}
