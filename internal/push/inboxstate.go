package push

import (
	"context"

	"github.com/heraldpush/herald/internal/protocol"
)

// InboxState is where a user's inbox stands.
type InboxState struct {
	User      string `json:"user"`
	Latest    uint64 `json:"latest_seq"`    // the seq of the last message stored for the user
	Delivered uint64 `json:"delivered_seq"` // the highest seq written to a live connection of the user
	Acked     uint64 `json:"acked_seq"`     // the user's acked position
	// Waiting counts the stored, unexpired messages after the acked
	// position, at most WaitingCap; WaitingMore says there are more.
	Waiting     int  `json:"waiting"`
	WaitingMore bool `json:"waiting_more,omitempty"`
}

// WaitingCap bounds the messages InboxState counts: a count reads them
// (at most WaitingCap+1 payloads per call).
const WaitingCap = 100

// Inbox reports where app's user's inbox stands (read only; a user that
// never had a message stands at zero).
func (s *Service) Inbox(ctx context.Context, app, user string) (InboxState, error) {
	if err := protocol.ValidName("user", user); err != nil {
		return InboxState{}, Errorf(CodeInvalidArgument, "%v", err)
	}
	st := InboxState{User: user}
	var err error
	if st.Latest, st.Acked, err = s.inbox.State(ctx, app, user); err != nil {
		return InboxState{}, &Error{Code: CodeUnavailable, Message: "inbox unavailable", Err: err}
	}
	if st.Delivered, err = s.records.DeliveredSeq(ctx, app, user); err != nil {
		return InboxState{}, &Error{Code: CodeUnavailable, Message: "inbox unavailable", Err: err}
	}
	if st.Latest > st.Acked {
		page, err := s.inbox.Read(ctx, app, user, st.Acked, WaitingCap+1)
		if err != nil {
			return InboxState{}, &Error{Code: CodeUnavailable, Message: "inbox unavailable", Err: err}
		}
		st.Waiting, st.WaitingMore = min(len(page.Msgs), WaitingCap), len(page.Msgs) > WaitingCap
	}
	return st, nil
}
