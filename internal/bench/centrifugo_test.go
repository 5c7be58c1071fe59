package bench

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// centrifugoInstall is how scripts/test.sh installs the Centrifugo the
// tests drive.
const centrifugoInstall = "GOBIN=$HOME/.cache/herald-tools/bin go install github.com/centrifugal/centrifugo/v6@v6.9.1 " +
	"and set HERALD_CENTRIFUGO=$HOME/.cache/herald-tools/bin/centrifugo (scripts/test.sh does both)"

// TestCentrifugoDriver runs the bench's idle, broadcast, latency and
// unicast scenarios with --protocol centrifugo against a real Centrifugo
// v6.9.1 started with the committed bench/centrifugo.json: every client
// connects with its own user's token and every publication reaches each
// client it was published to once. A wrong API key or token secret fails
// the run with the server's answer, a connection the server closes is
// counted with the server's code and reason, clients answer the server's
// pings in time, and a server in insecure client mode takes clients
// without tokens.
func TestCentrifugoDriver(t *testing.T) {
	bin := os.Getenv("HERALD_CENTRIFUGO")
	if bin == "" {
		t.Fatal("HERALD_CENTRIFUGO is not set: install Centrifugo with " + centrifugoInstall)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("HERALD_CENTRIFUGO: %v: install Centrifugo with %s", err, centrifugoInstall)
	}
	exe := buildHerald(t)
	var cfg struct {
		HTTPAPI struct{ Key string } `json:"http_api"`
		Client  struct {
			Token struct {
				Secret string `json:"hmac_secret_key"`
			}
		}
	}
	raw, err := os.ReadFile("../../bench/centrifugo.json")
	if err != nil || json.Unmarshal(raw, &cfg) != nil || cfg.HTTPAPI.Key == "" || cfg.Client.Token.Secret == "" {
		t.Fatalf("bench/centrifugo.json: %v, key %q, token secret %q", err, cfg.HTTPAPI.Key, cfg.Client.Token.Secret)
	}
	url, pid := startCentrifugo(t, bin, cfg.HTTPAPI.Key, nil)
	const conns = 200
	opts := func(scenario string) Options {
		return Options{Scenario: scenario, URL: url, Protocol: "centrifugo", CentrifugoKey: cfg.HTTPAPI.Key,
			TokenSecret: cfg.Client.Token.Secret, ServerPID: pid, Exe: exe, Conns: conns, Workers: 2, Size: 100}
	}
	run := func(t *testing.T, o Options) Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := Run(ctx, o)
		if err != nil || len(res) != 1 {
			t.Fatalf("%s: %v (%d results)", o.Scenario, err, len(res))
		}
		return res[0]
	}
	exact := func(t *testing.T, r Result, want uint64) {
		t.Helper()
		if r.Expected != want || r.Deliveries != want || r.Lost != 0 || r.Dups != 0 {
			t.Fatalf("%s: %+v; want %d deliveries, none lost or duplicated", r.Scenario, r, want)
		}
	}

	t.Run("idle", func(t *testing.T) {
		o := opts("idle")
		o.Duration = 500 * time.Millisecond
		if r := run(t, o); r.Conns != conns || r.Lost != 0 || r.ConnectPerSec <= 0 || r.ServerRSSMiB <= 0 {
			t.Fatalf("idle: %+v; want %d connections, none closed, the server's RSS", r, conns)
		}
	})
	t.Run("broadcast", func(t *testing.T) {
		o := opts("broadcast")
		o.Pushes = 20
		exact(t, run(t, o), 20*conns)
	})
	t.Run("latency", func(t *testing.T) {
		o := opts("latency")
		o.Rate, o.Duration = 20, time.Second
		r := run(t, o)
		exact(t, r, 20*conns)
		if r.P50ms <= 0 || r.P99ms < r.P50ms || r.CPUPerMillion <= 0 {
			t.Fatalf("latency: %+v: quantiles or server CPU missing", r)
		}
	})
	t.Run("unicast", func(t *testing.T) {
		o := opts("unicast")
		o.Concurrency, o.Duration = 4, time.Second
		r := run(t, o)
		if r.Pushes <= 0 || r.CPUPerPushUS <= 0 {
			t.Fatalf("unicast: %+v: no pushes or no server CPU", r)
		}
		exact(t, r, uint64(r.Pushes)) // every user is online: one delivery per push
	})
	t.Run("refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		o := opts("broadcast")
		o.Conns, o.Workers, o.Pushes, o.CentrifugoKey = 3, 1, 1, "not-the-key"
		if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("a wrong API key: %v; want the server's 401", err)
		}
		o = opts("broadcast")
		o.Conns, o.Workers, o.Pushes, o.TokenSecret = 3, 1, 1, "not-the-token-secret"
		if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "3500 invalid token") {
			t.Errorf("a wrong token secret: %v; want the server's close 3500 invalid token", err)
		}
	})
	t.Run("server close", func(t *testing.T) {
		o := opts("idle")
		o.Conns, o.Workers = 2, 1
		c, err := newCoordinator(withDefaults(o))
		if err != nil {
			t.Fatal(err)
		}
		defer c.stop()
		if err := c.start(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.connect(); err != nil {
			t.Fatal(err)
		}
		body := `{"user":` + quote(c.prefix+"0") + `,"disconnect":{"code":4000,"reason":"bench test"}}`
		if status, err := centrifugoCall(url, cfg.HTTPAPI.Key, "disconnect", body); status != http.StatusOK {
			t.Fatalf("disconnect: %d %v", status, err)
		}
		for end := time.Now().Add(30 * time.Second); ; {
			r, err := c.all("report")
			if err != nil {
				t.Fatal(err)
			}
			if r.Closed == 1 {
				if r.Why != "4000 bench test" {
					t.Fatalf("the worker says the server closed with %q; want 4000 bench test", r.Why)
				}
				break
			}
			if time.Now().After(end) {
				t.Fatalf("report %+v: the disconnected client was not counted as closed", r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("pings", func(t *testing.T) {
		// Centrifugo pings every 25 s and closes a client whose answer
		// is late: here every 3 s, answers due within 2.5 s.
		url, pid := startCentrifugo(t, bin, cfg.HTTPAPI.Key, []string{"CENTRIFUGO_CLIENT_PING_INTERVAL=3s", "CENTRIFUGO_CLIENT_PONG_TIMEOUT=2500ms"})
		o := opts("idle")
		o.URL, o.ServerPID, o.Conns, o.Duration = url, pid, 20, 7*time.Second
		if r := run(t, o); r.Conns != 20 || r.Lost != 0 {
			t.Fatalf("idle through 2 pings: %+v; want 20 connections, none closed", r)
		}
	})
	t.Run("insecure client mode", func(t *testing.T) {
		url, pid := startCentrifugo(t, bin, cfg.HTTPAPI.Key, nil, "--client.insecure")
		o := opts("broadcast")
		o.URL, o.ServerPID, o.TokenSecret, o.Conns, o.Pushes = url, pid, "", 50, 5
		exact(t, run(t, o), 5*50)
	})
}

// TestCentrifugoOptions: what a Centrifugo server cannot run is refused
// before anything starts.
func TestCentrifugoOptions(t *testing.T) {
	ok := Options{Scenario: "broadcast", Protocol: "centrifugo", CentrifugoKey: "k", ServerPID: 1}
	if err := checkProtocol(ok); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"scenario":  {func(o *Options) { o.Scenario = "churn" }, "idle, broadcast, latency and unicast, not churn"},
		"transport": {func(o *Options) { o.Transport = "sse" }, "not SSE"},
		"no key":    {func(o *Options) { o.CentrifugoKey = "" }, "--centrifugo-api-key"},
		"no pid":    {func(o *Options) { o.ServerPID = 0 }, "--server-pid"},
		"batch":     {func(o *Options) { o.Scenario, o.Batch = "unicast", 10 }, "no --batch"},
		"offline":   {func(o *Options) { o.Scenario, o.Offline = "unicast", true }, "--offline"},
	} {
		o := ok
		tc.edit(&o)
		if err := checkProtocol(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %q", name, err, tc.want)
		}
	}
}

// buildHerald builds the herald binary the bench's workers run from.
func buildHerald(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "herald")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", exe, "github.com/heraldpush/herald/cmd/herald").CombinedOutput(); err != nil {
		t.Fatalf("go build herald: %v\n%s", err, out)
	}
	return exe
}

// startCentrifugo runs bin with bench/centrifugo.json (and env, extra
// flags) on a free loopback port until the test ends, and returns its base
// URL and process id once its API answers with key.
func startCentrifugo(t *testing.T, bin, key string, env []string, extra ...string) (string, int) {
	t.Helper()
	// A port below Linux's ephemeral range (32768 and up), which the
	// tests running beside this one draw from for their ":0" listeners
	// and outgoing connections: one picked there could be taken again
	// before Centrifugo binds it.
	port := ""
	for range 1000 {
		p := strconv.Itoa(20000 + rand.IntN(12000))
		if l, err := net.Listen("tcp", "127.0.0.1:"+p); err == nil {
			l.Close()
			port = p
			break
		}
	}
	if port == "" {
		t.Fatal("no free port below 32768")
	}
	cfg, err := filepath.Abs("../../bench/centrifugo.json")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--config", cfg, "--http_server.address", "127.0.0.1", "--http_server.port", port}, extra...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	logPath := filepath.Join(cmd.Dir, "centrifugo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	url := "http://127.0.0.1:" + port
	for end := time.Now().Add(30 * time.Second); ; {
		if status, _ := centrifugoCall(url, key, "info", `{}`); status == http.StatusOK {
			return url, cmd.Process.Pid
		}
		select {
		case <-exited:
			t.Fatalf("centrifugo exited: %s", log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(end) {
			t.Fatalf("centrifugo's API did not answer within 30s: %s", log())
		}
	}
}

// centrifugoCall calls method of the Centrifugo API at url and returns the
// status.
func centrifugoCall(url, key, method, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/"+method, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
