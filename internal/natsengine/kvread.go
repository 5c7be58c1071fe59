package natsengine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderAttempt bounds one read from a stream leader: a stream without a
// leader (just created, or electing one) leaves the request unanswered.
const leaderAttempt = time.Second

// kvRead reads key of a key-value bucket so that a write acknowledged
// before the call is seen. A key-value Get is a direct get, which any
// replica answers, and a replica behind the leader may miss a write that
// was just acknowledged; the record store's reads (a status right after a
// push, a recall's compare-and-set) must not. So a replicated bucket is
// read from its stream's leader, in attempts of leaderAttempt while ctx
// allows up to three; when no leader answers, the direct get is the best
// left. Absent, deleted or purged: jetstream.ErrKeyNotFound.
func kvRead(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, replicas int, key string) ([]byte, uint64, error) {
	if replicas > 1 {
		for range 3 {
			v, rev, err := leaderGet(ctx, nc, kv.Bucket(), key)
			if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) {
				return v, rev, err
			}
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
		}
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// leaderGet asks the leader of bucket's stream for key's latest message,
// waiting at most leaderAttempt.
func leaderGet(ctx context.Context, nc *nats.Conn, bucket, key string) ([]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, leaderAttempt)
	defer cancel()
	req, _ := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, 0, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, 0, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return nil, 0, resp.Error
	case resp.Message == nil:
		return nil, 0, fmt.Errorf("reading %s: an answer without a message", key)
	case bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation")):
		return nil, 0, jetstream.ErrKeyNotFound // a delete or purge marker
	}
	return resp.Message.Data, resp.Message.Seq, nil
}
