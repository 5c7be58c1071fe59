package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keys lists the bucket's live keys matching filter, within the engine
// timeout.
func (t *Tracker) keys(ctx context.Context, filter string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	kl, err := t.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, err
	}
	defer kl.Stop()
	var out []string
	for k := range kl.Keys() {
		out = append(out, k)
	}
	return out, ctx.Err()
}

// sweepNode takes over what node left: its connection records are
// reported lost and its scopes departed. roster, if set, is the roster key
// to drop afterwards.
func (t *Tracker) sweepNode(ctx context.Context, node, roster string) error {
	now := time.Now()
	conns, err := t.keys(ctx, "c."+tok(node)+".*")
	if err != nil {
		return fmt.Errorf("presence: listing connections of %s: %w", node, err)
	}
	for _, k := range conns {
		e, err := t.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("presence: reading %s: %w", k, err)
		}
		var c Conn
		if json.Unmarshal(e.Value(), &c) != nil {
			c = Conn{Node: node}
		}
		// Whoever removes the record reports it: once.
		err = t.kv.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
		if conflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("presence: removing %s: %w", k, err)
		}
		t.sink.ConnClosed(ctx, c, CodeLost, now)
	}
	prefix := "x." + tok(node) + "."
	idx, err := t.keys(ctx, prefix+">")
	if err != nil {
		return fmt.Errorf("presence: listing scopes of %s: %w", node, err)
	}
	for _, k := range idx {
		owned := false
		if s, err := parseTail(strings.TrimPrefix(k, prefix)); err == nil {
			if owned, err = t.takeOver(ctx, s, node, now); err != nil {
				return err
			}
		}
		// This node's own index entry stays while it owns the departure.
		if node != t.cfg.NodeID || !owned {
			if err := t.kv.Purge(ctx, k); err != nil {
				return fmt.Errorf("presence: removing %s: %w", k, err)
			}
		}
	}
	if roster == "" {
		return nil
	}
	t.cfg.Logger.Info("presence: swept a dead node", "node", node, "conns", len(conns), "scopes", len(idx))
	// A listing may come back short (its consumer moved while the cluster
	// changed leaders): the roster entry goes only once nothing is left.
	for _, f := range []string{"c." + tok(node) + ".*", prefix + ">"} {
		left, err := t.keys(ctx, f)
		if err != nil {
			return fmt.Errorf("presence: listing what %s left: %w", node, err)
		}
		if len(left) > 0 {
			return fmt.Errorf("presence: sweeping %s: %w (%d keys)", node, errSweepAgain, len(left))
		}
	}
	if err := t.kv.Purge(ctx, roster); err != nil {
		return fmt.Errorf("presence: removing %s: %w", roster, err)
	}
	return nil
}

var errSweepAgain = errors.New("keys left behind; sweeping again")

// takeOver removes dead from s's entry and takes over its departure (or
// starts one, at at, if dead was the last node in s). It reports whether
// this node now owns s's departure.
func (t *Tracker) takeOver(ctx context.Context, s Scope, dead string, at time.Time) (bool, error) {
	self := t.cfg.NodeID
	for {
		st, rev, err := t.getLeader(ctx, s)
		if err != nil || rev == 0 {
			return false, err
		}
		changed := false
		if st.Nodes[dead] {
			delete(st.Nodes, dead)
			changed = true
		}
		if st.Leaving != nil && st.Leaving.Owner == dead && dead != self {
			st.Leaving.Owner = self
			changed = true
		}
		if changed && len(st.Nodes) == 0 && st.Leaving == nil {
			st.Leaving = &leaving{Owner: self, At: at}
		}
		if changed {
			if st.Leaving != nil && st.Leaving.Owner == self && dead != self {
				if _, err := t.kv.Put(ctx, s.index(self), nil); err != nil {
					return false, fmt.Errorf("presence: indexing %s: %w", s.key(), err)
				}
			}
			ok, err := t.put(ctx, s, st, rev)
			if err != nil {
				return false, err
			}
			if !ok {
				continue
			}
		}
		if st.Leaving != nil && st.Leaving.Owner == self {
			t.own(s)
			return true, nil
		}
		return false, nil
	}
}

// Members returns the users present in an app's room, sorted, at most
// limit after cursor (exclusive; "" from the start), and the cursor of
// the next page ("" on the last).
func (t *Tracker) Members(ctx context.Context, app, room, cursor string, limit int) ([]string, string, error) {
	if t.kv == nil {
		return nil, "", ErrClosed
	}
	keys, err := t.keys(ctx, membersFilter(app, room))
	if err != nil {
		return nil, "", fmt.Errorf("presence: listing members of %s: %w", room, err)
	}
	users := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		u, err := untok(k[strings.LastIndexByte(k, '.')+1:])
		if err != nil || seen[u] || cursor != "" && u <= cursor {
			continue
		}
		seen[u] = true
		users = append(users, u)
	}
	sort.Strings(users)
	if limit > 0 && len(users) > limit {
		return users[:limit], users[limit-1], nil
	}
	return users, "", nil
}
