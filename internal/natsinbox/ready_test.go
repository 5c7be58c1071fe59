package natsinbox

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTransientJetStreamErrorsAreUnavailable: the JetStream errors of a
// cluster without a leader or a majority (what a node restarted while its
// peers are down gets) are engine.ErrUnavailable, which a starting node
// waits on; a refusal that will not pass by itself is not.
func TestTransientJetStreamErrorsAreUnavailable(t *testing.T) {
	for code, want := range map[jetstream.ErrorCode]bool{
		10008: true, 10009: true, 10004: true, 10023: true,
		jetstream.JSErrCodeJetStreamNotEnabled: false, jetstream.JSErrCodeStreamNotFound: false,
	} {
		err := unavailable("start", &jetstream.APIError{Code: 503, ErrorCode: code, Description: "x"})
		if got := errors.Is(err, engine.ErrUnavailable); got != want {
			t.Errorf("err_code %d: unavailable is %v; want %v (%v)", code, got, want, err)
		}
	}
}

// TestQuorum: a replicated inbox stream serves only with a leader and a
// majority of replicas heard from lately.
func TestQuorum(t *testing.T) {
	peer := func(active time.Duration, offline bool) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: "p", Active: active, Offline: offline}
	}
	info := func(replicas int, leader string, peers ...*jetstream.PeerInfo) *jetstream.StreamInfo {
		return &jetstream.StreamInfo{Config: jetstream.StreamConfig{Replicas: replicas},
			Cluster: &jetstream.ClusterInfo{Leader: leader, Replicas: peers}}
	}
	for _, tc := range []struct {
		name  string
		info  *jetstream.StreamInfo
		ready bool
	}{
		{"one replica", &jetstream.StreamInfo{Config: jetstream.StreamConfig{Replicas: 1}}, true},
		{"all up", info(3, "a", peer(time.Second, false), peer(time.Second, false)), true},
		{"one of three down", info(3, "a", peer(time.Second, false), peer(time.Minute, false)), true},
		{"no leader", info(3, "", peer(time.Second, false), peer(time.Second, false)), false},
		{"leader alone", info(3, "a", peer(time.Minute, false), peer(10*time.Second, false)), false},
		{"peers offline", info(3, "a", peer(0, true), peer(0, true)), false},
	} {
		if err := quorum(tc.info); (err == nil) != tc.ready || (err != nil && !errors.Is(err, engine.ErrUnavailable)) {
			t.Errorf("%s: %v; want ready %v", tc.name, err, tc.ready)
		}
	}
}
