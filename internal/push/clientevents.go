package push

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/webhook"
)

// noteClientEvent reports a Pusher client's client- event (the
// client_event of Pusher-format webhooks), if the app wants it: data as
// a string (a JSON string's text, else the JSON itself, "null" included),
// the sender's socket id, and its user on a presence- channel.
func (s *Service) noteClientEvent(ctx context.Context, from *hub.Conn, room, event string, data json.RawMessage) {
	if s.events == nil || !s.events.Wants(from.App, webhook.ClientEvent) {
		return
	}
	text := string(data)
	var str string
	if len(data) > 0 && data[0] == '"' && json.Unmarshal(data, &str) == nil {
		text = str
	}
	d := map[string]any{"room": room, "event": event, "data": text, "socket_id": from.ID}
	if strings.HasPrefix(room, "presence-") {
		d["user"] = from.User
	}
	if err := s.events.Emit(ctx, from.App, webhook.ClientEvent, time.Now(), d); err != nil {
		s.log.Warn("storing a webhook event failed; it is lost", "app", from.App, "type", webhook.ClientEvent, "err", err)
	}
}
