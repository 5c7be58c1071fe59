package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Expiry: message.expired is reported from a durable schedule. When a
// stored message's app has an endpoint listing the type, the push service
// calls ExpireLater with the message's copies; the entry waits in a
// JetStream stream (one shared durable consumer, the entry handed back
// with a delay until it is due). When it is due, whichever node holds it
// asks the ExpiryCheck, for each copy, whether it ended unacked (neither
// acked nor recalled) and emits message.expired for those, stamped with
// the expiry time; then the entry goes. A node that dies holding an entry
// leaves it unacknowledged and another node takes it over after the ack
// wait, so an event may come twice (at least once), never not at all.

// Copy is one user's copy of a stored message.
type Copy struct {
	User string `json:"user"`
	Seq  uint64 `json:"seq"`
}

// ExpiryCheck reports whether app's message id, stored for user at seq,
// ended unacked: neither acked nor recalled.
type ExpiryCheck func(ctx context.Context, app, id, user string, seq uint64) (bool, error)

type expiryEntry struct {
	App    string    `json:"app"`
	ID     string    `json:"id"`
	Copies []Copy    `json:"copies"`
	At     time.Time `json:"at"`  // when the message expired: the events' timestamp
	Due    time.Time `json:"due"` // when to check: At, or a retry's time
}

const expirySubject = "hrl.wh.x"

// SetExpiryCheck makes the outbox report message.expired, asking check
// about each copy when its message's TTL ends. Call it before Start.
func (o *Outbox) SetExpiryCheck(check ExpiryCheck) { o.expiryCheck = check }

// ExpireLater schedules the expiry check of app's message id, due at due,
// for its copies; durably when it returns nil. Nothing is scheduled when
// no endpoint of app receives message.expired.
func (o *Outbox) ExpireLater(ctx context.Context, app, id string, copies []Copy, due time.Time) error {
	if !o.Wants(app, MessageExpired) || len(copies) == 0 {
		return nil
	}
	if o.js == nil || o.expiryCheck == nil {
		return ErrNotStarted
	}
	raw, err := json.Marshal(expiryEntry{App: app, ID: id, Copies: copies, At: due, Due: due})
	if err != nil {
		return err
	}
	if _, err := o.js.Publish(ctx, expirySubject, raw); err != nil {
		return fmt.Errorf("webhook: scheduling the expiry of %s: %w", id, err)
	}
	return nil
}

// startExpiry creates the schedule's stream and consumer and starts the
// node's worker, if some endpoint receives message.expired.
func (o *Outbox) startExpiry(ctx context.Context) error {
	wanted := false
	for _, s := range o.senders {
		for _, t := range s.ep.types() {
			wanted = wanted || t == MessageExpired
		}
	}
	if !wanted || o.expiryCheck == nil {
		return nil
	}
	st, err := o.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: o.cfg.Stream + "_EXPIRY",
		Subjects: []string{expirySubject}, Retention: jetstream.WorkQueuePolicy,
		MaxAge: o.cfg.MaxTTL + o.cfg.RetryFor, Storage: jetstream.FileStorage, Replicas: o.cfg.Replicas})
	if err != nil {
		return fmt.Errorf("webhook: expiry stream: %w", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "expiry",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: o.cfg.AckWait, MaxDeliver: -1,
		MaxAckPending: maxExpiryPending})
	if err != nil {
		return fmt.Errorf("webhook: expiry consumer: %w", err)
	}
	o.wg.Add(1)
	go o.expire(cons)
	return nil
}

// maxExpiryPending bounds the entries handed out and waiting for their
// time, cluster-wide; beyond it, later ones wait in the stream.
const maxExpiryPending = 1 << 20

// expire runs the node's share of the schedule until Close.
func (o *Outbox) expire(cons jetstream.Consumer) {
	o.consume(cons, 256, "the expiry schedule", o.expireOne)
}

// expireOne hands msg back until it is due, then emits its events.
func (o *Outbox) expireOne(ctx context.Context, msg jetstream.Msg) {
	var e expiryEntry
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		o.cfg.Logger.Error("webhook: dropping a malformed expiry entry", "err", err)
		_ = msg.Term()
		return
	}
	if wait := time.Until(e.Due); wait > 0 {
		_ = msg.NakWithDelay(wait)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	for i, c := range e.Copies {
		unacked, err := o.expiryCheck(ctx, e.App, e.ID, c.User, c.Seq)
		if err == nil && unacked {
			err = o.Emit(ctx, e.App, MessageExpired, e.At, map[string]any{"id": e.ID, "user": c.User, "seq": c.Seq})
		}
		if err != nil {
			o.cfg.Logger.Warn("webhook: message.expired; retrying", "id", e.ID, "err", err)
			// The copies before i are done: keep the rest for the retry.
			e.Copies = e.Copies[i:]
			if o.reschedule(ctx, msg, e) {
				return
			}
			_ = msg.NakWithDelay(5 * time.Second)
			return
		}
	}
	if err := msg.Ack(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		o.cfg.Logger.Warn("webhook: acknowledging an expiry entry", "id", e.ID, "err", err)
	}
}

// reschedule replaces msg by e (the copies left), due in 5 s, and reports
// whether it did.
func (o *Outbox) reschedule(ctx context.Context, msg jetstream.Msg, e expiryEntry) bool {
	e.Due = time.Now().Add(5 * time.Second)
	raw, _ := json.Marshal(e)
	if _, err := o.js.Publish(ctx, expirySubject, raw); err != nil {
		return false
	}
	return msg.Ack() == nil
}
