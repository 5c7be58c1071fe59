package push

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/webhook"
)

// store puts an offline push in each targeted user's inbox (durably, before
// the API answers), records it for status and recall, and publishes each
// user's copy with its sequence number.
func (s *Service) store(ctx context.Context, r *Request, m *protocol.Message, ttl time.Duration) error {
	users := dedupe(r.To.Users)
	unlock := s.order.lock(r.App, users)
	stored := protocol.AppendMessage(make([]byte, 0, 96+len(m.Data)), m)
	seqs, err := s.inbox.Append(ctx, r.App, users, m.ID, stored, ttl)
	if err != nil {
		unlock()
		return &Error{Code: CodeUnavailable, Message: "the message could not be stored", Err: err}
	}
	rec := engine.MessageRecord{ID: m.ID, App: r.App, Created: time.UnixMilli(m.TS), TTL: ttl, Users: make([]engine.UserSeq, len(users))}
	for i, u := range users {
		rec.Users[i] = engine.UserSeq{User: u, Seq: seqs[i]}
	}
	if err := s.records.PutRecord(ctx, rec); err != nil {
		// Retries and clean-up do not hold up the users' other pushes: a
		// live copy published after a later one is put back in seq order
		// by the gateway, which fills the gap from the inbox.
		unlock()
		if err := retried(ctx, func() error { return s.records.PutRecord(ctx, rec) }); err != nil {
			// Without its record the message could be neither recalled
			// nor reported: the push is not acknowledged, and its stored
			// copies go, so that a retry does not store it twice.
			s.unstore(ctx, r.App, rec.Users)
			return &Error{Code: CodeUnavailable, Message: "the message's status could not be recorded; its stored copies were removed", Err: err}
		}
		s.publishStored(ctx, r.App, users, m.ID, stored, seqs)
		s.countStored(r.App, len(users))
		s.scheduleExpiry(ctx, r.App, rec)
		return nil
	}
	s.publishStored(ctx, r.App, users, m.ID, stored, seqs)
	unlock()
	s.countStored(r.App, len(users))
	s.scheduleExpiry(ctx, r.App, rec)
	return nil
}

// publishStored publishes each user's copy of a stored message, with its
// seq, to the users online (a failure is logged: the users get the message
// from their inbox when they next connect).
func (s *Service) publishStored(ctx context.Context, app string, users []string, id string, stored []byte, seqs []uint64) {
	var msg []byte
	var errs []error
	for i, u := range users {
		if s.limits.Alone && !s.hub.Online(app, u) {
			continue // see storeApp
		}
		msg = protocol.AppendWithSeq(msg[:0], stored, seqs[i])
		env := envelope{App: app, Users: users[i : i+1], ID: id, Seq: seqs[i]}
		errs = append(errs, s.publishTopic(ctx, engine.Topic{Kind: engine.User, App: app, Name: u}, &env, msg, false))
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("publishing a stored message live", "id", id, "err", err)
	}
}

// recordRetryFor bounds how long a record write is retried when the
// caller's context has no deadline.
const recordRetryFor = 5 * time.Second

// retried runs put until it succeeds or ctx ends: a record write that fails
// for a moment (a JetStream leader election after a node died) must not
// fail a push whose messages are already stored.
func retried(ctx context.Context, put func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, recordRetryFor)
		defer cancel()
	}
	wait := 20 * time.Millisecond
	for {
		err := put()
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// unstore removes the stored copies of pushes that could not be recorded,
// all within one deadline of their own (the pushes' went by in retries);
// a copy it cannot remove is delivered.
func (s *Service) unstore(ctx context.Context, app string, copies []engine.UserSeq) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordRetryFor)
	defer cancel()
	for _, u := range copies {
		if _, err := s.inbox.Remove(ctx, app, u.User, u.Seq); err != nil {
			s.log.Error("removing a stored message without a record", "app", app, "user", u.User, "seq", u.Seq, "err", err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

func dedupe(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := names[:0:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Status is what GET /v1/messages/{id} reports.
type Status struct {
	ID        string       `json:"id"`
	Created   time.Time    `json:"created"`
	TTL       int64        `json:"ttl"`
	Targeted  int          `json:"targeted"`
	Delivered int          `json:"delivered"`
	Acked     int          `json:"acked"`
	Expired   int          `json:"expired"`
	Dropped   int          `json:"dropped"`
	Recalled  bool         `json:"recalled"`
	Users     []UserStatus `json:"users,omitempty"`
}

// UserStatus is one targeted user's view of a message.
type UserStatus struct {
	User      string `json:"user"`
	Seq       uint64 `json:"seq"`
	Delivered bool   `json:"delivered"`
	Acked     bool   `json:"acked"`
}

// maxStatusUsers is the largest target list whose users are listed one by
// one in a status; counts always cover every user.
const maxStatusUsers = 100

// Status reports where a stored message is: per targeted user, whether it
// reached a live connection, was acked, expired unacked, or was dropped by
// the per-user cap.
func (s *Service) Status(ctx context.Context, app, id string) (*Status, error) {
	rec, err := s.records.Record(ctx, app, id)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, Errorf(CodeNotFound, "no stored message %q (only offline pushes are kept)", id)
	}
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "message status unavailable", Err: err}
	}
	st := &Status{ID: rec.ID, Created: rec.Created, TTL: int64(rec.TTL / time.Second), Targeted: len(rec.Users), Recalled: rec.Recalled}
	expired := time.Now().After(rec.Created.Add(rec.TTL))
	for _, us := range rec.Users {
		u, err := s.userStatus(ctx, app, us, expired || rec.Recalled)
		if err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: "message status unavailable", Err: err}
		}
		if u.Delivered {
			st.Delivered++
		}
		if u.Acked {
			st.Acked++
		}
		switch {
		case u.Acked || rec.Recalled:
		case expired:
			st.Expired++
		case u.dropped:
			st.Dropped++
		}
		if len(rec.Users) <= maxStatusUsers {
			st.Users = append(st.Users, u.UserStatus)
		}
	}
	return st, nil
}

