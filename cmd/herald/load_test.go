package main

// The load of the cluster tests: a backend pushing stored messages (pusher)
// and clients following their users' inboxes across nodes (follower),
// checking that every acknowledged message arrives exactly once, in order.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/sdk/herald"
)

// pusher is a backend pushing stored messages to users in turn, one push at
// a time (so a user's acknowledged pushes are in seq order), each with its
// own id, through the node via names. A push answered 503, or not answered,
// is retried with the same id until it is accepted or deadline passes, as a
// backend does. Its data is its id.
type pusher struct {
	users []string
	via   func(n int) string
	max   int // pushes per user, below the inbox cap of 1,000
	quit  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	acked   map[string][]string // user → ids the API acknowledged, in order
	retries int                 // attempts answered 503 or not at all
	// again are the ids pushed again after an attempt that failed: one
	// that failed after storing (an acknowledgement lost when a JetStream
	// leader died) leaves a first copy, so they may arrive twice (at least
	// once; clients de-duplicate by id).
	again map[string]bool
	err   error
}

func startPusher(t *testing.T, users []string, via func(n int) string) *pusher {
	p := &pusher{users: users, via: via, max: 900, quit: make(chan struct{}), done: make(chan struct{}),
		acked: map[string][]string{}, again: map[string]bool{}}
	go p.run()
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *pusher) run() {
	defer close(p.done)
	// Paced (100 pushes a second), so that p.max lasts longer than a test
	// needs; a test waits on what was received, never on time.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	clients := map[string]*herald.Client{} // by node address
	for n := 0; n < p.max*len(p.users); n++ {
		select {
		case <-p.quit:
			return
		case <-tick.C:
		}
		user := p.users[n%len(p.users)]
		id := user + "-" + strconv.Itoa(n/len(p.users)+1)
		if err := p.push(clients, n, user, id); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		p.acked[user] = append(p.acked[user], id)
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.err = fmt.Errorf("the pusher ran out: %d pushes per user is the most it makes", p.max)
	p.mu.Unlock()
}

// push sends one push with the Go SDK until it is accepted, through the
// node p.via names at each attempt (one SDK attempt each, so that a retry
// may go to another node). It never gives up on quit: a push that failed
// may still be retried, and only an accepted one counts.
func (p *pusher) push(clients map[string]*herald.Client, n int, user, id string) error {
	giveUp := time.Now().Add(deadline)
	for {
		addr := p.via(n)
		c := clients[addr]
		if c == nil {
			var err error
			if c, err = herald.NewClient("http://"+addr, "", herald.WithMaxAttempts(1)); err != nil {
				return err
			}
			clients[addr] = c
		}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		got, err := c.Push(ctx, herald.PushRequest{To: herald.Target{Users: []string{user}}, Offline: true, ID: id, Data: id})
		cancel()
		var herr *herald.Error
		switch {
		case err == nil && got != id:
			return fmt.Errorf("push %s through %s: answered id %q", id, addr, got)
		case err == nil:
			return nil
		case errors.As(err, &herr) && herr.Status != 503:
			return fmt.Errorf("push %s through %s: %w", id, addr, err)
		}
		p.mu.Lock()
		p.retries++
		p.again[id] = true
		p.mu.Unlock()
		if time.Now().After(giveUp) {
			return fmt.Errorf("push %s not accepted within %v; last attempt through %s: %v", id, deadline, addr, err)
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// stop stops pushing (after the push under way) and returns what was acknowledged.
func (p *pusher) stop() map[string][]string {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// retried is how many attempts were answered 503 or not at all.
// dedupeRetried drops the repeats of retried ids from ids (the first copy
// stays); a repeat of any other id stays, to fail the comparison.
func (p *pusher) dedupeRetried(ids []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if seen[id] && p.again[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

func (p *pusher) retried() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries
}

func (p *pusher) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// follower is one client of a user. It checks that the stored messages it
// is sent come in seq order, with no gap and no duplicate, and a complete
// resumed frame on every connect. When its connection ends it reconnects,
// if it may, to the node pick names, with since = its last seq; a client
// that may not counts the end as an error.
type follower struct {
	t         *testing.T
	user      string
	pick      func(prev string) string // the node to connect to, given the last one ("" at first)
	reconnect bool
	quit      chan struct{}
	done      chan struct{}

	mu    sync.Mutex
	ids   []string // the messages received, in seq order
	last  int      // the seq of the last one (seqs rise, with gaps where a push failed and its copies were removed)
	conns int      // connections made
	err   error
}

func startFollower(t *testing.T, user string, reconnect bool, pick func(prev string) string) *follower {
	f := &follower{t: t, user: user, pick: pick, reconnect: reconnect, quit: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.stop)
	return f
}

func (f *follower) run() {
	defer close(f.done)
	prev := ""
	giveUp := time.Time{} // while reconnecting: when to stop trying
	for {
		addr := f.pick(prev)
		since := f.lastSeq()
		c, err := tryDialWS(f.t, addr, fmt.Sprintf("?user=%s&since=%d", f.user, since))
		if err == nil {
			prev, giveUp = addr, time.Time{}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			err = f.follow(c, since)
			c.close()
		}
		select {
		case <-f.quit:
			return
		default:
		}
		if giveUp.IsZero() {
			giveUp = time.Now().Add(deadline)
		}
		if !f.reconnect || time.Now().After(giveUp) {
			f.fail(fmt.Errorf("connection to %s: %v", addr, err))
			return
		}
		time.Sleep(20 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// follow reads one connection's frames until it ends (the returned error
// says how) or the follower is stopped.
func (f *follower) follow(c *wsClient, since int) error {
	for {
		var m map[string]any
		select {
		case <-f.quit:
			return nil
		case code := <-c.closed:
			return fmt.Errorf("closed with %d", code)
		case m = <-c.frames:
		}
		switch m["type"] {
		case "welcome":
			if seq, _ := m["seq"].(float64); m["user"] != f.user || seq < float64(since) {
				f.fail(fmt.Errorf("welcome %v after seq %d", m, since))
			}
		case "push":
			for _, x := range m["msgs"].([]any) {
				msg := x.(map[string]any)
				seq, _ := msg["seq"].(float64)
				f.mu.Lock()
				after := f.last
				if int(seq) > after {
					f.ids, f.last = append(f.ids, msg["id"].(string)), int(seq)
				}
				f.mu.Unlock()
				if int(seq) <= after {
					f.fail(fmt.Errorf("message %v after seq %d (a duplicate, or out of order)", msg, after))
				}
			}
		case "resumed":
			if m["complete"] != true || m["since"] != float64(since) {
				f.fail(fmt.Errorf("resumed %v after since=%d", m, since))
			}
		default:
			f.fail(fmt.Errorf("frame %v", m))
		}
	}
}

// lastSeq is the seq of the last message received (0: none).
func (f *follower) lastSeq() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = fmt.Errorf("%s's client: %w", f.user, err)
	}
}

func (f *follower) stop() {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// state returns the ids received, how often the client reconnected, and
// the first error it met.
func (f *follower) state() (ids []string, reconnects int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids), max(f.conns-1, 0), f.err
}

// load is a pusher and the followers of its users.
type load struct {
	t         *testing.T
	pusher    *pusher
	followers []*follower
}

// progress waits until every follower has received at least n more
// messages than it had, failing early on any error.
func (l *load) progress(what string, n int) {
	l.t.Helper()
	from := make([]int, len(l.followers))
	for i, f := range l.followers {
		from[i] = f.count()
	}
	eventually(l.t, what, func() bool {
		l.check()
		for i, f := range l.followers {
			if f.count() < from[i]+n {
				return false
			}
		}
		return true
	})
}

// check fails the test on a pusher or follower error.
func (l *load) check() {
	l.t.Helper()
	if err := l.pusher.failed(); err != nil {
		l.t.Fatal(err)
	}
	for _, f := range l.followers {
		if _, _, err := f.state(); err != nil {
			l.t.Fatal(err)
		}
	}
}

// finish stops pushing, waits until every follower has received every
// acknowledged message, and checks each got exactly those, in order. It
// returns what was acknowledged.
func (l *load) finish() map[string][]string {
	l.t.Helper()
	acked := l.pusher.stop()
	l.check()
	eventually(l.t, "every acknowledged message received", func() bool {
		l.check()
		for _, f := range l.followers {
			if f.count() < len(acked[f.user]) {
				return false
			}
		}
		return true
	})
	for _, f := range l.followers {
		f.stop()
		ids, _, err := f.state()
		if err != nil {
			l.t.Fatal(err)
		}
		if ids = l.pusher.dedupeRetried(ids); !slices.Equal(ids, acked[f.user]) {
			l.t.Fatalf("%s received %d messages %v\nacknowledged %d: %v", f.user, len(ids), ids, len(acked[f.user]), acked[f.user])
		}
	}
	return acked
}

// readInbox connects a new client of user to addr with since=0 and
// returns the ids of its replay, checking that seqs rise (with gaps only
// where a failed push was removed) and a complete resumed frame. While
// JetStream moves a stream's leadership a replay may
// be refused with 4000 (reconnect); it is retried then.
func readInbox(t *testing.T, addr, user string) []string {
	t.Helper()
	return readInboxWith(t, addr, user, "?user="+user+"&since=0")
}

// readInboxWith is readInbox connecting with the given query (e.g. a
// token's).
func readInboxWith(t *testing.T, addr, user, query string) []string {
	t.Helper()
	giveUp := time.Now().Add(deadline)
	for {
		c := dialWS(t, addr, query)
		var ids []string
		var last float64
		for {
			f := c.nextOrClose()
			if f == nil {
				break
			}
			switch f["type"] {
			case "welcome":
			case "push":
				for _, x := range f["msgs"].([]any) {
					m := x.(map[string]any)
					if m["seq"].(float64) <= last {
						t.Fatalf("%s's replay: message %v after seq %v", user, m, last)
					}
					last = m["seq"].(float64)
					ids = append(ids, m["id"].(string))
				}
			case "resumed":
				if f["complete"] != true || len(ids) > 0 && f["to"] != last {
					t.Fatalf("%s's replay of %d messages ended with %v", user, len(ids), f)
				}
				c.close()
				return ids
			default:
				t.Fatalf("%s's replay: frame %v", user, f)
			}
		}
		if time.Now().After(giveUp) {
			t.Fatalf("%s's replay was refused for %v", user, deadline)
		}
		time.Sleep(100 * time.Millisecond) // a retry interval, not a synchronisation
	}
}

// checkInboxes reads every user's inbox through addr and checks it holds
// exactly the messages p acknowledged, in order (a retried one maybe twice).
func checkInboxes(t *testing.T, addr string, p *pusher, acked map[string][]string) {
	t.Helper()
	for user, want := range acked {
		if got := p.dedupeRetried(readInbox(t, addr, user)); !slices.Equal(got, want) {
			t.Errorf("%s's inbox through %s: %d messages %v\nacknowledged %d: %v", user, addr, len(got), got, len(want), want)
		}
	}
}

// nextOrClose is next, but returns nil when the server closed the
// connection instead.
func (c *wsClient) nextOrClose() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		return m
	case code := <-c.closed:
		c.closed <- code
		return nil
	case <-time.After(deadline):
		c.t.Fatalf("no frame within %v", deadline)
	}
	return nil
}
