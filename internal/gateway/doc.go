// Package gateway holds client connections: it upgrades HTTP requests to
// WebSocket, authenticates them, reads frames event-driven and writes
// through a bounded per-connection queue.
//
// No goroutine is parked per connection. A few poller goroutines wait on
// epoll and read whatever arrived into one shared buffer; a connection keeps
// only the tail of a frame that has not fully arrived. Writes go through the
// connection's queue: the first frame queued on an idle connection starts a
// writer goroutine that sends everything queued with one writev per round,
// merging queued push messages into one push frame, and exits when the queue
// is empty. A queue that grows past its byte limit closes the connection
// with the slow-consumer code, so one slow client never stalls another.
//
// Ownership: Gateway.Start starts the pollers and the heartbeat sweeper;
// Gateway.Shutdown closes every connection and stops them. Each writer
// goroutine belongs to its connection and exits when the queue drains or a
// write fails.
package gateway
