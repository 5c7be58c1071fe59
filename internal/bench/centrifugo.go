package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Centrifugo (v6) driver: clients speak its JSON protocol on
// /connection/websocket, pushes go through its server HTTP API.
//
// A client sends a connect command (with an HS256 token whose "sub" is its
// user when a token secret is given; none for a server in insecure client
// mode), then subscribes: to the room's channel, or, with no room
// (unicast), to its user's personal channel personal:#<user>. "#" makes
// the channel user-limited: only that user may subscribe, so a publication
// to it is one push to one online user, as Herald's user push is. The
// server pings with an empty command ({}) on a line of a text frame and
// wants the same back; replies and publications may share a frame, one
// per line.
var centrifugoWire = wire{
	url: func(w *worker, _ int) (string, error) { return w.cfg.URL, nil },
	connect: func(w *worker, i int) ([]byte, error) {
		if w.cfg.TokenSecret == "" {
			return []byte(`{"id":1,"connect":{}}`), nil
		}
		tok, err := centrifugoToken(w.cfg.TokenSecret, w.user(i))
		return []byte(`{"id":1,"connect":{"token":` + quote(tok) + `}}`), err
	},
	join: func(k int, channel string) []byte {
		return []byte(`{"id":` + strconv.Itoa(1+k) + `,"subscribe":{"channel":` + quote(channel) + `}}`)
	},
	hello:    []byte(`"connect":{`),
	joined:   []byte(`"subscribe":{`),
	refused:  []byte(`"error":{`),
	push:     nil, // any text frame: publications may follow a ping in one frame
	keyIndex: []byte(`"pub":{"data":{"i":`),
	keyTime:  []byte(`,"t":`),
	ping:     []byte(`{}`),
	pong:     []byte(`{}`),
	personal: centrifugoPersonal,
}

// centrifugoPersonal is user's user-limited channel.
func centrifugoPersonal(user string) string { return "personal:#" + user }

// centrifugoToken is a connection token for user, signed with secret.
func centrifugoToken(secret, user string) (string, error) {
	claims := jwt.RegisteredClaims{Subject: user, ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}

// checkCentrifugo validates the options of a run against a Centrifugo server.
func checkCentrifugo(opts Options) error {
	switch {
	case opts.Scenario != "idle" && opts.Scenario != "broadcast" && opts.Scenario != "latency" && opts.Scenario != "unicast":
		return fmt.Errorf("bench: --protocol centrifugo runs idle, broadcast, latency and unicast, not %s", opts.Scenario)
	case opts.Transport == "sse":
		return errors.New("bench: --protocol centrifugo clients speak WebSocket, not SSE")
	case opts.CentrifugoKey == "" && opts.Scenario != "idle":
		return errors.New("bench: --protocol centrifugo needs --centrifugo-api-key (the server's http_api.key) to publish")
	case opts.ServerPID <= 0:
		return errors.New("bench: --protocol centrifugo reads the server's CPU and RSS from /proc: give --server-pid")
	case opts.Batch > 0 || opts.Stream || opts.Offline:
		return errors.New("bench: --protocol centrifugo publishes one message per HTTP call: no --batch, --stream or --offline")
	}
	return nil
}

// centrifugoPublish publishes data to channel through Centrifugo's HTTP
// API. Centrifugo answers a refused call with status 200 and an error in
// the body: both are checked.
func (c *coordinator) centrifugoPublish(ctx context.Context, channel string, data []byte) error {
	body := make([]byte, 0, len(data)+len(channel)+32)
	body = append(body, `{"channel":`...)
	body = append(body, quote(channel)...)
	body = append(body, `,"data":`...)
	body = append(append(body, data...), '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", c.opts.CentrifugoKey)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("bench: centrifugo publish: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("bench: centrifugo publish: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: centrifugo publish to %s: %s: %s", channel, resp.Status, bytes.TrimSpace(answer))
	}
	var r struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(answer, &r); err != nil {
		return fmt.Errorf("bench: centrifugo publish: answer %q: %w", answer, err)
	}
	if r.Error != nil {
		return fmt.Errorf("bench: centrifugo publish to %s refused: %d %s", channel, r.Error.Code, r.Error.Message)
	}
	return nil
}
