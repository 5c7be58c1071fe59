package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/auth"
)

func pushCmd(args []string) error {
	fs := newFlags("push", "Push a message through a node's HTTP API and print the answer.\nOnly --url and --key also read HERALD_URL and HERALD_KEY.")
	var (
		url     = fs.String("url", "http://127.0.0.1:8080", "node base URL")
		key     = fs.String("key", "", "API key (none needed with --dev)")
		app     = fs.String("app", "", "app to push to (admin keys only)")
		data    = fs.String("data", "", "JSON payload; '-' or empty reads standard input")
		ttl     = fs.Int64("ttl", 0, "time to live in seconds (0: the app default)")
		offline = fs.Bool("offline", false, "store for users who are not connected")
		id      = fs.String("id", "", "message id and idempotency key")
		whole   = fs.Bool("app-wide", false, "push to every connection of the app")
		all     = fs.Bool("all", false, "push to every connection of every app (admin)")
		users   listFlag
		rooms   listFlag
		conns   listFlag
	)
	fs.Var(&users, "user", "target user (repeat or comma-separate)")
	fs.Var(&rooms, "room", "target room (repeat or comma-separate)")
	fs.Var(&conns, "conn", "target connection id (repeat or comma-separate)")
	if _, err := parse(fs, args, "url", "key"); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	payload := []byte(*data)
	if *data == "" || *data == "-" {
		var err error
		if payload, err = io.ReadAll(os.Stdin); err != nil {
			return err
		}
	}
	if !json.Valid(payload) {
		return errors.New("--data is not valid JSON")
	}
	body := map[string]any{
		"to":   map[string]any{"users": users, "rooms": rooms, "conns": conns, "app": *whole, "all": *all},
		"data": json.RawMessage(payload),
	}
	for k, v := range map[string]any{"app": *app, "id": *id} {
		if v != "" {
			body[k] = v
		}
	}
	if *ttl != 0 {
		body["ttl"] = *ttl
	}
	if *offline {
		body["offline"] = true
	}
	status, out, err := post(*url, "/v1/push", *key, body)
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	if status != 200 {
		return fmt.Errorf("push refused: %d %s", status, http.StatusText(status))
	}
	return nil
}

// post sends body as JSON to a node's API path and returns the answer.
func post(base, path, key string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", strings.TrimRight(base, "/")+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func tokenCmd(args []string) error {
	fs := newFlags("token", "Mint an HS256 client token for an app and user, and print it.\nOnly --token-secret also reads HERALD_TOKEN_SECRET.")
	var (
		app    = fs.String("app", "", "app name (required)")
		user   = fs.String("user", "", "user id (required)")
		secret = fs.String("token-secret", "", "the app's token secret (required)")
		device = fs.String("device", "", "device label")
		ttl    = fs.Duration("ttl", time.Hour, "token lifetime")
		send   = fs.Bool("send", false, "allow the client to send messages")
		rooms  listFlag
	)
	fs.Var(&rooms, "rooms", "rooms the client may join itself: names, prefix* patterns, or * (repeat or comma-separate)")
	if _, err := parse(fs, args, "token-secret"); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *app == "" || *user == "" || *secret == "" {
		return errors.New("--app, --user and --token-secret are required")
	}
	tok, err := auth.Mint(*app, []byte(*secret), auth.Claims{App: *app, User: *user, Device: *device,
		Rooms: rooms, Send: *send, Expires: time.Now().Add(*ttl)})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
