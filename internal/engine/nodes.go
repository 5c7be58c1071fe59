package engine

import (
	"context"
	"time"
)

// NodeInfo is one live node as the registry shows it.
type NodeInfo struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr"` // host:port that clients and the API reach
	Conns     int       `json:"conns"`
	Load      float64   `json:"load"` // connections / the node's connection capacity
	Version   string    `json:"version"`
	Heartbeat time.Time `json:"heartbeat"`
	// Draining: the node takes no new connections and is moving its
	// clients away; it is not offered to clients, but still holds
	// connections until it exits.
	Draining bool `json:"draining,omitempty"`
	// Uptime is how long the node's process has run, in whole seconds;
	// CPU the process's CPU use, in percent of one core, over the last
	// few seconds; RSS its resident memory in bytes. (Zero where the
	// system does not tell: these come from /proc/self on Linux.)
	Uptime int64   `json:"uptime,omitempty"`
	CPU    float64 `json:"cpu,omitempty"`
	RSS    int64   `json:"rss,omitempty"`
}

// Nodes is the registry of live nodes. Each node announces itself
// periodically; an entry not announced again within the registry's TTL
// disappears by itself.
type Nodes interface {
	// Announce records (or refreshes) a node.
	Announce(ctx context.Context, n NodeInfo) error
	// Leave removes a node at once.
	Leave(ctx context.Context, id string) error
	// List returns the live nodes, sorted by id.
	List(ctx context.Context) ([]NodeInfo, error)
}
