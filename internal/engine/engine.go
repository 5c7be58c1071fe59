// Package engine declares the small interfaces Herald's cross-node layer is
// built on, so that the gateway and the push service never name a concrete
// backend. The NATS implementation lives in package natsengine; package
// enginetest holds the conformance suite every implementation must pass.
package engine

import (
	"context"
	"errors"
)

// Kind is what a Topic addresses.
type Kind uint8

// Topic kinds.
const (
	User Kind = iota + 1 // one user of an app
	Room                 // one room of an app
	App                  // every connection of an app
	All                  // every connection of every app
	Node                 // one node (connection-addressed pushes and control)
)

// Topic is an address pushes are published to and watched on.
type Topic struct {
	Kind Kind
	App  string // empty for All and Node
	Name string // user, room or node id; empty for App and All
}

// ErrUnavailable is returned when the engine cannot be reached.
var ErrUnavailable = errors.New("engine: unavailable")

// Handler receives the payloads published to watched topics. Payloads of
// one topic arrive in publish order. One call may carry several payloads
// that were already waiting (a burst); an engine never waits to fill one.
// The handler must not retain the payloads after it returns.
type Handler func(payloads [][]byte)

// Broker moves pushes between nodes. Interest is reference counted: a topic
// is subscribed while its Watch count is above zero. A broker may deliver
// more than was watched (a node that is the whole cluster can take every
// topic at once); handlers must ignore pushes for targets they do not hold.
type Broker interface {
	// Publish sends payload to every node watching t.
	Publish(ctx context.Context, t Topic, payload []byte) error
	// Watch adds one reference of interest in t.
	Watch(t Topic) error
	// Unwatch drops one reference of interest in t.
	Unwatch(t Topic) error
	// Ready reports whether the engine is reachable now.
	Ready(ctx context.Context) error
}
