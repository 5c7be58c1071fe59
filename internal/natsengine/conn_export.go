package natsengine

import "github.com/nats-io/nats.go"

// Conn returns the engine's NATS connection (nil before Start and after
// Close), for packages that keep their own JetStream state on it
// (presence, the webhook outbox).
func (e *Engine) Conn() *nats.Conn { return e.conn() }
