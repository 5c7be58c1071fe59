package push

import "fmt"

// Error codes of the server API, stable across HTTP and gRPC.
const (
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidTarget   = "invalid_target"
	CodeInvalidArgument = "invalid_argument"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeTooLarge        = "payload_too_large"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Error is a client-facing error with a stable code.
type Error struct {
	Code    string
	Message string
	Err     error // underlying cause, not shown to clients
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
