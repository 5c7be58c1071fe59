package main

import (
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/server"
)

// exampleConfig is the absolute path of config.example.yaml.
func exampleConfig(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigExampleStartsAsItIs: the example's first line,
// `herald serve --config config.example.yaml`, works as written.
func TestConfigExampleStartsAsItIs(t *testing.T) {
	path := exampleConfig(t)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// What serve does with the file: build the node (validation, key
	// files and PEM keys, TLS files), which opens and starts nothing.
	if _, err := server.New(cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("server.New(config.example.yaml): %v", err)
	}
	// And the binary, on a free port and a temporary data directory.
	_, addr := startServer(t, nil, "serve", "--config", path, "--addr", "127.0.0.1:0", "--data", t.TempDir())
	checkHealthz(t, addr)
}

func TestVersionFlags(t *testing.T) {
	want := run(t, nil, "version")
	for _, arg := range []string{"--version", "-version"} {
		if r := run(t, nil, arg); r.code != 0 || r.stdout != want.stdout {
			t.Errorf("herald %s: %v; want %q as herald version prints", arg, r, want.stdout)
		}
	}
}

func TestHelpShowsTwoDashes(t *testing.T) {
	r := run(t, nil, "serve", "--help")
	help := r.stdout + r.stderr
	if !regexp.MustCompile(`(?m)^  --addr string$`).MatchString(help) {
		t.Errorf("herald serve --help does not show --addr:\n%s", help)
	}
	if l := regexp.MustCompile(`(?m)^\s+-[a-z].*$`).FindString(help); l != "" {
		t.Errorf("herald serve --help shows a flag with one dash: %q", l)
	}
}

func TestErrorsSayHeraldOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nobody listens on
	r := run(t, nil, "push", "--url", "http://"+addr, "--user", "alice", "--data", "1")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "herald: push") || strings.Contains(r.stderr, "herald: herald:") {
		t.Errorf("herald push to a closed port: %v; want one \"herald: \" prefix", r)
	}
}

func TestOneAppFlagsSayWhichIsWrong(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want []string
	}{
		{[]string{"--app", "", "--api-key", "", "--token-secret", ""}, nil,
			[]string{"--app (or HERALD_APP) is empty", "--api-key (or HERALD_API_KEY) is empty", "--token-secret (or HERALD_TOKEN_SECRET) is empty"}},
		{[]string{"--app", "shop", "--api-key", "shop-api-key-0123456789", "--token-secret", ""}, nil,
			[]string{"--token-secret (or HERALD_TOKEN_SECRET) is empty"}},
		{[]string{"--app", "shop"}, []string{"HERALD_API_KEY="}, []string{"--api-key (or HERALD_API_KEY) is empty", "--token-secret is missing"}},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
		r := run(t, tc.env, args...)
		if r.code == 0 {
			t.Fatalf("herald %v: exit 0", args)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("herald %v: %v; want it to say %q", args, r, w)
			}
		}
	}
}

// TestWebhookFlagsSayWhichAppIsWrong: a bad webhook stops serve with an
// error naming the app.
func TestWebhookFlagsSayWhichAppIsWrong(t *testing.T) {
	app := []string{"--app", "shop", "--api-key", "shop-api-key-0123456789", "--token-secret", "shop-token-secret-0123"}
	good := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(app, "--webhook-url", "https://backend.example.com/h", "--webhook-secret", "plain"), `app "shop": webhooks[0]: webhook: secret must be "whsec_"`},
		{append(app, "--webhook-url", "http://127.0.0.1:9/h", "--webhook-secret", good), `app "shop": webhooks[0]: webhook: unsafe endpoint URL`},
		{append(app, "--webhook-url", "https://backend.example.com/h"), "--webhook-url and --webhook-secret go together"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
		r := run(t, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("herald %v: %v; want it to say %q", args, r, tc.want)
		}
	}
}

// TestPusherFlags: the --pusher-* flags give the --app (or, with --dev,
// app "demo") a Pusher identity, checked as the config's.
func TestPusherFlags(t *testing.T) {
	app := []string{"--app", "shop", "--api-key", "shop-api-key-0123456789", "--token-secret", "shop-token-secret-0123"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(app, "--pusher-app-id", "1001", "--pusher-key", "k"), `app "shop": pusher needs app_id, key and secret`},
		{[]string{"--pusher-app-id", "1", "--pusher-key", "k", "--pusher-secret", "s"}, "--pusher-* without --app needs --dev"},
		{append(app, "--pusher-app-id", "1", "--pusher-key", "k", "--pusher-secret", "s", "--pusher-webhook-url", "http://10.1.2.3/h"), `app "shop": pusher webhook_url`},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
		r := run(t, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("herald %v: %v; want it to say %q", args, r, tc.want)
		}
	}
}
