package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// WorkerConfig is what one worker process is told on its command line.
type WorkerConfig struct {
	URL         string // ws://host:port/v1/ws
	Source      string // local IP to dial from
	First       int    // index of this worker's first client
	Count       int    // clients in this worker
	Users       int    // client i is user Prefix+"<i % Users>" (0: one user per client)
	Prefix      string // user name prefix (default "u")
	Room        string // room every client joins ("" none)
	App         string // app for tokens ("" with a dev-mode server)
	TokenSecret string
	Dial        int    // concurrent dials
	Transport   string // "ws" (default) or "sse"
	// Protocol is what clients speak over WebSocket: "herald" (default),
	// "pusher" (URL is then ws://host:port/app/<key>?protocol=7, and Room
	// the channel each subscribes to) or "centrifugo" (URL
	// ws://host:port/connection/websocket; Room the channel, or none: the
	// user's personal channel).
	Protocol string
	// Rooms > 0 spreads clients over rooms Room+"0" … Room+"<Rooms-1>":
	// client i joins Joins of them, (i×Joins + k) mod Rooms for k < Joins.
	Rooms int
	Joins int
}

// rooms are the rooms client i joins.
func (c WorkerConfig) rooms(i int) []string {
	if c.Rooms <= 0 {
		if c.Room == "" {
			return nil
		}
		return []string{c.Room}
	}
	joins := min(max(1, c.Joins), c.Rooms)
	out := make([]string, joins)
	for k := range out {
		out[k] = c.Room + strconv.Itoa((i*joins+k)%c.Rooms)
	}
	return out
}

// report is a worker's answer to "report".
type report struct {
	Conns    int     `json:"conns"`
	Failed   int     `json:"failed"`
	Closed   int64   `json:"closed"`        // connections the server closed
	Why      string  `json:"why,omitempty"` // the first close frame's code and reason
	Received uint64  `json:"received"`      // messages
	Dups     uint64  `json:"dups"`          // messages seen twice or out of order
	LastNS   int64   `json:"last_ns"`       // when the last message arrived
	ConnectS float64 `json:"connect_s"`
	Err      string  `json:"err,omitempty"`
	Hist     Hist    `json:"hist"`
}

type worker struct {
	sseState
	cfg   WorkerConfig
	wire  wire
	mu    sync.Mutex // guards hist and conns
	hist  Hist
	conns []*benchConn

	received atomic.Uint64
	dups     atomic.Uint64
	closed   atomic.Int64
	why      atomic.Pointer[string] // the first close frame's code and reason
	lastNS   atomic.Int64
}

// benchConn is one load-generating client.
type benchConn struct {
	nc   net.Conn  // WebSocket
	body io.Closer // SSE: the stream
	wmu  sync.Mutex
	last int64 // highest message index seen (ordered mode)
	seen map[int64]struct{}
}

// RunWorker serves coordinator commands from in, answering on out, until
// in ends.
func RunWorker(cfg WorkerConfig, in io.Reader, out io.Writer) error {
	w := &worker{cfg: cfg, hist: newHist(), wire: heraldWire}
	switch cfg.Protocol {
	case "pusher":
		w.wire = pusherWire
	case "centrifugo":
		w.wire = centrifugoWire
	}
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		var r report
		switch cmd := sc.Text(); cmd {
		case "connect":
			start := time.Now()
			err := w.connect()
			r.ConnectS = time.Since(start).Seconds()
			if err != nil {
				r.Err = err.Error()
			}
		case "reset":
			w.received.Store(0)
			w.dups.Store(0)
			w.lastNS.Store(0)
			w.mu.Lock()
			w.hist = newHist()
			w.mu.Unlock()
		case "close":
			w.closeAll()
		case "report":
		default:
			r.Err = "unknown command " + strconv.Quote(cmd)
		}
		w.mu.Lock()
		r.Conns = len(w.conns)
		r.Hist = Hist{Counts: slices.Clone(w.hist.Counts), Max: w.hist.Max} // encoded after the lock
		w.mu.Unlock()
		r.Failed = w.cfg.Count - r.Conns
		r.Received, r.Dups, r.Closed, r.LastNS = w.received.Load(), w.dups.Load(), w.closed.Load(), w.lastNS.Load()
		if why := w.why.Load(); why != nil {
			r.Why = *why
		}
		if err := enc.Encode(&r); err != nil {
			return err
		}
	}
	w.closeAll()
	return sc.Err()
}

func (w *worker) connect() error {
	jobs := make(chan int)
	errs := make(chan error, w.cfg.Count)
	var wg sync.WaitGroup
	for range max(1, w.cfg.Dial) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, err := w.dial(i)
				if err != nil {
					errs <- err
					continue
				}
				w.mu.Lock()
				w.conns = append(w.conns, c)
				w.mu.Unlock()
			}
		}()
	}
	for i := w.cfg.First; i < w.cfg.First+w.cfg.Count; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	var first error
	n := 0
	for err := range errs {
		if first == nil {
			first = err
		}
		n++
	}
	if first != nil {
		return fmt.Errorf("%d dials failed, first: %w", n, first)
	}
	return nil
}

func (w *worker) user(i int) string {
	if w.cfg.Users > 0 {
		i %= w.cfg.Users
	}
	if w.cfg.Prefix == "" {
		return "u" + strconv.Itoa(i)
	}
	return w.cfg.Prefix + strconv.Itoa(i)
}

