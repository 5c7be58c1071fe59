package main

import (
	"bytes"
	"context"
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
	"github.com/heraldpush/herald/sdk/herald"
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
	client, err := herald.NewClient(*url, *key, herald.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}), herald.WithMaxAttempts(3))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Without --id the client makes one, so that a retried push is taken
	// once.
	msgID, err := client.Push(ctx, herald.PushRequest{
		To:   herald.Target{Users: users, Rooms: rooms, Conns: conns, App: *whole, All: *all},
		Data: json.RawMessage(payload), TTL: time.Duration(*ttl) * time.Second, Offline: *offline, ID: *id, App: *app,
	})
	var refused *herald.Error
	switch {
	case errors.As(err, &refused):
		// Print the server's answer as it came: the error object.
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"error": map[string]string{"code": refused.Code, "message": refused.Message}})
		return fmt.Errorf("push refused: %d %s", refused.Status, http.StatusText(refused.Status))
	case err != nil:
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]string{"id": msgID})
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
