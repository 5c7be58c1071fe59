package push

import (
	"context"
	"errors"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/webhook"
)

// Events is where the service reports message events (the webhook
// outbox): message.delivered, message.acked and message.expired, for the
// apps that have an endpoint listing them.
type Events interface {
	// Wants reports whether some endpoint of app receives typ.
	Wants(app, typ string) bool
	// Emit stores an event durably; nil means it will be delivered.
	Emit(ctx context.Context, app, typ string, at time.Time, data map[string]any) error
	// ExpireLater schedules, durably, the check at due of which copies of
	// a stored message ended unacked (see Unacked): message.expired.
	ExpireLater(ctx context.Context, app, id string, copies []webhook.Copy, due time.Time) error
}

// SetEvents makes the service report message events to e. Call it before
// Run and before any connection is served; nil (the default) reports none.
func (s *Service) SetEvents(e Events) { s.events = e }

// NoteAcked reports that the user's acked position reached seq: it counts
// the ack (for the overview's history) and, if the app wants it, stores a
// message.acked event for the message at seq. It runs on the caller's
// goroutine (the gateway's ack worker, off the read loop) and stores the
// event within ctx.
func (s *Service) NoteAcked(ctx context.Context, app, user string, seq uint64) {
	s.countAck(app)
	if s.events == nil || !s.events.Wants(app, webhook.MessageAcked) {
		return
	}
	s.emitMessage(ctx, app, webhook.MessageAcked, user, seq, "", time.Now())
}

// emitMessage stores a message event; id "" is looked up in the inbox
// (the message at seq, if it is still stored).
func (s *Service) emitMessage(ctx context.Context, app, typ, user string, seq uint64, id string, at time.Time) {
	if id == "" {
		if page, err := s.inbox.Read(ctx, app, user, seq-1, 1); err == nil && len(page.Msgs) > 0 && page.Msgs[0].Seq == seq {
			id = page.Msgs[0].ID
		}
	}
	data := map[string]any{"id": id, "user": user, "seq": seq}
	if err := s.events.Emit(ctx, app, typ, at, data); err != nil {
		s.log.Warn("storing a webhook event failed; it is lost", "app", app, "type", typ, "err", err)
	}
}

// scheduleExpiry schedules message.expired for stored messages whose app
// wants it. A failure is logged, not returned: the messages are stored.
func (s *Service) scheduleExpiry(ctx context.Context, app string, recs ...engine.MessageRecord) {
	if s.events == nil || !s.events.Wants(app, webhook.MessageExpired) {
		return
	}
	for _, r := range recs {
		copies := make([]webhook.Copy, len(r.Users))
		for i, u := range r.Users {
			copies[i] = webhook.Copy{User: u.User, Seq: u.Seq}
		}
		if err := s.events.ExpireLater(ctx, app, r.ID, copies, r.Created.Add(r.TTL)); err != nil {
			s.log.Warn("message.expired will not be reported for a message", "app", app, "id", r.ID, "err", err)
		}
	}
}

// Unacked reports whether user's copy at seq of app's message id ended
// neither acked nor recalled (webhook.ExpiryCheck: message.expired).
func (s *Service) Unacked(ctx context.Context, app, id, user string, seq uint64) (bool, error) {
	_, acked, err := s.inbox.State(ctx, app, user)
	if err != nil || acked >= seq {
		return false, err
	}
	rec, err := s.records.Record(ctx, app, id)
	if errors.Is(err, engine.ErrNotFound) {
		return true, nil
	}
	return err == nil && !rec.Recalled, err
}
