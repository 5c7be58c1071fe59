package herald

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Stable error codes of the server API (docs/api.md#errors). They are the
// server's catalogue (its internal/apierr package), spelt out here for the
// SDK's documentation; a test keeps the two equal.
const (
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidTarget   = "invalid_target"
	CodeInvalidArgument = "invalid_argument"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodePayloadTooLarge = "payload_too_large"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Error is an error answer of the server API, also a refused WebSocket
// handshake. Use errors.As to get it from an error a call returned.
type Error struct {
	// Status is the HTTP status; 0 for a per-item error of a batch.
	Status int
	// Code is the stable error code, one of the Code constants.
	Code string
	// Message is the server's explanation, for humans.
	Message string
}

// Error returns the code, status and message.
func (e *Error) Error() string {
	if e.Status == 0 {
		return "herald: " + e.Code + ": " + e.Message
	}
	return fmt.Sprintf("herald: %s (%d): %s", e.Code, e.Status, e.Message)
}

// ErrorCode returns the stable code of err if it is or wraps an *Error,
// and "" otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// readError turns an error answer into an *Error. An answer not in the
// API's shape (a proxy's, say) gets a code from its status.
func readError(status int, body io.Reader) *Error {
	raw, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var b errorBody
	if json.Unmarshal(raw, &b) == nil && b.Error.Code != "" {
		return &Error{Status: status, Code: b.Error.Code, Message: b.Error.Message}
	}
	msg := strings.TrimSpace(string(raw))
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Code: codeOfStatus(status), Message: msg}
}

func codeOfStatus(status int) string {
	switch status {
	case 400:
		return CodeInvalidArgument
	case 401:
		return CodeUnauthorized
	case 403:
		return CodeForbidden
	case 404:
		return CodeNotFound
	case 413:
		return CodePayloadTooLarge
	case 429:
		return CodeRateLimited
	case 502, 503, 504:
		return CodeUnavailable
	}
	return CodeInternal
}

// Close codes a Herald server ends a connection with (docs/protocol.md#close-codes).
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001
	CloseProtocol     = 1002
	CloseAbnormal     = 1006 // no close frame: the socket just ended
	CloseTooLarge     = 1009
	CloseDraining     = 4000
	CloseUnauthorized = 4001
	CloseKicked       = 4002
	CloseSlowConsumer = 4004
	CloseHeartbeat    = 4005
	// CloseTooManyConns: the user already holds the most connections the
	// app allows on the node; the Conn does not reconnect on its own.
	CloseTooManyConns = 4009
)

// Error-frame codes: the server refused one request of a connection, which
// stays open (docs/protocol.md#error-frame-codes).
const (
	ErrCodeForbidden       = 4003
	ErrCodeInvalidFrame    = 4006
	ErrCodeInvalidArgument = 4007
	ErrCodeRateLimited     = 4008
)

// CloseError is how the server ended a connection: the close code and
// reason of its close frame.
type CloseError struct {
	Code   int
	Reason string
}

// Error returns the code and the reason.
func (e *CloseError) Error() string {
	return "herald: connection closed with " + strconv.Itoa(e.Code) + " " + e.Reason
}

// ErrClosed is returned by a Conn's methods after Close.
var ErrClosed = errors.New("herald: connection closed by Close")
