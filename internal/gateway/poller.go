package gateway

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller waits on one epoll instance and runs the read side of the
// connections registered with it, one event at a time.
type poller struct {
	epfd int
	wake int // eventfd that ends run

	mu    sync.RWMutex
	conns []*wsConn // indexed by fd
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("gateway: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("gateway: epoll_ctl: %w", err)
	}
	return &poller{epfd: epfd, wake: wake}, nil
}

// add starts watching c's socket for reads. A connection that closed in the
// meantime is not added (or is taken out again): Control keeps the
// descriptor open during the add, and the closed flag is checked after it,
// so a closed connection never lingers in the table or in epoll.
func (p *poller) add(c *wsConn) error {
	if c.isClosed() {
		return nil
	}
	p.mu.Lock()
	for len(p.conns) <= c.fd {
		p.conns = append(p.conns, make([]*wsConn, len(p.conns)+1024)...)
	}
	p.conns[c.fd] = c
	p.mu.Unlock()
	if c.tls != nil {
		go c.readTLS() // listed here (for heartbeats and shutdown), read by its own goroutine
		return nil
	}
	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr // closed already
	}
	if err != nil {
		p.forget(c)
		return fmt.Errorf("gateway: epoll_ctl add: %w", err)
	}
	if c.isClosed() {
		p.remove(c)
	}
	return nil
}

// remove stops watching c. Control holds the descriptor open, so a closed
// and reused fd number is never removed by mistake.
func (p *poller) remove(c *wsConn) {
	_ = c.rc.Control(func(fd uintptr) {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.forget(c)
}

func (p *poller) forget(c *wsConn) {
	p.mu.Lock()
	if c.fd < len(p.conns) && p.conns[c.fd] == c {
		p.conns[c.fd] = nil
	}
	p.mu.Unlock()
}

func (p *poller) lookup(fd int) *wsConn {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if fd < len(p.conns) {
		return p.conns[fd]
	}
	return nil
}

// run dispatches read events until stop is called. buf is the shared read
// buffer of this poller.
func (p *poller) run(bufSize int) {
	events := make([]unix.EpollEvent, 512)
	buf := make([]byte, bufSize)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == p.wake {
				unix.Close(p.epfd)
				unix.Close(p.wake)
				return
			}
			if c := p.lookup(fd); c != nil {
				c.readable(buf)
			}
		}
	}
}

// stop makes run return (and close the poller's descriptors).
func (p *poller) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}
