package apierr

import (
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
)

// Codes of the server API, stable across HTTP, gRPC and the SDK
// (docs/api.md#errors). Add codes; never rename one.
const (
	InvalidJSON     = "invalid_json"
	InvalidTarget   = "invalid_target"
	InvalidArgument = "invalid_argument"
	Unauthorized    = "unauthorized"
	Forbidden       = "forbidden"
	NotFound        = "not_found"
	PayloadTooLarge = "payload_too_large"
	RateLimited     = "rate_limited"
	Unavailable     = "unavailable"
	Internal        = "internal"
)

// Row is one code of the catalogue and how each transport says it.
type Row struct {
	Code    string       // the stable code
	Status  int          // HTTP status
	GRPC    connect.Code // gRPC status code
	Message string       // default message, for an error that has none of its own
}

// rows is the catalogue, one row per code.
var rows = [...]Row{
	{InvalidJSON, http.StatusBadRequest, connect.CodeInvalidArgument, "invalid JSON"},
	{InvalidTarget, http.StatusBadRequest, connect.CodeInvalidArgument, "invalid target"},
	{InvalidArgument, http.StatusBadRequest, connect.CodeInvalidArgument, "invalid argument"},
	{Unauthorized, http.StatusUnauthorized, connect.CodeUnauthenticated, "unauthorized"},
	{Forbidden, http.StatusForbidden, connect.CodePermissionDenied, "forbidden"},
	{NotFound, http.StatusNotFound, connect.CodeNotFound, "not found"},
	{PayloadTooLarge, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, "payload too large"},
	{RateLimited, http.StatusTooManyRequests, connect.CodeResourceExhausted, "rate limited"},
	{Unavailable, http.StatusServiceUnavailable, connect.CodeUnavailable, "unavailable"},
	{Internal, http.StatusInternalServerError, connect.CodeInternal, "internal error"},
}

// Rows returns the catalogue, in the order of the Code constants.
func Rows() []Row { return append([]Row(nil), rows[:]...) }

// Lookup returns the row of code, and false for a code not in the
// catalogue (one from a newer server, say).
func Lookup(code string) (Row, bool) {
	for _, r := range rows {
		if r.Code == code {
			return r, true
		}
	}
	return Row{}, false
}

// Of returns the row of code; a code not in the catalogue is Internal's.
func Of(code string) Row {
	if r, ok := Lookup(code); ok {
		return r
	}
	return rows[len(rows)-1]
}

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

// From returns the *Error err is or wraps; any other error becomes an
// Internal one with the default message (its text is not for clients)
// and err as its cause.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: Of(Internal).Message, Err: err}
}
