package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/heraldpush/herald/internal/gateway"
	"github.com/heraldpush/herald/internal/httpapi"
	"github.com/heraldpush/herald/internal/push"
	"github.com/heraldpush/herald/internal/pusher"
	"github.com/heraldpush/herald/internal/pusherinfo"
)

// pusherNotices tells presence rooms of arrivals and departures; those of
// Pusher presence- channels carry the member's user_info (member_added),
// and a departure forgets it.
type pusherNotices struct {
	next  *push.Service
	infos *pusherinfo.Store
	log   *slog.Logger
}

// PresenceNotice implements lifecycle.Notifier.
func (n pusherNotices) PresenceNotice(ctx context.Context, app, room, user string, join bool) error {
	if !strings.HasPrefix(room, pusher.PresencePrefix) {
		return n.next.PresenceNotice(ctx, app, room, user, join)
	}
	info, rev, err := n.infos.Get(ctx, app, room, user)
	if err != nil {
		n.log.Warn("reading a presence member's info; announcing it without", "app", app, "room", room, "err", err)
		info = json.RawMessage(`null`)
	}
	if join {
		return n.next.PresenceNoticeInfo(ctx, app, room, user, true, info)
	}
	if err := n.next.PresenceNotice(ctx, app, room, user, false); err != nil {
		return err
	}
	if rev > 0 {
		if err := n.infos.Forget(ctx, app, room, user, rev); err != nil {
			n.log.Warn("forgetting a presence member's info", "app", app, "room", room, "err", err)
		}
	}
	return nil
}

// pusherMembers is s.lifecycle as the Pusher API's member lister, or a
// nil interface.
func (s *Server) pusherMembers() httpapi.PusherMembers {
	if s.lifecycle == nil {
		return nil
	}
	return s.lifecycle
}

// gatewayPusherInfo is s.pusherInfo for the gateway, or a nil interface.
func (s *Server) gatewayPusherInfo() gateway.PusherInfo {
	if s.pusherInfo == nil {
		return nil
	}
	return s.pusherInfo
}

// gatewayPusherPresence is s.lifecycle as the gateway's Pusher member
// counter, or a nil interface.
func (s *Server) gatewayPusherPresence() gateway.PusherPresence {
	if s.lifecycle == nil {
		return nil
	}
	return s.lifecycle
}
