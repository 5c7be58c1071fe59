package cluster

import (
	"context"
	"math"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/push"
)

// Route names a node for a new connection.
type Route struct {
	Node string
	URL  string // ws://host:port/v1/ws
	Load float64
}

// Nodes lists the live nodes that take connections (a draining node is
// left out), with this node's own entry brought up to date (the registry
// holds what it last announced). While the registry does not answer, it
// lists the nodes of the last list read (see listNodes).
func (o *Ops) Nodes(ctx context.Context) ([]engine.NodeInfo, error) {
	return o.nodes(ctx, false)
}

// AllNodes is Nodes with the draining nodes listed too (they hold
// connections until they exit).
func (o *Ops) AllNodes(ctx context.Context) ([]engine.NodeInfo, error) {
	return o.nodes(ctx, true)
}

func (o *Ops) nodes(ctx context.Context, draining bool) ([]engine.NodeInfo, error) {
	list, err := o.listNodes(ctx)
	if err != nil {
		return nil, err
	}
	self := o.Self()
	out := make([]engine.NodeInfo, 0, len(list)+1)
	listed := false
	for _, n := range list {
		if n.ID == self.ID {
			self.Addr = n.Addr
			n, listed = self, true
		}
		if draining || !n.Draining {
			out = append(out, n)
		}
	}
	if !listed && (draining || !self.Draining) { // not announced yet
		out = append(out, self)
	}
	return out, nil
}

// Route names the least-loaded live node that takes connections, and its
// WebSocket URL.
func (o *Ops) Route(ctx context.Context) (Route, error) {
	list, err := o.Nodes(ctx)
	if err != nil {
		return Route{}, err
	}
	if len(list) == 0 {
		return Route{}, push.Errorf(push.CodeUnavailable, "no node takes connections now")
	}
	best := list[0]
	for _, n := range list[1:] {
		if n.Load < best.Load {
			best = n
		}
	}
	return Route{Node: best.ID, URL: "ws://" + best.Addr + "/v1/ws", Load: best.Load}, nil
}

// Self reports this node as the registry should show it now.
func (o *Ops) Self() engine.NodeInfo {
	n := o.hub.Counts()
	load := 0.0
	if o.cfg.MaxConn > 0 {
		load = math.Round(float64(n.Conns)/float64(o.cfg.MaxConn)*1e4) / 1e4
	}
	uptime, cpu, rss := o.proc.sample()
	return engine.NodeInfo{ID: o.cfg.NodeID, Addr: o.cfg.Addr, Conns: n.Conns, Load: load,
		Version: o.cfg.Version, Heartbeat: time.Now().UTC(), Draining: o.draining.Load(),
		Uptime: uptime, CPU: cpu, RSS: rss}
}

// Announce keeps this node in the registry, reachable at addr: now, every
// period, and at once when it starts draining. When stop closes it removes
// the entry and returns. ctx is the node's lifetime: it bounds every
// registry call (each also by the engine timeout), the removal included,
// and ending it ends Announce.
func (o *Ops) Announce(ctx context.Context, stop <-chan struct{}, addr string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		info := o.Self()
		info.Addr = addr
		actx, cancel := context.WithTimeout(ctx, o.cfg.EngineTimeout)
		if err := o.registry.Announce(actx, info); err != nil && ctx.Err() == nil {
			o.cfg.Log.Warn("announcing this node", "err", err)
		}
		if !o.cfg.Alone {
			// Keeps the list queries fall back on fresh (see listNodes).
			_, _ = o.listNodes(actx)
		}
		cancel()
		select {
		case <-stop:
			lctx, cancel := context.WithTimeout(ctx, o.cfg.EngineTimeout)
			if err := o.registry.Leave(lctx, o.cfg.NodeID); err != nil {
				o.cfg.Log.Warn("leaving the node registry", "err", err)
			}
			cancel()
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
		}
	}
}

// Drain is what a drain call started.
type Drain struct {
	Node    string
	Conns   int           // connections to move away
	Time    time.Duration // over which they are closed; 0 when Already
	Already bool          // the node was draining already; this call changed nothing
}

// Drain starts draining this node: from now on it takes no new connection
// (503) and is not ready; it is announced as draining at once, so no node
// lists it in Nodes or names it in Route any more, while cluster operations
// still reach its connections. The server then closes its clients with the
// reconnect code, spread over over (nil: the configured drain time), and
// exits (see Drains). A second call changes nothing.
func (o *Ops) Drain(over *time.Duration) (Drain, error) {
	d := Drain{Node: o.cfg.NodeID, Conns: o.hub.Counts().Conns, Time: o.cfg.DrainTime}
	if over != nil {
		if *over < 0 || *over > MaxDrainTime {
			return Drain{}, push.Errorf(push.CodeInvalidArgument, "drain time must be from 0 to %v", MaxDrainTime)
		}
		d.Time = *over
	}
	if !o.draining.CompareAndSwap(false, true) {
		d.Already, d.Time = true, 0
		return d, nil
	}
	o.gw.StopAccepting()
	o.drains <- d.Time
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return d, nil
}

// DrainNode is Drain run on the node named node (this one when it is
// empty): CodeNotFound when no such node is live, CodeUnavailable when it
// does not answer in time.
func (o *Ops) DrainNode(ctx context.Context, node string, over *time.Duration) (Drain, error) {
	if node == "" || node == o.cfg.NodeID {
		return o.Drain(over)
	}
	if over != nil && (*over < 0 || *over > MaxDrainTime) {
		return Drain{}, push.Errorf(push.CodeInvalidArgument, "drain time must be from 0 to %v", MaxDrainTime)
	}
	r := &request{Op: opDrain}
	if over != nil {
		r.Time = over.String()
	}
	answers, err := o.ask(ctx, []string{node}, r)
	if err != nil {
		return Drain{}, err
	}
	if answers[0].Drain == nil {
		return Drain{}, push.Errorf(push.CodeNotFound, "no live node %q", node)
	}
	return *answers[0].Drain, nil
}

// localDrain runs a drain request from another node.
func (o *Ops) localDrain(r *request) answer {
	var over *time.Duration
	if r.Time != "" {
		d, err := time.ParseDuration(r.Time)
		if err != nil {
			return answer{Err: "drain: bad time"}
		}
		over = &d
	}
	d, err := o.Drain(over)
	if err != nil {
		return answer{Err: err.Error()}
	}
	return answer{Drain: &d}
}

// MaxDrainTime bounds the time a drain may take.
const MaxDrainTime = 24 * time.Hour

// Draining reports whether Drain was called.
func (o *Ops) Draining() bool { return o.draining.Load() }

// Drains delivers the time of the drain once Drain is called: the server
// then closes the clients over that time and stops.
func (o *Ops) Drains() <-chan time.Duration { return o.drains }
