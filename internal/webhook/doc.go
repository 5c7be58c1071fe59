// Package webhook delivers Herald's lifecycle events to HTTP endpoints,
// signed as the Standard Webhooks specification says, at least once.
// A Pusher-format endpoint (Endpoint.PusherKey) gets the same stream's
// room and presence events (and, with PusherClientEvents, client events)
// as Pusher Channels webhooks instead: {"time_ms","events":[…]} batches
// of up to 20 events collected within 250 ms, signed with X-Pusher-Key
// and X-Pusher-Signature. Its consumer lets 20 events be outstanding and
// pins one node (a priority group with the pinned policy; PinnedTTL is
// AckWait, or Timeout + AckWait/2 if longer): that node alone pulls and
// sends one batch at a time, in stream order; while it retries a batch it
// keeps pulling, which keeps its pin, and sends what it took after the
// batch. A pinned node that dies is replaced within PinnedTTL. A batch's
// events are dead-lettered one by one, each when it is RetryFor old; the
// rest are retried in a new body (time_ms: when a body was built).
//
// Emit writes an event into a JetStream stream (the outbox) before any
// attempt is made. Each configured (Standard Webhooks) endpoint has one
// durable consumer of that stream allowing a single unacknowledged
// message, so exactly one node of the cluster posts to an endpoint at a
// time and the endpoint sees events one by one in the order the stream
// stored them. A failed
// attempt is retried with full-jitter exponential backoff (the k-th retry
// waits a random time in [0, min(MaxBackoff, BaseBackoff·2^(k−1))]) until
// the event is RetryFor old; then it moves to a dead-letter stream that
// Dead lists and Replay sends again. A node that dies mid-delivery leaves
// its message unacknowledged and another node (or the restarted one)
// delivers it after the consumer's ack wait. EmitSure offers an event
// again while the stream cannot be written (for what must not be lost to
// a leader election). message.expired comes from a durable schedule of
// expiry checks (ExpireLater, SetExpiryCheck; see expiry.go).
//
// The package owns the signing, the streams and consumers and the HTTP
// client; it knows nothing of connections or presence (the caller says
// what happened through Emit). Concurrency: Emit, EmitSure, ExpireLater,
// Dead, Replay and Stats are safe for concurrent use; each endpoint's
// sender is one goroutine, and so is the node's share of the expiry
// schedule, started by Start and stopped by Close.
package webhook
