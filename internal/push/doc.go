// Package push is the one place that decides what a push means: it validates
// targets and payloads, assigns message ids, applies idempotency keys,
// encodes each message once and publishes it to the engine topics of its
// targets. On the receiving side it turns an engine payload back into one
// shared frame and hands it to the hub. The HTTP API, the gRPC API, the
// admin UI and client send frames are thin adapters over Service.
//
// Concurrency: Service is safe for concurrent use; its only mutable state is
// the idempotency table and the recent-id filter, each behind a mutex, and
// counters updated atomically.
package push
