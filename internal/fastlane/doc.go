// Package fastlane serves the plain HTTP/1.1 requests of busy keep-alive
// connections — a backend calling POST /v1/push over and over — without
// net/http's per-request cost (its request and response objects, header
// parsing into textproto, a cancelable context per request, and the
// background read it arms and disarms around every handler).
//
// A connection starts on net/http. Its first request that the lane takes
// (method and path) hijacks it; from then on the lane reads each request
// head itself and calls the same handler with a lean request and a
// response written once, when the handler returns. Only clean requests are
// taken: HTTP/1.1, a Content-Length (or no body), token header names,
// values without control characters, one Host, no Transfer-Encoding,
// Expect, Upgrade or Connection option other than keep-alive, a head of at
// most one buffer (4 KiB). The first request that is anything else —
// another path, odd or malformed input — is left to net/http with the
// bytes the lane read, on an HTTP/1-only server, which then decides and
// words any error as before; connections under TLS never move.
//
// What differs from net/http, on purpose or by its reach:
//   - a request's context is the connection's while it is on the lane: it
//     is not canceled when the request ends or the client goes away (the
//     push handlers do not wait on it);
//   - a body the handler refused through http.MaxBytesReader is skipped
//     when less than 256 KiB of it is left, and the connection kept
//     (net/http closes it): the lane cannot see that refusal;
//   - informational (1xx) answers and trailers are not sent.
//
// Lock order: Lane.mu before a lane's mu.
package fastlane
