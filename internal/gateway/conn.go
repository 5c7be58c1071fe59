package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
	"golang.org/x/sys/unix"
)

// Merge limits: queued push messages share one frame up to these sizes.
const (
	maxMergeMsgs  = 256
	maxMergeBytes = 64 << 10
)

// errClosing stops frame parsing once a frame handler closed the connection.
var errClosing = errors.New("gateway: connection closing")

// pendingAuth is what a connection waiting for its first-frame token holds.
type pendingAuth struct {
	timer *time.Timer
	since *uint64 // ?since= of the upgrade request
}

// conn is one client connection. The embedded hub.Conn is its identity in
// the hub; the rest is the read and write machinery.
type conn struct {
	hub.Conn

	g      *Gateway
	nc     net.Conn        // the TCP connection, or the TLS connection over it
	rc     syscall.RawConn // the TCP connection's descriptor
	fd     int
	poller *poller
	// tls is set for a TLS connection: its reads and writes go through Go's
	// TLS (a goroutine of its own reads it; every write is a blocking
	// write), not the poller and raw writev.
	tls *tls.Conn

	// Read side: touched only by the poller goroutine (and by the upgrade
	// goroutine before the connection is added to the poller).
	parser    protocol.Parser
	allow     []string // rooms the token lets the client join itself
	mayAny    bool     // dev mode: any room
	maySend   bool
	sendSec   uint32 // Unix second of the send-rate window
	sendCount uint32
	readDone  bool                   // the read side closed the connection: parse nothing more
	pending   *pendingAuth           // until the first-frame token arrives; guarded by mu
	greet     *greeting              // while the inbox is replayed; guarded by mu
	sends     []protocol.ClientFrame // client sends not yet published; guarded by mu
	sending   bool                   // a goroutine publishes sends; guarded by mu
	ackTo     uint64                 // highest ack not yet stored; guarded by mu
	sentSeq   uint64                 // highest inbox seq queued to this connection; guarded by mu
	pos       uint64                 // inbox seq this connection has every stored message up to (sent, or before where it started); guarded by mu
	acking    bool                   // a goroutine stores acks; guarded by mu
	drained   chan struct{}          // closed when the writer takes the queue; guarded by mu

	authed   atomic.Bool
	finished atomic.Bool
	lastSeen atomic.Int64 // gateway clock (Unix ms) of the last read
	pinged   atomic.Bool  // a heartbeat ping is out since lastSeen

	// Write side, guarded by mu.
	mu      sync.Mutex
	queue   []*protocol.Outgoing
	queued  int // bytes in queue
	writing bool
	closed  bool
	hubbed  bool // registered in the hub and watched in the broker
}

// Send queues frames for writing; it never blocks. A queue over its byte
// limit closes the connection with the slow-consumer code. While the inbox
// is replayed, frames are held until the replay is sent.
func (c *conn) Send(frames ...*protocol.Outgoing) { c.enqueue(frames, false) }

