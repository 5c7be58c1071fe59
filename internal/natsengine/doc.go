// Package natsengine is the NATS engine: the connection to either a NATS
// server embedded in the process (JetStream in the data directory, no
// network listener unless clustering) or an external NATS cluster, and on it
// the engine.Broker, engine.Nodes, engine.Control and engine.Records, with
// the embedded store's health. The engine.Inbox built on the same
// connection is package natsinbox, beside it; it registers its readiness
// with RequireReady.
//
// Live pushes ride core NATS subjects, one per user, room, app and node, so
// NATS interest routing is the route table. Subscriptions are channel
// subscriptions into a few shared dispatcher channels (one goroutine each,
// chosen by subject hash so a topic's order is kept), never a goroutine per
// subscription. The Engine owns its dispatcher goroutines: Start starts them
// and Close stops them and waits.
package natsengine
