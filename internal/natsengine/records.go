package natsengine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats.go/jetstream"
)

// Records is engine.Records on two JetStream key-value buckets:
// HERALD_MSG (key <app>.<id> → the record as JSON, kept for RecordTTL) and
// HERALD_DLV (key <app>.<user> → the delivered position in decimal,
// raised with compare-and-set so concurrent writers never lower it).
type Records struct {
	e   *Engine
	ttl time.Duration

	mu       sync.Mutex // guards opening the buckets
	js       jetstream.JetStream
	msgs     jetstream.KeyValue
	delivers jetstream.KeyValue
}

var _ engine.Records = (*Records)(nil)

// Records returns the engine's record store. Records outlive their message
// by ttl at least; the buckets are created on first use.
func (e *Engine) Records(ttl time.Duration) *Records { return &Records{e: e, ttl: ttl} }

// open creates or binds the buckets on first use (again after a failure).
func (r *Records) open(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.delivers != nil {
		return nil
	}
	nc := r.e.Conn()
	if nc == nil {
		return engine.ErrUnavailable
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	msgs, err := openKV(ctx, js, jetstream.KeyValueConfig{Bucket: "HERALD_MSG", TTL: r.ttl,
		Storage: jetstream.FileStorage, Replicas: r.e.Replicas()})
	if err != nil {
		return fmt.Errorf("natsengine: records bucket: %w", errors.Join(engine.ErrUnavailable, err))
	}
	delivers, err := openKV(ctx, js, jetstream.KeyValueConfig{Bucket: "HERALD_DLV",
		Storage: jetstream.FileStorage, Replicas: r.e.Replicas()})
	if err != nil {
		return fmt.Errorf("natsengine: delivered bucket: %w", errors.Join(engine.ErrUnavailable, err))
	}
	r.js, r.msgs, r.delivers = js, msgs, delivers
	return nil
}

// Replicas is how many copies JetStream keeps of Herald's state: the
// configured number, else three when Herald nodes cluster their embedded
// servers and one otherwise (a single server has no room for more; an
// external cluster needs Config.Replicas set).
func (e *Engine) Replicas() int {
	if e.cfg.Replicas > 0 {
		return e.cfg.Replicas
	}
	if e.cfg.Cluster != nil {
		return 3
	}
	return 1
}

// kvToken makes a name safe inside a key-value key: plain names as they
// are, others base64url behind '=' (a character plain names never hold).
func kvToken(s string) string { return escape(s, '=') }

func recordKey(app, id string) string { return kvToken(app) + "." + kvToken(id) }

// PutRecord implements engine.Records.
func (r *Records) PutRecord(ctx context.Context, rec engine.MessageRecord) error {
	if err := r.open(ctx); err != nil {
		return err
	}
	b, _ := json.Marshal(rec)
	if _, err := r.msgs.Put(ctx, recordKey(rec.App, rec.ID), b); err != nil {
		return fmt.Errorf("natsengine: storing record %s: %w", rec.ID, err)
	}
	return nil
}

// PutBatch implements engine.Records: the batch's members as one JSON
// array under the key <app>.=b.<batch> (record keys have two tokens, so it
// never meets one), the others under their own keys; all published at
// once, then one wait for the acknowledgements.
func (r *Records) PutBatch(ctx context.Context, app, batch string, rs []engine.MessageRecord) error {
	if err := r.open(ctx); err != nil {
		return err
	}
	var members []engine.MessageRecord
	var futures []jetstream.PubAckFuture
	put := func(key string, v any) error {
		b, _ := json.Marshal(v)
		f, err := r.js.PublishAsync("$KV.HERALD_MSG."+key, b)
		futures = append(futures, f)
		return err
	}
	for _, rec := range rs {
		if b, ok := engine.SplitBatchID(rec.ID); ok && b == batch {
			members = append(members, rec)
		} else if err := put(recordKey(app, rec.ID), rec); err != nil {
			return fmt.Errorf("natsengine: storing records: %w", err)
		}
	}
	if len(members) > 0 {
		if err := put(batchKey(app, batch), members); err != nil {
			return fmt.Errorf("natsengine: storing records: %w", err)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("natsengine: storing records: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("natsengine: storing records: %w", ctx.Err())
		}
	}
	return nil
}

func batchKey(app, batch string) string { return kvToken(app) + ".=b." + kvToken(batch) }

// Record implements engine.Records.
func (r *Records) Record(ctx context.Context, app, id string) (engine.MessageRecord, error) {
	rec, _, err := r.get(ctx, app, id)
	return rec, err
}

func (r *Records) get(ctx context.Context, app, id string) (engine.MessageRecord, uint64, error) {
	var rec engine.MessageRecord
	if err := r.open(ctx); err != nil {
		return rec, 0, err
	}
	v, rev, err := r.read(ctx, r.msgs, recordKey(app, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return r.batchMember(ctx, app, id)
	}
	if err != nil {
		return rec, 0, fmt.Errorf("natsengine: reading record %s: %w", id, err)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, 0, fmt.Errorf("natsengine: record %s: %w", id, err)
	}
	return rec, rev, nil
}

// batchMember finds the record of id in its batch's records (revision 0:
// it has no key of its own).
func (r *Records) batchMember(ctx context.Context, app, id string) (engine.MessageRecord, uint64, error) {
	batch, ok := engine.SplitBatchID(id)
	if !ok {
		return engine.MessageRecord{}, 0, engine.ErrNotFound
	}
	v, _, err := r.read(ctx, r.msgs, batchKey(app, batch))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return engine.MessageRecord{}, 0, engine.ErrNotFound
	}
	if err != nil {
		return engine.MessageRecord{}, 0, fmt.Errorf("natsengine: reading record %s: %w", id, err)
	}
	var rs []engine.MessageRecord
	if err := json.Unmarshal(v, &rs); err != nil {
		return engine.MessageRecord{}, 0, fmt.Errorf("natsengine: records of batch %s: %w", batch, err)
	}
	for _, rec := range rs {
		if rec.ID == id {
			return rec, 0, nil
		}
	}
	return engine.MessageRecord{}, 0, engine.ErrNotFound
}

// Recall implements engine.Records.
func (r *Records) Recall(ctx context.Context, app, id string) (engine.MessageRecord, error) {
	for {
		rec, rev, err := r.get(ctx, app, id)
		if err != nil || rec.Recalled {
			return rec, err
		}
		was := rec
		rec.Recalled = true
		b, _ := json.Marshal(rec)
		if rev == 0 {
			// A batch member gets a key of its own, recalled.
			_, err = r.msgs.Create(ctx, recordKey(app, id), b)
		} else {
			_, err = r.msgs.Update(ctx, recordKey(app, id), b, rev)
		}
		if err == nil {
			return was, nil
		}
		if !kvConflict(err) {
			return was, fmt.Errorf("natsengine: recalling %s: %w", id, err)
		}
	}
}

// read reads key of bucket kv, seeing every acknowledged write (kvRead).
func (r *Records) read(ctx context.Context, kv jetstream.KeyValue, key string) ([]byte, uint64, error) {
	return kvRead(ctx, r.e.Conn(), kv, r.e.Replicas(), key)
}

// Delivered implements engine.Records.
func (r *Records) Delivered(ctx context.Context, app, user string, seq uint64) error {
	if err := r.open(ctx); err != nil {
		return err
	}
	key := recordKey(app, user)
	for {
		v, rev, err := r.read(ctx, r.delivers, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = r.delivers.Create(ctx, key, strconv.AppendUint(nil, seq, 10))
		case err != nil:
			return fmt.Errorf("natsengine: delivered position: %w", err)
		default:
			cur, _ := strconv.ParseUint(string(v), 10, 64)
			if cur >= seq {
				return nil
			}
			_, err = r.delivers.Update(ctx, key, strconv.AppendUint(nil, seq, 10), rev)
		}
		if err == nil {
			return nil
		}
		if !kvConflict(err) {
			return fmt.Errorf("natsengine: delivered position: %w", err)
		}
	}
}

// DeliveredSeq implements engine.Records.
func (r *Records) DeliveredSeq(ctx context.Context, app, user string) (uint64, error) {
	if err := r.open(ctx); err != nil {
		return 0, err
	}
	v, _, err := r.read(ctx, r.delivers, recordKey(app, user))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("natsengine: delivered position: %w", err)
	}
	return strconv.ParseUint(string(v), 10, 64)
}
