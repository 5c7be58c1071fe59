package protocol

// Close codes sent in a WebSocket close frame. Clients reconnect after
// CloseGoingAway, CloseDraining, CloseSlowConsumer and CloseHeartbeat; they
// do not reconnect automatically after CloseTooLarge, CloseUnauthorized,
// CloseKicked or CloseTooManyConns.
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseProtocol     = 1002
	CloseNoStatus     = 1005 // never sent: a close frame without a code
	CloseInvalidData  = 1007
	CloseTooLarge     = 1009
	CloseDraining     = 4000
	CloseUnauthorized = 4001
	CloseKicked       = 4002
	CloseSlowConsumer = 4004
	CloseHeartbeat    = 4005
	// CloseTooManyConns refuses a connection whose user already holds the
	// app's max_conns_per_user connections on the node.
	CloseTooManyConns = 4009
)

// Error-frame codes sent in {"type":"error"} frames; the connection stays open.
const (
	ErrCodeForbidden       = 4003
	ErrCodeInvalidFrame    = 4006
	ErrCodeInvalidArgument = 4007
	ErrCodeRateLimited     = 4008
)

// FrameError is a client mistake answered with an error frame.
type FrameError struct {
	Code   int
	Reason string
}

// Error returns the reason.
func (e *FrameError) Error() string { return e.Reason }

func invalidFrame(reason string) *FrameError {
	return &FrameError{Code: ErrCodeInvalidFrame, Reason: reason}
}

func invalidArgument(reason string) *FrameError {
	return &FrameError{Code: ErrCodeInvalidArgument, Reason: reason}
}
