package herald_test

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sdk/herald"
)

// A push's Event, over HTTP and gRPC: a Herald connection gets it on the
// message, a Pusher Channels connection as the event's name; without one
// the Pusher event is "message".
func TestPushEvent(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) {
				c.Apps[0].Pusher = &config.Pusher{AppID: "1001", Key: "shop-pusher-key", Secret: "shop-pusher-secret"}
			})
			n.via = tr
			cl := n.client(apiKey)
			c, _ := n.dial("alice")
			next[*herald.Resumed](t, c)
			if err := c.Join("news"); err != nil {
				t.Fatal(err)
			}
			skipTo[*herald.Joined](t, c)
			p := dialPusher(t, n, "news")
			to := herald.Target{Rooms: []string{"news"}}
			if _, err := cl.Push(ctx(t), herald.PushRequest{To: to, Data: map[string]int{"n": 1}, Event: "order.paid"}); err != nil {
				t.Fatal(err)
			}
			if m := next[*herald.Message](t, c); m.Event != "order.paid" || string(m.Data) != `{"n":1}` {
				t.Fatalf("Herald connection got %+v", m)
			}
			if ev := p.next(); ev.Event != "order.paid" || ev.Channel != "news" || ev.Data != `{"n":1}` {
				t.Fatalf("Pusher connection got %+v", ev)
			}
			res, err := cl.Batch(ctx(t), []herald.PushRequest{{To: to, Data: 2, Event: "second"}, {To: to, Data: 3}})
			if err != nil || res[0].Err != nil || res[1].Err != nil {
				t.Fatalf("batch: %+v, %v", res, err)
			}
			// Batch items may arrive in either order.
			got := map[string]string{}
			for range 2 {
				m := next[*herald.Message](t, c)
				got[string(m.Data)] = m.Event
			}
			if got["2"] != "second" || got["3"] != "" {
				t.Fatalf("batch items arrived with events %v", got)
			}
			got = map[string]string{}
			for range 2 {
				ev := p.next()
				got[ev.Data] = ev.Event
			}
			if got["2"] != "second" || got["3"] != "message" {
				t.Fatalf("Pusher connection got events %v", got)
			}
			_, err = cl.Push(ctx(t), herald.PushRequest{To: to, Data: 4, Event: strings.Repeat("e", 201)})
			if e := apiError(t, err); e.Code != herald.CodeInvalidArgument {
				t.Fatalf("an invalid event name: %v", err)
			}
		})
	}
}

// pusherConn is a raw Pusher protocol 7 connection.
type pusherConn struct {
	t  *testing.T
	nc net.Conn
	rd io.Reader
}

type pusherFrame struct {
	Event   string `json:"event"`
	Channel string `json:"channel"`
	Data    string `json:"data"`
}

func dialPusher(t *testing.T, n *node, channel string) *pusherConn {
	t.Helper()
	nc, br, _, err := ws.Dial(ctx(t), "ws://"+n.addr+"/app/shop-pusher-key?protocol=7")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &pusherConn{t: t, nc: nc, rd: nc}
	if br != nil { // frames that came with the handshake's answer
		p.rd = br
	}
	if ev := p.next(); ev.Event != "pusher:connection_established" {
		t.Fatalf("got %+v", ev)
	}
	sub, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel}})
	if err := wsutil.WriteClientText(nc, sub); err != nil {
		t.Fatal(err)
	}
	if ev := p.next(); ev.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("got %+v", ev)
	}
	return p
}

func (p *pusherConn) next() pusherFrame {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(wait))
	b, err := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{p.rd, p.nc})
	if err != nil {
		p.t.Fatal(err)
	}
	var f pusherFrame
	if err := json.Unmarshal(b, &f); err != nil {
		p.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}
