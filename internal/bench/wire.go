package bench

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/protocol"
)

// wire is what a WebSocket client of one protocol sends and looks for:
// Herald's v1 frames, Pusher Channels' or Centrifugo's. The worker finds
// bench messages ({"i":index,"t":sentNanos}) in push frames by keyIndex
// and keyTime without decoding JSON.
type wire struct {
	url               func(w *worker, i int) (string, error) // client i's URL
	join              func(k int, room string) []byte        // the client's k-th join (from 1)
	hello, joined     []byte                                 // in the frames that end the handshake
	push              []byte                                 // prefix of the frames carrying messages
	keyIndex, keyTime []byte

	// Optional, for a protocol whose client speaks first and that pings
	// in text frames (Centrifugo).
	connect    func(w *worker, i int) ([]byte, error) // client i's first frame (nil: the server speaks first)
	refused    []byte                                 // in a handshake frame: the server said no
	ping, pong []byte                                 // a text ping (a frame's line) and its answer
	personal   func(user string) string               // what a client without a room joins (nil: nothing)
}

var heraldWire = wire{
	url: func(w *worker, i int) (string, error) {
		if w.cfg.App == "" {
			return w.cfg.URL + "?user=" + url.QueryEscape(w.user(i)), nil
		}
		tok, err := w.token(i)
		return w.cfg.URL + "?token=" + tok, err
	},
	join:     func(_ int, room string) []byte { return []byte(`{"type":"join","room":` + quote(room) + `}`) },
	hello:    []byte(`"welcome"`),
	joined:   []byte(`"joined"`),
	push:     []byte(`{"type":"push"`),
	keyIndex: []byte(`"data":{"i":`),
	keyTime:  []byte(`,"t":`),
}

// pusherWire is a Pusher Channels client (protocol 7) subscribed to the
// room's public channel; each message is its own event frame, its data a
// JSON string.
var pusherWire = wire{
	url: func(w *worker, _ int) (string, error) { return w.cfg.URL, nil },
	join: func(_ int, room string) []byte {
		return []byte(`{"event":"pusher:subscribe","data":{"channel":` + quote(room) + `}}`)
	},
	hello:    []byte(`"pusher:connection_established"`),
	joined:   []byte(`"pusher_internal:subscription_succeeded"`),
	push:     []byte(`{"event":"message"`),
	keyIndex: []byte(`"data":"{\"i\":`),
	keyTime:  []byte(`,\"t\":`),
}

func quote(s string) string { return string(protocol.AppendString(nil, s)) }

// token mints client i's token for the worker's app.
func (w *worker) token(i int) (string, error) {
	claims := auth.Claims{App: w.cfg.App, User: w.user(i), Expires: time.Now().Add(24 * time.Hour), Rooms: []string{"*"}}
	return auth.Mint(w.cfg.App, []byte(w.cfg.TokenSecret), claims)
}

// checkProtocol validates opts.Protocol against the scenario and transport.
func checkProtocol(opts Options) error {
	switch opts.Protocol {
	case "", "herald":
		return nil
	case "pusher":
	case "centrifugo":
		return checkCentrifugo(opts)
	default:
		return fmt.Errorf("bench: unknown protocol %q (herald, pusher, centrifugo)", opts.Protocol)
	}
	switch {
	case opts.Scenario != "idle" && opts.Scenario != "broadcast" && opts.Scenario != "latency":
		return fmt.Errorf("bench: --protocol pusher runs idle, broadcast and latency, not %s", opts.Scenario)
	case opts.Transport == "sse":
		return errors.New("bench: Pusher clients speak WebSocket, not SSE")
	case opts.PusherKey == "":
		return errors.New("bench: --protocol pusher needs --pusher-key (the app's Pusher key)")
	}
	return nil
}
