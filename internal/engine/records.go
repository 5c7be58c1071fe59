package engine

import (
	"context"
	"errors"
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
	// PutRecords stores several records in one round trip.
	PutRecords(ctx context.Context, rs []MessageRecord) error
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
