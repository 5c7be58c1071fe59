package herald

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

const (
	writeTimeout = 10 * time.Second
	maxFrameSize = 64 << 20 // a push frame holds up to 256 messages
)

// session is one WebSocket connection of a Conn, from the welcome frame to
// its end. Its reader goroutine reads and decodes frames and hands them to
// the Conn's run loop, which owns every other field but the write lock's.
type session struct {
	nc          net.Conn
	br          *bufio.Reader
	wmu         sync.Mutex // one frame written at a time: run loop and reader (pongs)
	readTimeout time.Duration
	welcome     serverFrame
	heartbeat   time.Duration

	frames   chan *serverFrame // reader → run loop
	quit     chan struct{}     // closed to stop the reader
	readDone chan struct{}     // closed when the reader has returned
	readErr  error             // why the reader returned; read after readDone

	// The run loop's state of this session.
	inflight *req   // the request whose answer is awaited
	ready    bool   // the inbox replay every session starts with is over
	seen     uint64 // highest seq received on this session
	ackAsked bool   // a resume was sent to make an earlier ack acceptable
}

// serverFrame is one server → client frame, of any type.
type serverFrame struct {
	Type      string        `json:"type"`
	Conn      string        `json:"conn"`
	User      string        `json:"user"`
	Heartbeat int           `json:"heartbeat"`
	Seq       uint64        `json:"seq"`
	Msgs      []wireMessage `json:"msgs"`
	Room      string        `json:"room"`
	Since     uint64        `json:"since"`
	To        uint64        `json:"to"`
	Complete  bool          `json:"complete"`
	ID        string        `json:"id"`
	Code      int           `json:"code"`
	Reason    string        `json:"reason"`
	Members   []string      `json:"members"`
	More      bool          `json:"more"`
	Join      []string      `json:"join"`
	Leave     []string      `json:"leave"`
}

// wireMessage is one message of a push frame.
type wireMessage struct {
	ID    string          `json:"id"`
	Seq   uint64          `json:"seq"`
	Room  string          `json:"room"`
	Pos   uint64          `json:"pos"`
	From  string          `json:"from"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	TS    int64           `json:"ts"`
}

// clientFrame is one client → server frame.
type clientFrame struct {
	Type  string  `json:"type"`
	Token string  `json:"token,omitempty"`
	Room  string  `json:"room,omitempty"`
	Since *uint64 `json:"since,omitempty"`
	Seq   uint64  `json:"seq,omitempty"`
}

// dialSession connects to u, authenticates and reads the welcome frame.
func dialSession(ctx context.Context, u *url.URL, token string, authFrame bool, timeout time.Duration) (*session, error) {
	var refused *Error
	d := ws.Dialer{Timeout: timeout, OnStatusError: func(status int, _ []byte, resp io.Reader) {
		refused = handshakeError(status, resp)
	}}
	if token != "" && !authFrame {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}})
	}
	nc, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		if refused != nil {
			return nil, refused
		}
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	s := &session{nc: nc, br: br, readTimeout: timeout, frames: make(chan *serverFrame),
		quit: make(chan struct{}), readDone: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	if err := s.greet(token, authFrame); err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return s, nil
}

// greet sends the auth frame if asked to and reads the welcome.
func (s *session) greet(token string, authFrame bool) error {
	if token != "" && authFrame {
		if err := s.send(clientFrame{Type: "auth", Token: token}); err != nil {
			return err
		}
	}
	f, err := s.next()
	if err != nil {
		return err
	}
	if f.Type != "welcome" {
		return fmt.Errorf("herald: the server's first frame is %q, not welcome", f.Type)
	}
	s.welcome = *f
	s.heartbeat = time.Duration(max(1, f.Heartbeat)) * time.Second
	// A pong answers every ping within a round trip; silence beyond this
	// means the network is gone.
	s.readTimeout = s.heartbeat + max(s.heartbeat/2, 5*time.Second)
	return nil
}

// handshakeError reads a refused handshake's answer.
func handshakeError(status int, resp io.Reader) *Error {
	r, err := http.ReadResponse(bufio.NewReader(resp), nil)
	if err != nil {
		return &Error{Status: status, Code: codeOfStatus(status), Message: http.StatusText(status)}
	}
	defer r.Body.Close()
	return readError(status, r.Body)
}

// read runs the reader until the connection fails or quit is closed.
func (s *session) read() {
	defer close(s.readDone)
	for {
		f, err := s.next()
		if err != nil {
			s.readErr = err
			return
		}
		select {
		case s.frames <- f:
		case <-s.quit:
			return
		}
	}
}

// next reads the next text frame, answering pings and close frames on
// the way. A close frame ends the session with a *CloseError.
func (s *session) next() (*serverFrame, error) {
	var msg []byte
	var op ws.OpCode
	for {
		_ = s.nc.SetReadDeadline(time.Now().Add(s.readTimeout))
		h, err := ws.ReadHeader(s.br)
		if err != nil {
			return nil, err
		}
		if h.Length > maxFrameSize-int64(len(msg)) {
			return nil, errors.New("herald: the server sent a frame over " + strconv.Itoa(maxFrameSize) + " bytes")
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(s.br, p); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := s.write(ws.NewPongFrame(p)); err != nil {
				return nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p) // no code: 1005
			var echo []byte
			if len(p) >= 2 {
				echo = ws.NewCloseFrameBody(code, "")
			}
			_ = s.write(ws.NewCloseFrame(echo))
			return nil, &CloseError{Code: int(code), Reason: reason}
		case ws.OpText, ws.OpBinary:
			op = h.OpCode
		}
		msg = append(msg, p...)
		if !h.Fin {
			continue
		}
		if op != ws.OpText { // the protocol has no binary frames yet
			msg = msg[:0]
			continue
		}
		f := new(serverFrame)
		if err := json.Unmarshal(msg, f); err != nil {
			return nil, fmt.Errorf("herald: the server sent a malformed frame: %w", err)
		}
		return f, nil
	}
}

// send writes one client frame.
func (s *session) send(f clientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.write(ws.NewTextFrame(b))
}

// write masks f (in place: its payload must be the caller's own) and
// writes it in one piece.
func (s *session) write(f ws.Frame) error {
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(f))
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = s.nc.Write(b)
	return err
}

// goodbye tells the server the client is leaving (close 1000).
func (s *session) goodbye() {
	_ = s.write(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
}

// close ends the session and waits for its reader.
func (s *session) close() {
	close(s.quit)
	s.nc.Close()
	<-s.readDone
}
