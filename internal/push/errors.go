package push

import "github.com/heraldpush/herald/internal/apierr"

// Error codes of the server API: the catalogue's (package apierr), under
// the names the push service and its callers use.
const (
	CodeInvalidJSON     = apierr.InvalidJSON
	CodeInvalidTarget   = apierr.InvalidTarget
	CodeInvalidArgument = apierr.InvalidArgument
	CodeUnauthorized    = apierr.Unauthorized
	CodeForbidden       = apierr.Forbidden
	CodeNotFound        = apierr.NotFound
	CodeTooLarge        = apierr.PayloadTooLarge
	CodeRateLimited     = apierr.RateLimited
	CodeUnavailable     = apierr.Unavailable
	CodeInternal        = apierr.Internal
)

// Error is a client-facing error with a stable code: the catalogue's.
type Error = apierr.Error

// Errorf builds an Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return apierr.Errorf(code, format, args...)
}
