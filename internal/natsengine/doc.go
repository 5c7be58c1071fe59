// Package natsengine implements Herald's engine interfaces on NATS: either a
// NATS server embedded in the process (JetStream in the data directory, no
// network listener unless clustering) or an external NATS cluster.
//
// Live pushes ride core NATS subjects, one per user, room, app and node, so
// NATS interest routing is the route table. Subscriptions are channel
// subscriptions into a few shared dispatcher channels (one goroutine each,
// chosen by subject hash so a topic's order is kept), never a goroutine per
// subscription. The Engine owns its dispatcher goroutines: Start starts them
// and Close stops them and waits.
package natsengine
