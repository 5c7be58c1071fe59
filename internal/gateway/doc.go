// Package gateway holds client connections: it upgrades HTTP requests to
// WebSocket, authenticates them, reads frames event-driven and writes
// through a bounded per-connection queue.
//
// No goroutine is parked per connection. A few poller goroutines wait on
// epoll and read whatever arrived into one shared buffer; a connection keeps
// only the tail of a frame that has not fully arrived. Writes go through the
// connection's bounded queue: the first frame queued on an idle connection
// puts it on the ready queue of a small pool of writers (one per core),
// which send everything queued with one non-blocking writev, merging queued
// push messages into one push frame, and requeue the connection if more
// arrived meanwhile; batches therefore grow exactly when the writers are
// behind. A socket too full to take a batch gets a goroutine of its own that
// waits for it (with the write deadline) until its queue is empty. A queue
// that grows past its byte limit closes the connection with the
// slow-consumer code, so one slow client never stalls another.
//
// Ownership: Gateway.Start starts the pollers, the writer pool and the
// heartbeat sweeper; Gateway.Shutdown closes every connection and stops
// them. A blocked connection's own writer exits when its queue drains or a
// write fails.
package gateway