func (c *conn) enqueue(frames []*protocol.Outgoing, now bool) {
	size := 0
	for _, f := range frames {
		size += len(f.Frame)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if g := c.greet; g != nil && !now {
		if g.bytes == 0 || g.bytes+size <= c.g.cfg.QueueBytes {
			g.held = append(g.held, frames...)
			g.bytes += size
			c.mu.Unlock()
			return
		}
		// Too much arrived during the replay: the client reconnects and
		// resumes rather than lose or reorder what was held.
		c.mu.Unlock()
		c.g.metrics.SlowConsumer()
		go c.close(protocol.CloseSlowConsumer, "slow consumer: too much arrived during the replay")
		return
	}
	if !now {
		if kept := c.inOrder(frames); len(kept) < len(frames) {
			if frames = kept; len(frames) == 0 {
				c.mu.Unlock()
				return
			}
			size = 0
			for _, f := range frames {
				size += len(f.Frame)
			}
		}
	}
	// An empty queue takes any one call (a burst of a room, a replay
	// chunk); a queue the writer has not emptied may not grow past the
	// limit.
	if c.queued > 0 && c.queued+size > c.g.cfg.QueueBytes {
		c.mu.Unlock()
		c.g.metrics.SlowConsumer()
		// Send may run under a hub lock; closing calls the hub.
		go c.close(protocol.CloseSlowConsumer, "slow consumer: queue full")
		return
	}
	c.queue = append(c.queue, frames...)
	c.queued += size
	for _, f := range frames {
		if f.Room == "" && f.Seq > c.sentSeq {
			c.sentSeq = f.Seq
		}
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		c.g.schedule(c)
	}
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// sendNow queues frames ahead of any held by a replay in progress.
func (c *conn) sendNow(frames ...*protocol.Outgoing) { c.enqueue(frames, true) }

// sendText queues a control or notice frame.
func (c *conn) sendText(payload []byte) { c.Send(protocol.NewText(payload)) }

// take moves the queue out for writing. When it is empty it ends the
// writing turn instead: it releases the buffers (an idle connection holds
// none) and closes the socket if the connection is closing.
func (c *conn) take() []*protocol.Outgoing {
	c.mu.Lock()
	batch := c.queue
	if len(batch) == 0 {
		c.writing = false
		c.queue = nil
		closed := c.closed
		c.mu.Unlock()
		if closed {
			c.finish()
		}
		return nil
	}
	c.queue = nil
	c.queued = 0
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.mu.Unlock()
	return batch
}

// sendPaced queues replayed frames in chunks of at most half the queue
// limit, each once the writer has taken what was queued before, so that a
// long replay never trips the slow-consumer limit of a client that reads.
// It reports false if the connection closed or did not drain within the
// write timeout.
func (c *conn) sendPaced(frames []*protocol.Outgoing) bool {
	for len(frames) > 0 {
		n, size := 0, 0
		for n < len(frames) && (n == 0 || size+len(frames[n].Frame) <= c.g.cfg.QueueBytes/2) {
			size += len(frames[n].Frame)
			n++
		}
		if !c.waitDrained() {
			return false
		}
		c.sendNow(frames[:n]...)
		frames = frames[n:]
	}
	return true
}

// waitDrained waits until the writer has taken everything queued.
func (c *conn) waitDrained() bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if c.queued == 0 {
		c.mu.Unlock()
		return true
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	ch := c.drained
	c.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-time.After(c.g.cfg.WriteTimeout):
		return false
	}
}

// recycle reuses a written batch's array as the queue, unless new frames
// arrived meanwhile.
func (c *conn) recycle(batch []*protocol.Outgoing) {
	clear(batch)
	c.mu.Lock()
	if c.queue == nil && !c.closed {
		c.queue = batch[:0]
	}
	c.mu.Unlock()
}

// drain runs on a pool writer: it writes what is queued with non-blocking
// writev calls and puts the connection back at the end of the ready queue
// if more arrived meanwhile, so batches grow while writers are behind and
// no connection waits for another. A socket that cannot take everything is
// handed to a goroutine of its own that waits for it (writeBlocking).
func (c *conn) drain(w *writerScratch) {
	batch := c.take()
	if batch == nil {
		return
	}
	w.hdrs = w.hdrs[:0]
	w.vecs = w.appendBatch(w.vecs[:0], batch)
	rest, err := c.writeNow(w)
	c.g.metrics.Written(len(batch))
	switch {
	case err != nil:
		c.writeFailed()
	case len(rest) > 0:
		rest = append([][]byte(nil), rest...)
		w.hdrs = nil // the blocked writer keeps the headers it points into
		go c.writeBlocking(rest, batch)
	default:
		c.recycle(batch)
		c.g.schedule(c)
	}
	clear(w.vecs)
}

// writerScratch is one pool writer's reusable memory.
type writerScratch struct {
	vecs [][]byte
	iov  []unix.Iovec
	hdrs []byte // frame headers of merged push frames, built per drain
}

// writeNow writes w.vecs without waiting and returns what the socket did
// not take.
func (c *conn) writeNow(w *writerScratch) ([][]byte, error) {
	vecs := w.vecs
	if c.tls != nil {
		return vecs, nil // encrypted by Go: see writeBlocking
	}
	for len(vecs) > 0 {
		chunk := vecs[:min(len(vecs), 1024)] // IOV_MAX
		size := 0
		w.iov = w.iov[:0]
		for _, v := range chunk {
			size += len(v)
			if len(v) > 0 {
				iov := unix.Iovec{Base: &v[0]}
				iov.SetLen(len(v))
				w.iov = append(w.iov, iov)
			}
		}
		// The raw descriptor is safe here: the socket is closed only by
		// finish, which never runs while this connection's writer does.
		n, werr := writev(c.fd, w.iov)
		switch {
		case werr == unix.EAGAIN:
			return vecs, nil
		case werr != nil:
			return nil, werr
		}
		vecs = advance(vecs, n)
		if n < size {
			return vecs, nil // the socket buffer is full
		}
	}
	return nil, nil
}

func writev(fd int, iov []unix.Iovec) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// advance drops the first n bytes from vecs.
func advance(vecs [][]byte, n int) [][]byte {
	for n > 0 && len(vecs) > 0 {
		if n < len(vecs[0]) {
			vecs[0] = vecs[0][n:]
			return vecs
		}
		n -= len(vecs[0])
		vecs = vecs[1:]
	}
	return vecs
}

// socket is what writes go to: the TLS connection, or the TCP connection
// itself (not a wrapper around it, so that a net.Buffers write stays one
// writev).
func (c *conn) socket() net.Conn {
	if c.tls != nil {
		return c.tls
	}
	if u, ok := c.nc.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return c.nc
}

// writeBlocking finishes a write the socket could not take at once, waiting
// up to the write timeout, then keeps writing on this goroutine until the
// queue is empty: a connection that is behind has a writer of its own and
// never holds up the pool.
func (c *conn) writeBlocking(rest [][]byte, batch []*protocol.Outgoing) {
	var vecs [][]byte
	for {
		if len(rest) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
			bufs := net.Buffers(rest)
			if _, err := bufs.WriteTo(c.socket()); err != nil {
				c.writeFailed()
				return
			}
			c.recycle(batch)
		}
		if batch = c.take(); batch == nil {
			return
		}
		vecs = appendBatch(vecs[:0], batch, nil)
		rest = vecs
		c.g.metrics.Written(len(batch))
	}
}

