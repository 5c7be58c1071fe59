package gateway

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/protocol"
)

// errClosing stops frame parsing once a frame handler closed the connection.
var errClosing = errors.New("gateway: connection closing")

// pendingAuth is what a connection waiting for its first-frame token holds.
type pendingAuth struct {
	timer *time.Timer
	since *uint64 // ?since= of the upgrade request
}

// wire is one transport's side of a connection: how queued frames reach
// the client and how the connection ends. The connection (identity, rooms,
// inbox position, write queue, slow-consumer policy, heartbeats) is the
// same for every transport and calls only these methods; a wire never
// touches the hub or the engine.
type wire interface {
	// schedule gets the queue written: the connection's writing turn has
	// just begun (c.writing was set), and the writer takes frames with take
	// until it returns nil.
	schedule()
	// writeInline is schedule on a goroutine that holds no lock and may
	// wait for one socket write: a transport that can write right away
	// does so.
	writeInline()
	// closeFrame is the last frame a closing connection sends: it tells
	// the client the close code.
	closeFrame(code int, reason string) *protocol.Outgoing
	// unblock cuts loose a writer waiting on a client that does not read.
	unblock()
	// stopReading stops taking client frames (the connection is closing).
	stopReading()
	// end closes the socket or ends the stream; called once, when no writer
	// is at work.
	end()
}

// conn is one client connection, whatever its transport. The embedded
// hub.Conn is its identity in the hub; the rest is its rights, its inbox
// position and its write queue. A transport embeds it (wsConn, sseConn)
// and is its wire.
type conn struct {
	hub.Conn

	g    *Gateway
	wire wire
	// oneWay is set for a transport without client frames on the stream
	// (SSE): heartbeats are keep-alives sent every Heartbeat and silence
	// closes nothing; a dead client shows as a failed write.
	oneWay bool
	// pusher is set for a Pusher Channels connection (pusher.go): its
	// frames are re-encoded in Pusher's format.
	pusher *pusherState

	// Rights and read-side state: touched by one goroutine at a time (the
	// poller, or the upgrade goroutine before that; for SSE the POST
	// handler under its lock).
	allow     []string // rooms the token lets the client join itself
	mayAny    bool     // dev mode: any room
	maySend   bool
	sendSec   uint32 // Unix second of the send-rate window
	sendCount uint32
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
	lastSeen atomic.Int64 // gateway clock (Unix ms) of the last read (oneWay: of the last keep-alive)
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
func (c *conn) Send(frames ...*protocol.Outgoing) {
	if c.pusher != nil {
		c.sendPusher(frames)
		return
	}
	c.enqueue(frames, false)
}

// SendInline is Send from a caller that holds no lock and may wait for a
// socket write (hub.Targets.Inline): if the connection was idle, its
// transport writes it on the caller's goroutine instead of handing it to
// a writer.
func (c *conn) SendInline(frames ...*protocol.Outgoing) {
	if c.pusher != nil {
		c.sendPusher(frames) // converted into a pooled slice: not kept
		return
	}
	if c.put(frames, false) {
		c.wire.writeInline()
	}
}

func (c *conn) enqueue(frames []*protocol.Outgoing, now bool) {
	if c.put(frames, now) {
		c.wire.schedule()
	}
}

// put queues frames (held while a replay runs, unless now) and reports
// whether the connection's writing turn starts: the caller then gets it
// written (schedule).
func (c *conn) put(frames []*protocol.Outgoing, now bool) bool {
	size := 0
	for _, f := range frames {
		size += len(f.Frame)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if g := c.greet; g != nil && !now {
		if g.bytes == 0 || g.bytes+size <= c.g.cfg.QueueBytes {
			g.held = append(g.held, frames...)
			g.bytes += size
			c.mu.Unlock()
			return false
		}
		// Too much arrived during the replay: the client reconnects and
		// resumes rather than lose or reorder what was held.
		c.mu.Unlock()
		c.g.metrics.SlowConsumer()
		go c.close(protocol.CloseSlowConsumer, "slow consumer: too much arrived during the replay")
		return false
	}
	if !now {
		if kept := c.inOrder(frames); len(kept) < len(frames) {
			if frames = kept; len(frames) == 0 {
				c.mu.Unlock()
				return false
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
		return false
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
	return start
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
		if cap(batch) > keptQueue || c.closed {
			c.queue = nil
		}
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
// written follows a batch an inline writer's socket took whole: if
// nothing was queued meanwhile it ends the writing turn (as take would on
// the next turn) and reports false; otherwise it reports true, the rest to
// be written on a next turn.
func (c *conn) written(batch []*protocol.Outgoing) bool {
	clear(batch)
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.mu.Unlock()
		return true
	}
	c.writing = false
	c.queue = nil
	if cap(batch) <= keptQueue && !c.closed {
		c.queue = batch[:0] // no allocation for the next push
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.finish()
	}
	return false
}

// keptQueue is the largest queue an idle connection keeps between pushes
// (a few pointers; longer ones are released): a connection that gets a
// push now and then, such as a room member, needs no allocation per push.
const keptQueue = 4

func (c *conn) recycle(batch []*protocol.Outgoing) {
	clear(batch)
	c.mu.Lock()
	if c.queue == nil && !c.closed {
		c.queue = batch[:0]
	}
	c.mu.Unlock()
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
	c.queue = append(c.queue, c.wire.closeFrame(code, reason))
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	c.g.detach(c, counted, reason)
	if code == protocol.CloseSlowConsumer {
		// The writer is likely stuck on a full socket buffer: cut it loose.
		c.wire.unblock()
	}
	if start {
		c.wire.schedule()
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
		c.wire.unblock()
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

// finish ends the transport once: no writer is at work and nothing more
// will be written.
func (c *conn) finish() {
	if c.finished.Swap(true) {
		return
	}
	defer c.g.live.Done()
	c.wire.end()
}
