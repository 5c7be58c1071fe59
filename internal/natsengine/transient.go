package natsengine

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream API errors that mean "not now" rather than "never": the
// cluster has no meta leader or no quorum yet (a node starting while its
// peers are down, an election under way). They are reported as
// engine.ErrUnavailable, which a starting node waits on and the API
// answers with 503.
const (
	errCodeClusterIncomplete    = 10004 // JSClusterIncompleteErr: incomplete results
	errCodeClusterNoPeers       = 10005 // JSClusterNoPeersErr: no suitable peers for placement (peers not all known yet; waiting says so if they never come)
	errCodeClusterNotAvailable  = 10008 // JSClusterNotAvailErr: JetStream system temporarily unavailable
	errCodeClusterNotLeader     = 10009 // JSClusterNotLeaderErr: JetStream cluster can not handle request
	errCodeInsufficientResource = 10023 // JSInsufficientResourcesErr: too few peers online to place the replicas
)

// JSTransient reports whether err is a JetStream API error that passes
// once the cluster has a leader and enough peers again.
func JSTransient(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case errCodeClusterIncomplete, errCodeClusterNoPeers, errCodeClusterNotAvailable, errCodeClusterNotLeader, errCodeInsufficientResource:
		return true
	}
	return false
}

// Unavailable reports whether err from a JetStream call means "not now":
// a transport failure or deadline, or a JSTransient API error; not another
// API error (the server refused the call for good) nor a cancellation.
func Unavailable(err error) bool {
	var ae *jetstream.APIError
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &ae):
		return JSTransient(err)
	}
	return true
}
