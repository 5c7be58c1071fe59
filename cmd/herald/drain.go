package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func drainCmd(args []string) error {
	fs := newFlags("drain", "Drain a node through its API (POST /v1/admin/drain): it stops taking connections, leaves\n"+
		"the node list and route, closes its clients with 4000 (reconnect elsewhere) spread over\n"+
		"the drain time, then exits. Only --url and --key also read HERALD_URL and HERALD_KEY.")
	var (
		url  = fs.String("url", "http://127.0.0.1:8080", "base URL of the node to drain")
		key  = fs.String("key", "", "admin API key (none needed with --dev)")
		over = fs.Duration("drain-time", 0, "spread closing the clients over this time (default: the node's drain_time)")
		wait = fs.Bool("wait", false, "wait until the node has stopped")
	)
	set, err := parse(fs, args, "url", "key")
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	body := map[string]any{}
	if set["drain-time"] {
		body["drain_time"] = over.String()
	}
	status, out, err := post(*url, "/v1/admin/drain", *key, body)
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	if status != http.StatusAccepted {
		return fmt.Errorf("drain refused: %d %s", status, http.StatusText(status))
	}
	if !*wait {
		return nil
	}
	var answer struct {
		DrainTime string `json:"drain_time"`
	}
	_ = json.Unmarshal(out, &answer)
	d, _ := time.ParseDuration(answer.DrainTime) // a node draining already says none
	return waitGone(strings.TrimRight(*url, "/")+"/healthz", d+time.Minute)
}

// waitGone polls a node's health until it no longer answers, for at most
// limit.
func waitGone(healthz string, limit time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		resp, err := client.Get(healthz)
		if err != nil {
			return nil
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the node still answers after %v", limit)
}
