package natsengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats.go/jetstream"
)

// Nodes is engine.Nodes on the key-value bucket HERALD_NODES (in memory;
// key = node id, value = the node's info as JSON), whose TTL makes the
// entry of a node that stopped announcing itself disappear.
type Nodes struct {
	e   *Engine
	ttl time.Duration

	mu sync.Mutex // guards opening the bucket
	kv jetstream.KeyValue
}

var _ engine.Nodes = (*Nodes)(nil)

// Nodes returns the engine's node registry; entries live for ttl after
// their last announcement. The bucket is created on first use.
func (e *Engine) Nodes(ttl time.Duration) *Nodes { return &Nodes{e: e, ttl: ttl} }

func (n *Nodes) open(ctx context.Context) (jetstream.KeyValue, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kv != nil {
		return n.kv, nil
	}
	nc := n.e.Conn()
	if nc == nil {
		return nil, engine.ErrUnavailable
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cfg := jetstream.KeyValueConfig{Bucket: "HERALD_NODES", TTL: n.ttl, Storage: jetstream.MemoryStorage, Replicas: n.e.Replicas()}
	kv, err := openKV(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsengine: nodes bucket: %w", errors.Join(engine.ErrUnavailable, err))
	}
	n.kv = kv
	return kv, nil
}

// Announce implements engine.Nodes.
func (n *Nodes) Announce(ctx context.Context, info engine.NodeInfo) error {
	kv, err := n.open(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(info)
	if _, err := kv.Put(ctx, kvToken(info.ID), b); err != nil {
		return fmt.Errorf("natsengine: announcing node %s: %w", info.ID, err)
	}
	return nil
}

// Leave implements engine.Nodes.
func (n *Nodes) Leave(ctx context.Context, id string) error {
	kv, err := n.open(ctx)
	if err != nil {
		return err
	}
	if err := kv.Purge(ctx, kvToken(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsengine: node %s leaving: %w", id, err)
	}
	return nil
}

// List implements engine.Nodes.
func (n *Nodes) List(ctx context.Context) ([]engine.NodeInfo, error) {
	kv, err := n.open(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsengine: listing nodes: %w", err)
	}
	defer keys.Stop()
	var out []engine.NodeInfo
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // left or expired meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("natsengine: reading node %s: %w", k, err)
		}
		var info engine.NodeInfo
		if err := json.Unmarshal(e.Value(), &info); err != nil {
			return nil, fmt.Errorf("natsengine: node %s: %w", k, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
