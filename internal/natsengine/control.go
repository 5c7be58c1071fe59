package natsengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/nats-io/nats.go"
)

var _ engine.Control = (*Engine)(nil)

// controlSubject is the subject a node answers control requests on. NATS
// answers a request to it "no responders" at once when that node is gone.
func controlSubject(node string) string { return Prefix + "ctl." + Token(node) }

// Serve implements engine.Control with a core NATS request subscription of
// its own; it is resubscribed after a reconnect and ends with Close. It
// returns once the server it is connected to has the subscription.
func (e *Engine) Serve(ctx context.Context, h engine.ControlHandler) error {
	nc := e.Conn()
	if nc == nil {
		return fmt.Errorf("natsengine: serve control: %w", engine.ErrUnavailable)
	}
	sub, err := nc.Subscribe(controlSubject(e.cfg.NodeID), func(m *nats.Msg) {
		if err := m.Respond(h(m.Data)); err != nil {
			e.cfg.Logger.Warn("answering a control request", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("natsengine: serve control: %w", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		// Not confirmed by the server (disconnected): undone, so that a
		// retry subscribes once.
		_ = sub.Unsubscribe()
		return fmt.Errorf("natsengine: serve control: %w", errors.Join(engine.ErrUnavailable, err))
	}
	return nil
}

// Ask implements engine.Control.
func (e *Engine) Ask(ctx context.Context, node string, req []byte) ([]byte, error) {
	nc := e.Conn()
	if nc == nil || !nc.IsConnected() {
		return nil, fmt.Errorf("natsengine: asking node %s: %w", node, engine.ErrUnavailable)
	}
	m, err := nc.RequestWithContext(ctx, controlSubject(node), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("natsengine: asking node %s: %w", node, engine.ErrNoNode)
	case err != nil:
		return nil, fmt.Errorf("natsengine: asking node %s: %w", node, err)
	}
	return m.Data, nil
}
