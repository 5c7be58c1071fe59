package engine

import (
	"context"
	"errors"
	"time"
)

// ErrInvalidArgument is returned by a backend call whose arguments can never
// succeed (for example a non-positive TTL).
var ErrInvalidArgument = errors.New("engine: invalid argument")

// StoredMessage is one message in a user's inbox.
type StoredMessage struct {
	Seq     uint64 // the user's sequence number
	ID      string // message id (the push's id)
	Payload []byte // opaque to the engine (the push service's encoding)
	Created time.Time
	Expires time.Time
}

// Page is a read from one inbox.
type Page struct {
	// Msgs are the stored, unexpired messages with seq > after, oldest
	// first, at most limit of them.
	Msgs []StoredMessage
	// Latest is the latest seq ever assigned in this inbox (0 if none).
	Latest uint64
	// Acked is the user's acked position.
	Acked uint64
	// Complete is false when a message with seq in (after, Latest] was lost
	// to expiry or to the per-user cap. A message removed by Remove does not
	// make a page incomplete, nor does limit cutting the page short. A page
	// cut short by limit may count a message beyond it that has expired
	// but is still stored as present: the page that would hold it reports
	// it, so a reader going through every page and ANDing Complete learns
	// of every loss.
	Complete bool
}

// Entry is one message for one user's inbox, for Inbox.AppendMany.
type Entry struct {
	User    string
	ID      string
	Payload []byte
	TTL     time.Duration
}

// Inbox stores per-user ordered messages durably. Users are scoped by app:
// the same user name in two apps names two inboxes. Any app and user string
// is allowed, including the empty one. An Inbox is safe for concurrent use,
// also by several processes sharing one backend.
type Inbox interface {
	// Append stores one message in each user's inbox (users of one app),
	// durably before it returns, and returns each user's newly assigned
	// sequence number in the order of users (a user listed twice gets one
	// message and its seq twice). Each user's sequence is that user's
	// previous latest + 1: contiguous, monotonic and never reused, also not
	// after every message of the user expired or was trimmed, and not after
	// a restart. ttl is the message's lifetime; ttl <= 0 is
	// ErrInvalidArgument. When Append fails, some of the users may have got
	// the message.
	Append(ctx context.Context, app string, users []string, id string, payload []byte, ttl time.Duration) ([]uint64, error)
	// Read returns the user's stored, unexpired messages with seq > after
	// (see Page). limit <= 0 means no limit.
	Read(ctx context.Context, app, user string, after uint64, limit int) (Page, error)
	// State returns the user's latest and acked sequence, cheaply (this runs
	// on every client connect).
	State(ctx context.Context, app, user string) (latest, acked uint64, err error)
	// Ack raises the user's acked position to seq; it never lowers it. A seq
	// above Latest is not applied and Ack reports false; otherwise it
	// reports true (also when the position already was at or above seq).
	Ack(ctx context.Context, app, user string, seq uint64) (bool, error)
	// Remove deletes one message (recall); it reports whether it was still
	// stored. A removed message never comes back from Read and does not make
	// a page incomplete.
	Remove(ctx context.Context, app, user string, seq uint64) (bool, error)
	// AppendMany stores several messages, each in one user's inbox of app,
	// as len(entries) Appends made one after another would (so entries of
	// one user get increasing sequences in entry order), durably before it
	// returns, but in far fewer round trips. It returns each entry's seq;
	// errs[i] != nil means entry i was not stored (errs is nil when every
	// entry was stored).
	AppendMany(ctx context.Context, app string, entries []Entry) (seqs []uint64, errs []error)
}
