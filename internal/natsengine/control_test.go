package natsengine_test

import (
	"testing"

	"github.com/heraldpush/herald/internal/engine"
	"github.com/heraldpush/herald/internal/enginetest"
	"github.com/heraldpush/herald/internal/natsengine"
)

func TestConformanceControl(t *testing.T) {
	enginetest.RunControl(t, func(t *testing.T) (engine.Control, engine.Control) {
		srv := runServer(t)
		a := start(t, newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "a"}, func([][]byte) {}))
		b := start(t, newEngine(t, natsengine.Config{URL: srv.ClientURL(), NodeID: "b"}, func([][]byte) {}))
		return a, b
	})
}
