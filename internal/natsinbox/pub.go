package natsinbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pubMux collects the acknowledgements of the Inbox's stream publishes on
// one wildcard subscription. Publishes are made in sets whose
// acknowledgements are awaited together; the reply subject of a publish
// names its set and its index in the set. Unlike nats.go's asynchronous
// publish it keeps no timer, channel or map entry per message, and it never
// republishes (a republished write could overtake a later one of the same
// inbox).
type pubMux struct {
	nc     *nats.Conn
	prefix string // the reply subjects' prefix, ending in '.'
	sub    *nats.Subscription

	mu     sync.Mutex
	n      uint64
	sets   map[uint64]*pubSet
	closed chan struct{} // closed by stop
}

// pubSet is a set of publishes awaited together.
type pubSet struct {
	x     *pubMux
	id    uint64
	reply string // prefix + id + "."

	mu   sync.Mutex
	acks []pubAck
	left int
	done chan struct{} // closed when left reaches 0
}

// pubAck is the outcome of one publish of a set.
type pubAck struct {
	pos uint64 // the stream position it was stored at
	err error  // nil: stored
	// got: the outcome is known. A publish whose acknowledgement did not
	// come (the wait ended first) may or may not have been stored.
	got bool
}

func startPubMux(nc *nats.Conn) (*pubMux, error) {
	x := &pubMux{nc: nc, prefix: nc.NewInbox() + ".", sets: make(map[uint64]*pubSet), closed: make(chan struct{})}
	sub, err := subscribeReplies(nc, x.prefix+">", x.handle)
	if err != nil {
		return nil, err
	}
	x.sub = sub
	return x, nil
}

// stop unsubscribes and ends every wait for acknowledgements at once (the
// publishes still waited for count as not known to be stored).
func (x *pubMux) stop() error {
	err := x.sub.Unsubscribe()
	x.mu.Lock()
	select {
	case <-x.closed:
	default:
		close(x.closed)
	}
	x.mu.Unlock()
	return err
}

// newSet registers a set of n publishes.
func (x *pubMux) newSet(n int) *pubSet {
	x.mu.Lock()
	x.n++
	s := &pubSet{x: x, id: x.n, acks: make([]pubAck, n), left: n, done: make(chan struct{})}
	x.sets[s.id] = s
	x.mu.Unlock()
	s.reply = x.prefix + strconv.FormatUint(s.id, 36) + "."
	if n == 0 {
		close(s.done)
	}
	return s
}

// end unregisters the set; later acknowledgements are dropped.
func (s *pubSet) end() {
	s.x.mu.Lock()
	delete(s.x.sets, s.id)
	s.x.mu.Unlock()
}

// publish sends m as publish i of the set.
func (s *pubSet) publish(i int, m *nats.Msg) {
	m.Reply = s.reply + strconv.FormatUint(uint64(i), 36)
	if err := s.x.nc.PublishMsg(m); err != nil {
		s.set(i, 0, err)
	}
}

func (s *pubSet) set(i int, pos uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left < 0 || i < 0 || i >= len(s.acks) || s.acks[i].got {
		return // the wait is over, or a stray
	}
	s.acks[i] = pubAck{pos: pos, err: err, got: true}
	if s.left--; s.left == 0 {
		close(s.done)
	}
}

// wait waits for every acknowledgement, or until ctx ends or the mux or
// its connection is closed; then the acks are final (those not got have
// err set to why).
func (s *pubSet) wait(ctx context.Context) []pubAck {
	why := errors.New("no acknowledgement")
	if err := await(ctx, s.x.nc, s.done, s.x.closed); err != nil {
		why = fmt.Errorf("no acknowledgement: %w", err)
	}
	s.end()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.acks {
		if !s.acks[i].got && s.acks[i].err == nil {
			s.acks[i].err = why
		}
	}
	s.left = -1 // no more changes
	return s.acks
}

func (x *pubMux) handle(m *nats.Msg) {
	rest := m.Subject[len(x.prefix):]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return
	}
	id, err1 := strconv.ParseUint(rest[:dot], 36, 64)
	i, err2 := strconv.ParseUint(rest[dot+1:], 36, 31)
	if err1 != nil || err2 != nil {
		return
	}
	x.mu.Lock()
	s := x.sets[id]
	x.mu.Unlock()
	if s == nil {
		return
	}
	pos, err := parsePubAck(m)
	s.set(int(i), pos, err)
}

// parsePubAck decodes a JetStream publish acknowledgement.
func parsePubAck(m *nats.Msg) (uint64, error) {
	if len(m.Data) == 0 && m.Header != nil {
		if st := m.Header.Get("Status"); st == statusNoResp {
			return 0, nats.ErrNoResponders
		} else if st != "" {
			return 0, fmt.Errorf("publish: status %s %s", st, m.Header.Get("Description"))
		}
	}
	d := m.Data
	if !bytes.Contains(d, []byte(`"error"`)) {
		// {"stream":"HERALD_INBOX","seq":123} (with maybe a domain)
		if i := bytes.Index(d, []byte(`"seq":`)); i >= 0 {
			d = d[i+len(`"seq":`):]
			j := 0
			for j < len(d) && d[j] >= '0' && d[j] <= '9' {
				j++
			}
			if pos, err := strconv.ParseUint(string(d[:j]), 10, 64); err == nil && pos > 0 {
				return pos, nil
			}
		}
	}
	var resp struct {
		Seq   uint64              `json:"seq"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("publish acknowledgement %q: %w", m.Data, err)
	}
	switch {
	case resp.Error != nil:
		return 0, resp.Error
	case resp.Seq == 0:
		return 0, errors.New("publish acknowledgement without a sequence")
	}
	return resp.Seq, nil
}