type userStatus struct {
	UserStatus
	dropped bool
}

func (s *Service) userStatus(ctx context.Context, app string, us engine.UserSeq, gone bool) (userStatus, error) {
	u := userStatus{UserStatus: UserStatus{User: us.User, Seq: us.Seq}}
	delivered, err := s.records.DeliveredSeq(ctx, app, us.User)
	if err != nil {
		return u, err
	}
	_, acked, err := s.inbox.State(ctx, app, us.User)
	if err != nil {
		return u, err
	}
	u.Delivered, u.Acked = delivered >= us.Seq, acked >= us.Seq
	if !u.Acked && !gone {
		page, err := s.inbox.Read(ctx, app, us.User, us.Seq-1, 1)
		if err != nil {
			return u, err
		}
		u.dropped = len(page.Msgs) == 0 || page.Msgs[0].Seq != us.Seq
	}
	return u, nil
}

// Recall removes a stored message from every inbox it is still in and tells
// the online connections of its users to drop it.
func (s *Service) Recall(ctx context.Context, app, id string) error {
	rec, err := s.records.Recall(ctx, app, id)
	if errors.Is(err, engine.ErrNotFound) {
		return Errorf(CodeNotFound, "no stored message %q (only offline pushes are kept)", id)
	}
	if err != nil {
		return &Error{Code: CodeUnavailable, Message: "recall failed", Err: err}
	}
	notice := protocol.Recall(id)
	var errs []error
	for _, us := range rec.Users {
		if _, err := s.inbox.Remove(ctx, app, us.User, us.Seq); err != nil {
			errs = append(errs, err)
		}
		env := envelope{App: app, Users: []string{us.User}, ID: id, Kind: kindRecall}
		errs = append(errs, s.publishTopic(ctx, engine.Topic{Kind: engine.User, App: app, Name: us.User}, &env, notice, false))
	}
	if err := errors.Join(errs...); err != nil {
		return &Error{Code: CodeUnavailable, Message: "recall incomplete; retry", Err: err}
	}
	return nil
}

// NoteDelivered records that a stored message (or every one up to seq)
// was handed to a live connection of the user.
func (s *Service) NoteDelivered(app, user string, seq uint64) { s.delivered.note(app, user, seq, "") }

// delivery remembers, per user, the highest stored sequence handed to a
// live connection on this node, until the next flush to the records.
type delivery struct {
	mu  sync.Mutex
	pos map[[2]string]delivered // (app, user) → the highest delivery
}

// delivered is a user's highest delivery: seq, the message's id if known,
// and when it was handed over.
type delivered struct {
	seq uint64
	id  string
	at  time.Time
}

func (d *delivery) note(app, user string, seq uint64, id string) {
	d.mu.Lock()
	if d.pos == nil {
		d.pos = make(map[[2]string]delivered)
	}
	if k := [2]string{app, user}; seq > d.pos[k].seq {
		d.pos[k] = delivered{seq: seq, id: id, at: time.Now()}
	}
	d.mu.Unlock()
}

// again puts back a delivery whose flush failed (unless a later one came).
func (d *delivery) again(app, user string, v delivered) {
	d.mu.Lock()
	if d.pos == nil {
		d.pos = make(map[[2]string]delivered)
	}
	if k := [2]string{app, user}; v.seq > d.pos[k].seq {
		d.pos[k] = v
	}
	d.mu.Unlock()
}

func (d *delivery) take() map[[2]string]delivered {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pos
	d.pos = nil
	return p
}

// Run flushes delivered positions to the records every interval until
// stop closes, then once more, and returns. ctx is the node's lifetime: it
// bounds every flush (each also by the engine timeout), the last one
// included, and ending it ends Run.
func (s *Service) Run(ctx context.Context, stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			s.flushDeliveredWithin(ctx)
			return
		case <-ctx.Done():
			return
		case <-t.C:
			s.flushDeliveredWithin(ctx)
		}
	}
}

// flushDeliveredWithin flushes the delivered positions within the engine
// timeout.
func (s *Service) flushDeliveredWithin(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.limits.EngineTimeout)
	defer cancel()
	s.flushDelivered(ctx)
}

func (s *Service) flushDelivered(ctx context.Context) {
	for k, v := range s.delivered.take() {
		if err := s.records.Delivered(ctx, k[0], k[1], v.seq); err != nil {
			s.log.Warn("recording delivery", "err", err)
			s.delivered.again(k[0], k[1], v) // next time
			continue
		}
		if s.events != nil && s.events.Wants(k[0], webhook.MessageDelivered) {
			s.emitMessage(ctx, k[0], webhook.MessageDelivered, k[1], v.seq, v.id, v.at)
		}
	}
}
