package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned for a record that does not exist.
var ErrNotFound = errors.New("engine: not found")

// UserSeq is where one message landed in one user's inbox.
type UserSeq struct {
	User string `json:"u"`
	Seq  uint64 `json:"s"`
}

// MessageRecord is what the engine keeps about one stored push: enough to
// report its status and to recall it.
type MessageRecord struct {
	ID       string        `json:"id"`
	App      string        `json:"app"`
	Created  time.Time     `json:"created"`
	TTL      time.Duration `json:"ttl"`
	Users    []UserSeq     `json:"users"`
	Recalled bool          `json:"recalled,omitempty"`
}

// Records keeps message records and each user's delivered position (the
// highest sequence written to any live connection of the user). Records
// are scoped by app like inboxes. Safe for concurrent use, also by several
// processes sharing one backend.
type Records interface {
	// PutRecord stores a record (replacing one with the same app and id).
	PutRecord(ctx context.Context, r MessageRecord) error
	// PutBatch stores the records of one batch of messages: those whose id
	// is BatchID(batch, i) for some i together, in one write, any others
	// as PutRecord would (in the same round trip). Record and Recall find
	// them all as they find the others.
	PutBatch(ctx context.Context, app, batch string, rs []MessageRecord) error
	// Record returns the record of app's message id, or ErrNotFound.
	Record(ctx context.Context, app, id string) (MessageRecord, error)
	// Recall marks the record recalled and returns it as it was before, or
	// ErrNotFound.
	Recall(ctx context.Context, app, id string) (MessageRecord, error)
	// Delivered raises the user's delivered position to seq; it never
	// lowers it.
	Delivered(ctx context.Context, app, user string, seq uint64) error
	// DeliveredSeq returns the user's delivered position (0 if none).
	DeliveredSeq(ctx context.Context, app, user string) (uint64, error)
}

// BatchID is the id of message i of the batch of records stored together
// under batch (see Records.PutBatch).
func BatchID(batch string, i int) string { return batch + "-" + strconv.Itoa(i) }

// SplitBatchID returns the batch of an id made by BatchID.
func SplitBatchID(id string) (batch string, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || i == len(id)-1 {
		return "", false
	}
	if _, err := strconv.Atoi(id[i+1:]); err != nil {
		return "", false
	}
	return id[:i], true
}
