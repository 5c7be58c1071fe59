package natsengine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kvEntry is a key's latest value and its revision.
type kvEntry struct {
	value    []byte
	revision uint64
}

// leaderGet reads key of bucket from the bucket stream's leader. A
// key-value Get is a direct get, which any replica answers, and a replica
// behind the leader may not have a write that was just acknowledged; the
// record store's reads (status right after a push, a recall's
// compare-and-set) must see it. Absent, deleted or purged:
// jetstream.ErrKeyNotFound.
func leaderGet(ctx context.Context, nc *nats.Conn, bucket, key string) (kvEntry, error) {
	req, _ := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return kvEntry{}, err
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
		return kvEntry{}, fmt.Errorf("reading %s: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return kvEntry{}, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return kvEntry{}, resp.Error
	case resp.Message == nil:
		return kvEntry{}, fmt.Errorf("reading %s: an answer without a message", key)
	case bytes.Contains(resp.Message.Hdrs, []byte("KV-Operation")):
		return kvEntry{}, jetstream.ErrKeyNotFound // a delete or purge marker
	}
	return kvEntry{value: resp.Message.Data, revision: resp.Message.Seq}, nil
}
