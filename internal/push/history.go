package push

import (
	"context"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/protocol"
)

// RoomHistory makes rooms keep their recent messages, so that a client
// rejoining with its last position gets what it missed.
type RoomHistory struct {
	Rooms string        // a room name, a "prefix*" pattern, or "*"
	Size  int           // messages a rejoin may replay
	TTL   time.Duration // how long a message is kept
}

func (h RoomHistory) matches(room string) bool {
	if p, ok := strings.CutSuffix(h.Rooms, "*"); ok {
		return strings.HasPrefix(room, p)
	}
	return h.Rooms == room
}

// historyOf returns the first history rule matching room.
func (s *Service) historyOf(room string) (RoomHistory, bool) {
	for _, h := range s.limits.RoomHistory {
		if h.matches(room) {
			return h, true
		}
	}
	return RoomHistory{}, false
}

// roomInbox is the inbox namespace of an app's room histories: a room's
// history is an inbox named after the room in it. App names hold no
// control characters, so it never meets an app's own namespace.
func roomInbox(app string) string { return app + "\x00rooms" }

// storeHistory stores m in the history of each of rooms that keeps one and
// publishes each such room's copy with its position. It returns the rooms
// without history, which the caller publishes as usual.
func (s *Service) storeHistory(ctx context.Context, app string, rooms []string, m *protocol.Message, except string) ([]string, error) {
	var plain []string
	var msg []byte
	kept := false
	for _, room := range rooms {
		h, ok := s.historyOf(room)
		if !ok {
			plain = append(plain, room)
			continue
		}
		kept = true
		unlock := s.order.lock(roomInbox(app), []string{room})
		rm := *m
		rm.Room = room
		stored := protocol.AppendMessage(nil, &rm)
		pos, err := s.inbox.Append(ctx, roomInbox(app), []string{room}, m.ID, stored, h.TTL)
		if err != nil {
			unlock()
			return nil, &Error{Code: CodeUnavailable, Message: "the room message could not be stored", Err: err}
		}
		msg = protocol.AppendWithPos(msg[:0], stored, pos[0])
		env := envelope{App: app, Rooms: []string{room}, ID: m.ID, Except: except, Pos: pos[0]}
		err = s.publishTopic(ctx, engine.Topic{Kind: engine.Room, App: app, Name: room}, &env, msg, false)
		unlock()
		if err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: "the engine did not accept the push", Err: err}
		}
	}
	if !kept {
		return rooms, nil
	}
	return plain, nil
}

// RoomReplay returns what a client rejoining room after position since
// missed: at most the room's history size of the newest messages, and the
// resumed frame that ends the replay (complete false when messages after
// since are gone). ok is false for a room without history.
func (s *Service) RoomReplay(ctx context.Context, app, room string, since uint64) (frames []*protocol.Outgoing, resumed []byte, last uint64, ok bool, err error) {
	h, ok := s.historyOf(room)
	if !ok {
		return nil, nil, 0, false, nil
	}
	latest, _, err := s.inbox.State(ctx, roomInbox(app), room)
	if err != nil {
		return nil, nil, 0, true, err
	}
	if since > latest {
		return nil, nil, 0, true, Errorf(CodeInvalidArgument, "since %d is beyond room %q's latest position %d", since, room, latest)
	}
	from, complete := since, true
	if latest-since > uint64(h.Size) {
		from, complete = latest-uint64(h.Size), false
	}
	page, err := s.inbox.Read(ctx, roomInbox(app), room, from, h.Size)
	if err != nil {
		return nil, nil, 0, true, err
	}
	last = from
	for _, m := range page.Msgs {
		f := protocol.NewPush(protocol.AppendWithPos(nil, m.Payload, m.Seq))
		f.Seq, f.Room = m.Seq, room
		frames = append(frames, f)
		last = m.Seq
	}
	to := max(last, latest)
	return frames, protocol.RoomResumed(room, since, to, complete && page.Complete), last, true, nil
}