func (w *writerScratch) appendBatch(vecs [][]byte, batch []*protocol.Outgoing) [][]byte {
	return appendBatch(vecs, batch, &w.hdrs)
}

// appendBatch turns queued frames into write vectors. Consecutive push
// messages become one push frame: a fresh header, the shared prefix, the
// messages' shared bytes separated by commas, the shared suffix. Headers
// are appended to *hdrs when given (a writer's reusable arena).
func appendBatch(vecs [][]byte, batch []*protocol.Outgoing, hdrs *[]byte) [][]byte {
	for i := 0; i < len(batch); {
		f := batch[i]
		j, size := i+1, len(f.Msg)
		for f.Msg != nil && j < len(batch) && batch[j].Msg != nil && j-i < maxMergeMsgs && size+len(batch[j].Msg) < maxMergeBytes {
			size += 1 + len(batch[j].Msg)
			j++
		}
		if j == i+1 {
			vecs = append(vecs, f.Frame)
			i++
			continue
		}
		n := len(protocol.PushPrefix) + size + len(protocol.PushSuffix)
		var hdr []byte
		if hdrs != nil {
			at := len(*hdrs)
			*hdrs = protocol.AppendHeader(*hdrs, protocol.OpText, n)
			hdr = (*hdrs)[at:len(*hdrs):len(*hdrs)]
		} else {
			hdr = protocol.AppendHeader(make([]byte, 0, protocol.MaxHeaderLen), protocol.OpText, n)
		}
		vecs = append(vecs, hdr, protocol.PushPrefix)
		for k := i; k < j; k++ {
			if k > i {
				vecs = append(vecs, protocol.Comma)
			}
			vecs = append(vecs, batch[k].Msg)
		}
		vecs = append(vecs, protocol.PushSuffix)
		i = j
	}
	return vecs
}

// close sends a close frame after whatever is queued, takes the connection
// out of the hub and the poller, and lets the writer close the socket.
func (c *conn) close(code int, reason string) { c.closeAs(code, code, reason) }

// closeAs is close that sends code in the close frame and counts the
// disconnect as counted.
func (c *conn) closeAs(code, counted int, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.queue = append(c.queue, &protocol.Outgoing{Frame: protocol.CloseFrame(code, reason)})
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	c.g.detach(c, counted, reason)
	if code == protocol.CloseSlowConsumer {
		// The writer is likely stuck on a full socket buffer: cut it loose.
		_ = c.nc.SetWriteDeadline(time.Now())
	}
	if start {
		c.g.schedule(c)
	}
}

