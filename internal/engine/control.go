package engine

import (
	"context"
	"errors"
)

// ErrNoNode is returned by Control.Ask when no node of that id listens: it
// stopped, or never was.
var ErrNoNode = errors.New("engine: no such node")

// ControlHandler answers one control request from this node's own state.
// It must answer promptly and must not retain req.
type ControlHandler func(req []byte) []byte

// Control carries the server API's requests to the node that holds what
// they are about (a connection lives on one node only), so that queries,
// kicks and room membership work on the whole cluster.
type Control interface {
	// Serve answers the requests addressed to this node with h, one at a
	// time, until the engine closes. Call it once, after the engine started.
	// Other nodes may see it only a moment after it returns.
	Serve(ctx context.Context, h ControlHandler) error
	// Ask sends req to node and returns its answer: ErrNoNode at once when
	// no such node listens, ctx's error when it does not answer in time.
	Ask(ctx context.Context, node string, req []byte) ([]byte, error)
}