// dial connects client i, waits for its welcome (and joined), then starts
// its reader.
func (w *worker) dial(i int) (*benchConn, error) {
	if w.cfg.Transport == "sse" {
		return w.dialSSE(i)
	}
	url, err := w.wire.url(w, i)
	if err != nil {
		return nil, err
	}
	local := &net.TCPAddr{IP: net.ParseIP(w.cfg.Source)}
	d := ws.Dialer{Timeout: 30 * time.Second, NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: local}
		return nd.DialContext(ctx, network, addr)
	}}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	c := &benchConn{nc: nc, last: -1}
	var rd io.Reader = nc
	if br != nil {
		rd = io.MultiReader(br, nc)
	}
	r := bufio.NewReaderSize(rd, 4096)
	if w.wire.connect != nil {
		hello, err := w.wire.connect(w, i)
		if err == nil {
			err = c.write(ws.OpText, hello)
		}
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	rooms := w.cfg.rooms(i)
	if len(rooms) == 0 && w.wire.personal != nil {
		rooms = []string{w.wire.personal(w.user(i))}
	}
	want := [][]byte{w.wire.hello}
	for k, room := range rooms {
		if err := c.write(ws.OpText, w.wire.join(k+1, room)); err != nil {
			nc.Close()
			return nil, err
		}
		want = append(want, w.wire.joined)
	}
	var buf []byte
	for len(want) > 0 {
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		op, p, err := readFrame(r, &buf)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		if op == ws.OpClose {
			nc.Close()
			code, reason := ws.ParseCloseFrameData(p)
			return nil, fmt.Errorf("client %d: closed by the server: %d %s", i, code, reason)
		}
		if op != ws.OpText {
			continue
		}
		if w.wire.refused != nil && bytes.Contains(p, w.wire.refused) {
			nc.Close()
			return nil, fmt.Errorf("client %d: refused: %s", i, p)
		}
		// One frame may carry several answers (Centrifugo batches them).
		for len(want) > 0 {
			k := bytes.Index(p, want[0])
			if k < 0 {
				break
			}
			p, want = p[k+len(want[0]):], want[1:]
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	go w.read(c, r, buf)
	return c, nil
}

func (c *benchConn) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewFrame(op, true, p)))
}

// readFrame reads one frame into *buf (grown as needed).
func readFrame(r *bufio.Reader, buf *[]byte) (ws.OpCode, []byte, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return 0, nil, err
	}
	if cap(*buf) < int(h.Length) {
		*buf = make([]byte, h.Length)
	}
	p := (*buf)[:h.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h.OpCode, p, nil
}

// read counts the pushes a client receives until its connection ends.
func (w *worker) read(c *benchConn, r *bufio.Reader, buf []byte) {
	defer w.closed.Add(1)
	for {
		op, p, err := readFrame(r, &buf)
		if err != nil {
			return
		}
		switch op {
		case ws.OpPing:
			_ = c.write(ws.OpPong, p)
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			why := fmt.Sprintf("%d %s", code, reason)
			w.why.CompareAndSwap(nil, &why)
			return
		case ws.OpText:
			if w.wire.ping != nil && hasLine(p, w.wire.ping) {
				_ = c.write(ws.OpText, w.wire.pong)
			}
			if bytes.HasPrefix(p, w.wire.push) {
				w.count(c, p)
			}
		}
	}
}

// count scans a push frame for bench messages ({"i":index,"t":sentNanos})
// without decoding JSON, so the generator spends little CPU per message.
func (w *worker) count(c *benchConn, p []byte) {
	now := time.Now()
	var lat []time.Duration
	var n, dups uint64
	for {
		k := bytes.Index(p, w.wire.keyIndex)
		if k < 0 {
			break
		}
		p = p[k+len(w.wire.keyIndex):]
		idx, rest := parseInt(p)
		p = rest
		var sent int64
		if bytes.HasPrefix(p, w.wire.keyTime) {
			sent, p = parseInt(p[len(w.wire.keyTime):])
		}
		n++
		if c.isDup(idx) {
			dups++
		}
		if sent > 0 {
			lat = append(lat, now.Sub(time.Unix(0, sent)))
		}
	}
	if n == 0 {
		return
	}
	w.received.Add(n)
	w.dups.Add(dups)
	w.lastNS.Store(now.UnixNano())
	if len(lat) > 0 {
		w.mu.Lock()
		for _, d := range lat {
			w.hist.Add(d)
		}
		w.mu.Unlock()
	}
}

// isDup reports a message index seen before. Indexes above 1<<40 are
// unordered (unicast: checked against a set); others must increase.
func (c *benchConn) isDup(i int64) bool {
	if i >= 1<<40 {
		if c.seen == nil {
			c.seen = map[int64]struct{}{}
		}
		if _, ok := c.seen[i]; ok {
			return true
		}
		c.seen[i] = struct{}{}
		return false
	}
	if i <= c.last {
		return true
	}
	c.last = i
	return false
}

// hasLine reports whether one of p's lines is line.
func hasLine(p, line []byte) bool {
	for len(p) > 0 {
		l, rest, _ := bytes.Cut(p, []byte{'\n'})
		if bytes.Equal(l, line) {
			return true
		}
		p = rest
	}
	return false
}

func parseInt(p []byte) (int64, []byte) {
	var n int64
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		n = n*10 + int64(p[i]-'0')
	}
	return n, p[i:]
}

func (w *worker) closeAll() {
	w.mu.Lock()
	conns := w.conns
	w.conns = nil
	w.mu.Unlock()
	for _, c := range conns {
		if c.body != nil {
			_ = c.body.Close()
		} else {
			_ = c.nc.Close()
		}
	}
}