// fail drops a connection whose socket broke: nothing more can be written.
// If a writer is at work, it closes the socket when it stops (cut loose by
// the write deadline if it waits); otherwise fail closes it now.
func (c *conn) fail() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.queue = nil
	writing := c.writing
	c.mu.Unlock()
	if !already {
		c.g.detach(c, protocol.CloseGoingAway, "connection lost")
	}
	if writing {
		_ = c.nc.SetWriteDeadline(time.Now())
		return
	}
	c.finish()
}

// writeFailed is fail for the connection's own writer, which then stops.
func (c *conn) writeFailed() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
	if !already {
		c.g.detach(c, protocol.CloseGoingAway, "write failed")
	}
	c.finish()
}

// finish closes the socket, first discarding unread input so the kernel
// does not answer our close frame with a reset.
func (c *conn) finish() {
	if c.finished.Swap(true) {
		return
	}
	defer c.g.live.Done()
	if c.tls != nil {
		_ = c.nc.Close()
		return
	}
	var scratch [512]byte
	_ = c.rc.Read(func(fd uintptr) bool {
		for {
			if n, err := unix.Read(int(fd), scratch[:]); n <= 0 || err != nil {
				return true
			}
		}
	})
	_ = c.nc.Close()
}

// readable is called by the poller when the socket has input.
func (c *conn) readable(buf []byte) {
	var n int
	var rerr error
	if err := c.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return true
	}); err != nil {
		return // closed under us
	}
	if rerr == unix.EAGAIN || rerr == unix.EINTR {
		return
	}
	if n <= 0 || rerr != nil {
		c.fail() // the peer went away without a close frame
		return
	}
	c.lastSeen.Store(c.g.now())
	c.pinged.Store(false)
	c.consume(buf[:n])
}

// readTLS reads a TLS connection until it fails or closes: the poller's
// readable for a socket that Go's TLS decrypts.
func (c *conn) readTLS() {
	buf := make([]byte, 16<<10)
	for {
		n, err := c.tls.Read(buf)
		if n > 0 {
			c.lastSeen.Store(c.g.now())
			c.pinged.Store(false)
			c.consume(buf[:n])
		}
		if err != nil {
			c.fail()
			return
		}
	}
}

// consume parses input and turns stream errors into the matching close
// (1009, 1007 or 1002). Once the read side has closed the connection it
// parses nothing more: frames after a close frame are ignored.
func (c *conn) consume(data []byte) {
	if c.readDone {
		return
	}
	err := c.parser.Feed(data, c.onFrame)
	switch {
	case err == nil:
		return
	case errors.Is(err, errClosing):
	case errors.Is(err, protocol.ErrTooLarge):
		c.close(protocol.CloseTooLarge, "frame too large")
	default:
		c.close(protocol.CloseCodeFor(err), err.Error())
	}
	c.readDone = true
}

// onFrame handles one WebSocket message or control frame.
func (c *conn) onFrame(op byte, payload []byte) error {
	switch op {
	case protocol.OpPing:
		c.Send(&protocol.Outgoing{Frame: protocol.Frame(protocol.OpPong, payload)})
	case protocol.OpPong:
	case protocol.OpClose:
		code, err := protocol.ParseClose(payload)
		if err != nil {
			return err // 1002 or 1007, see consume
		}
		if code == protocol.CloseNoStatus {
			code = protocol.CloseNormal
		}
		// Echo the peer's code (RFC 6455 section 5.5.1); the metric counts
		// every close the client started as 1000, so that client-chosen
		// codes never become label values.
		c.closeAs(code, protocol.CloseNormal, "")
		return errClosing
	case protocol.OpBinary:
		if !c.authed.Load() {
			c.close(protocol.CloseUnauthorized, "first frame must be auth")
			return errClosing
		}
		c.sendText(protocol.ErrorFrame(protocol.ErrCodeInvalidFrame, "binary frames are not supported"))
	case protocol.OpText:
		if err := protocol.ValidText(payload); err != nil {
			return err // 1007, see consume
		}
		return c.g.onText(c, payload)
	}
	return nil
}
