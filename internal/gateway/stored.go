package gateway

import (
	"context"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/protocol"
)

// replayPage is how many stored messages one inbox read returns.
const replayPage = 500

// stored is the one home of stored-message delivery, for every transport:
// the user's inbox (its state, the pages a connect, a resume or a
// catch-up replays, acks) and the rooms' history. The replay logic of
// resume.go reaches stored messages only through it, and a transport only
// through that logic; stored turns what it reads into frames and holds no
// state.
type stored struct {
	inbox  engine.Inbox
	sender ClientSender // room history and delivery notes
}

// state returns the user's latest and acked sequence.
func (s stored) state(ctx context.Context, app, user string) (latest, acked uint64, err error) {
	return s.inbox.State(ctx, app, user)
}

// page returns up to replayPage of the user's stored messages after
// `after` as push frames (each with its Seq), whether none between was
// missing, and whether the inbox may hold more after them.
func (s stored) page(ctx context.Context, app, user string, after uint64) (frames []*protocol.Outgoing, complete, more bool, err error) {
	page, err := s.inbox.Read(ctx, app, user, after, replayPage)
	if err != nil {
		return nil, false, false, err
	}
	frames = make([]*protocol.Outgoing, len(page.Msgs))
	for i, m := range page.Msgs {
		frames[i] = protocol.NewPush(protocol.AppendWithSeq(nil, m.Payload, m.Seq))
		frames[i].Seq = m.Seq
	}
	return frames, page.Complete, len(page.Msgs) == replayPage, nil
}

// ack raises the user's acked position; false: seq is beyond the inbox.
func (s stored) ack(ctx context.Context, app, user string, seq uint64) (bool, error) {
	return s.inbox.Ack(ctx, app, user, seq)
}

// room returns what a room's history holds after since (see
// ClientSender.RoomReplay).
func (s stored) room(ctx context.Context, app, room string, since uint64) (frames []*protocol.Outgoing, resumed []byte, last uint64, ok bool, err error) {
	return s.sender.RoomReplay(ctx, app, room, since)
}

// delivered notes stored messages up to seq as handed to a connection.
func (s stored) delivered(app, user string, seq uint64) { s.sender.NoteDelivered(app, user, seq) }

// acked notes the user's acked position reaching seq.
func (s stored) acked(ctx context.Context, app, user string, seq uint64) {
	s.sender.NoteAcked(ctx, app, user, seq)
}
