// Package herald is the Go SDK for Herald, a real-time push server.
//
// It has two halves, both speaking the documented v1 wire protocol:
//
//   - Client calls the server API (docs/api.md) for a backend: push and
//     batch push, room membership, user and room queries, kicks, message
//     status and recall, stats, nodes, route and drain. Every call takes a
//     context; an error answer is an *Error carrying the stable code and
//     the HTTP status. Idempotent calls (queries, recall, room membership,
//     drain, and pushes that carry an id, which Client gives every push by
//     default) are retried with exponential backoff and full jitter on
//     network errors and 503 unavailable.
//
//   - Conn is a client connection for Go programs (docs/protocol.md): it
//     authenticates with a token, delivers typed events on a channel,
//     reconnects with exponential backoff and full jitter, resumes from the
//     last sequence it saw so that nothing stored is lost or duplicated,
//     acks (by hand or automatically), rejoins its rooms (history rooms
//     from the last position seen) and pings as the protocol asks.
//
// Concurrency: a Client and a Conn are safe for concurrent use. A Conn owns
// two goroutines per live connection (its run loop and a reader); Close
// stops both and waits for them. Events must be drained: the connection
// does not read from the network while an event waits to be received (the
// server then closes it as a slow consumer and it resumes later).
package herald
