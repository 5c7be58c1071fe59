package gateway

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/heraldpush/herald/internal/protocol"
	"golang.org/x/sys/unix"
)

// Merge limits: queued push messages share one frame up to these sizes.
const (
	maxMergeMsgs  = 256
	maxMergeBytes = 64 << 10
)

// wsConn is a WebSocket connection: the connection and its socket. Reads
// are event-driven (a poller calls readable); writes go out in batches,
// one non-blocking writev per turn of a pool writer.
type wsConn struct {
	conn

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
	parser   protocol.Parser
	readDone bool // the read side closed the connection: parse nothing more
}

var _ wire = (*wsConn)(nil)

// schedule hands the connection to the writer pool. It never blocks:
// should the ready queue be full, the connection gets a writer goroutine of
// its own.
func (c *wsConn) schedule() {
	select {
	case c.g.ready <- c:
	default:
		go c.writeBlocking(nil, nil)
	}
}

// writeInline drains the connection on the caller's goroutine (TLS: on a
// pool writer; its writes block).
func (c *wsConn) writeInline() {
	if c.tls != nil {
		c.schedule()
		return
	}
	w := scratchPool.Get().(*writerScratch)
	c.drain(w, true)
	scratchPool.Put(w)
}

// scratchPool holds the writer scratch of inline writes.
var scratchPool = sync.Pool{New: func() any { return new(writerScratch) }}

// closeFrame is a WebSocket close frame.
func (c *wsConn) closeFrame(code int, reason string) *protocol.Outgoing {
	if c.pusher != nil {
		code = pusherCloseCode(code)
	}
	return &protocol.Outgoing{Frame: protocol.CloseFrame(code, reason)}
}

// unblock makes a write waiting on the socket fail now.
// socket is what blocking writes go to: the TLS connection, or the TCP
// connection itself (not the listener's wrapper around it, so that a
// net.Buffers write stays one writev).
func (c *wsConn) socket() net.Conn {
	if c.tls != nil {
		return c.tls
	}
	if u, ok := c.nc.(interface{ NetConn() net.Conn }); ok {
		return u.NetConn()
	}
	return c.nc
}

func (c *wsConn) unblock() { _ = c.nc.SetWriteDeadline(time.Now()) }

// stopReading takes the socket out of its poller.
func (c *wsConn) stopReading() { c.poller.remove(c) }

// drain runs on a pool writer: it writes what is queued with non-blocking
// writev calls and puts the connection back at the end of the ready queue,
// so batches grow while writers are behind and no connection waits for
// another (during a burst the connection stays in its writing turn, and
// queueing to it needs no hand-off). An inline writer (writeInline) ends
// the turn at once if nothing more was queued: a push to an idle
// connection then costs no hand-off at all. A socket that cannot take
// everything is handed to a goroutine of its own that waits for it
// (writeBlocking).
func (c *wsConn) drain(w *writerScratch, inline bool) {
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
	case inline:
		if c.written(batch) {
			c.schedule()
		}
	default:
		c.recycle(batch)
		c.schedule()
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
func (c *wsConn) writeNow(w *writerScratch) ([][]byte, error) {
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

// writeBlocking finishes a write the socket could not take at once, waiting
// up to the write timeout, then keeps writing on this goroutine until the
// queue is empty: a connection that is behind has a writer of its own and
// never holds up the pool.
func (c *wsConn) writeBlocking(rest [][]byte, batch []*protocol.Outgoing) {
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

// end closes the socket, first discarding unread input so the kernel
// does not answer our close frame with a reset.
func (c *wsConn) end() {
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
func (c *wsConn) readable(buf []byte) {
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
func (c *wsConn) readTLS() {
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
func (c *wsConn) consume(data []byte) {
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
func (c *wsConn) onFrame(op byte, payload []byte) error {
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
		if c.pusher != nil {
			c.g.pusherText(&c.conn, payload)
			return nil
		}
		return c.g.onText(&c.conn, payload)
	}
	return nil
}
