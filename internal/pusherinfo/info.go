// Package pusherinfo keeps the user_info of Pusher presence channel
// members, cluster-wide, in a JetStream key-value bucket: what a member's
// channel_data said when it subscribed, so that any node can list the
// members of a presence channel with their info and announce an arrival
// with it.
//
// It stores and reads; who is present is decided by package presence, not
// here. Safe for concurrent use once Bind returned.
package pusherinfo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket's name.
const Bucket = "HERALD_PUSHER_MEMBERS"

// Store is the members' info bucket.
type Store struct {
	replicas int
	kv       jetstream.KeyValue
}

// New returns a store with replicas copies of its bucket; Bind opens it.
func New(replicas int) *Store { return &Store{replicas: max(1, replicas)} }

// Bind creates (or binds) the bucket on nc; it may be called again after a
// failure.
func (s *Store) Bind(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("pusherinfo: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket,
		Storage: jetstream.FileStorage, Replicas: s.replicas, History: 1})
	if err != nil {
		return fmt.Errorf("pusherinfo: bucket: %w", err)
	}
	s.kv = kv
	return nil
}

// ErrNotBound is returned before Bind succeeded.
var ErrNotBound = errors.New("pusherinfo: bucket not open")

// tok encodes a key token: any string fits ("-" is the empty string).
func tok(s string) string {
	if s == "" {
		return "-"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func key(app, room, user string) string { return tok(app) + "." + tok(room) + "." + tok(user) }

// Set stores user's info in app's presence channel room.
func (s *Store) Set(ctx context.Context, app, room, user string, info json.RawMessage) error {
	if s.kv == nil {
		return ErrNotBound
	}
	if len(info) == 0 {
		info = json.RawMessage(`null`)
	}
	if _, err := s.kv.Put(ctx, key(app, room, user), info); err != nil {
		return fmt.Errorf("pusherinfo: storing %s: %w", room, err)
	}
	return nil
}

// Get returns user's info in room (JSON null if none is stored) and the
// revision it was read at (0: none). Like Infos it reads through the
// stream's leader: a replica's direct get may not have an info stored on
// another node a moment ago.
func (s *Store) Get(ctx context.Context, app, room, user string) (json.RawMessage, uint64, error) {
	info, rev := json.RawMessage(`null`), uint64(0)
	err := s.read(ctx, key(app, room, user), func(e jetstream.KeyValueEntry) {
		info, rev = e.Value(), e.Revision()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("pusherinfo: reading %s: %w", room, err)
	}
	return info, rev, nil
}

// Forget removes user's info in room if it is still at revision rev (a
// member who came back meanwhile keeps the info it stored again).
func (s *Store) Forget(ctx context.Context, app, room, user string, rev uint64) error {
	if s.kv == nil {
		return ErrNotBound
	}
	err := s.kv.Purge(ctx, key(app, room, user), jetstream.LastRevision(rev))
	var apiErr *jetstream.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return fmt.Errorf("pusherinfo: forgetting %s: %w", room, err)
	}
	return nil
}

// Infos returns the info of each of users in room (JSON null for one with
// none stored), read in one pass over the room's entries.
func (s *Store) Infos(ctx context.Context, app, room string, users []string) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(users))
	for _, u := range users {
		out[u] = json.RawMessage(`null`)
	}
	if len(users) == 0 {
		return out, nil
	}
	prefix := len(tok(app)) + len(tok(room)) + 2
	err := s.read(ctx, tok(app)+"."+tok(room)+".*", func(e jetstream.KeyValueEntry) {
		b, err := base64.RawURLEncoding.DecodeString(e.Key()[prefix:])
		if _, want := out[string(b)]; err == nil && want {
			out[string(b)] = e.Value()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("pusherinfo: listing %s: %w", room, err)
	}
	return out, nil
}

// read calls fn with the current entry of each key matching filter.
func (s *Store) read(ctx context.Context, filter string, fn func(jetstream.KeyValueEntry)) error {
	if s.kv == nil {
		return ErrNotBound
	}
	w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("watcher stopped")
			case e == nil: // the current values are all in
				return nil
			}
			fn(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
