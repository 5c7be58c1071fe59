package lifecycle

import (
	"context"

	"github.com/heraldpush/herald/internal/apierr"
	"github.com/heraldpush/herald/internal/protocol"
	"github.com/heraldpush/herald/internal/webhook"
)

// PageSize is how many users one page of a presence room lists, and how
// many events one page of the dead-letter list holds.
const PageSize = 100

// PresencePage returns one page of the users present in app's presence
// room (sorted, after cursor: "" from the start) and the cursor of the
// next page ("" on the last). The server API and gRPC answer with it.
func (l *Lifecycle) PresencePage(ctx context.Context, app, room, cursor string) ([]string, string, error) {
	if err := protocol.ValidName("room", room); err != nil {
		return nil, "", apierr.Errorf(apierr.InvalidArgument, "%v", err)
	}
	if l == nil || !l.Presence(room) {
		return nil, "", apierr.Errorf(apierr.InvalidArgument, "room %q is not a presence room (see presence_rooms)", room)
	}
	users, next, err := l.Tracker.Members(ctx, app, room, cursor, PageSize)
	if err != nil {
		return nil, "", &apierr.Error{Code: apierr.Unavailable, Message: "presence cannot be read now; retry", Err: err}
	}
	return users, next, nil
}

// DeadPage returns one page of app's dead-lettered webhook events after
// the position after (0: from the first) and the position to continue
// from (0 on the last page). Without webhooks the list is empty.
func (l *Lifecycle) DeadPage(ctx context.Context, app string, after uint64) ([]webhook.DeadEvent, uint64, error) {
	if l == nil || l.Outbox == nil {
		return []webhook.DeadEvent{}, 0, nil
	}
	evs, next, err := l.Outbox.Dead(ctx, app, after, PageSize)
	if err != nil {
		return nil, 0, &apierr.Error{Code: apierr.Unavailable, Message: "dead letters cannot be read now; retry", Err: err}
	}
	return evs, next, nil
}

// ReplayDead sends app's dead-lettered events with the given ids (all of
// them if ids is empty) again, with their webhook-id, and reports how many
// it replayed.
func (l *Lifecycle) ReplayDead(ctx context.Context, app string, ids []string) (int, error) {
	if l == nil || l.Outbox == nil {
		return 0, nil
	}
	n, err := l.Outbox.Replay(ctx, app, ids)
	if err != nil {
		return n, &apierr.Error{Code: apierr.Unavailable, Message: "replay incomplete; retry", Err: err}
	}
	return n, nil
}

// EndpointStats reports what this node's webhook outbox did for each
// endpoint of app ("": every app) since the node started (see
// webhook.EndpointStats). Without webhooks the list is empty.
func (l *Lifecycle) EndpointStats(ctx context.Context, app string) []webhook.EndpointStats {
	if l == nil || l.Outbox == nil {
		return nil
	}
	return l.Outbox.Stats(ctx, app)
}
