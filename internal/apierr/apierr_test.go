package apierr

import (
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
)

// TestCatalogue checks the table against the v1 contract: every code, its
// HTTP status (DESIGN.md, docs/api.md#errors) and its gRPC code.
func TestCatalogue(t *testing.T) {
	want := map[string]struct {
		status int
		grpc   connect.Code
	}{
		InvalidJSON:     {400, connect.CodeInvalidArgument},
		InvalidTarget:   {400, connect.CodeInvalidArgument},
		InvalidArgument: {400, connect.CodeInvalidArgument},
		Unauthorized:    {401, connect.CodeUnauthenticated},
		Forbidden:       {403, connect.CodePermissionDenied},
		NotFound:        {404, connect.CodeNotFound},
		PayloadTooLarge: {413, connect.CodeResourceExhausted},
		RateLimited:     {429, connect.CodeResourceExhausted},
		Unavailable:     {503, connect.CodeUnavailable},
		Internal:        {500, connect.CodeInternal},
	}
	rows := Rows()
	if len(rows) != len(want) {
		t.Fatalf("catalogue has %d rows, want %d", len(rows), len(want))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		w, ok := want[r.Code]
		if !ok || seen[r.Code] {
			t.Fatalf("row %q: unknown or repeated code", r.Code)
		}
		seen[r.Code] = true
		if r.Status != w.status || r.GRPC != w.grpc || r.Message == "" {
			t.Errorf("row %q = %d %v %q, want %d %v and a message", r.Code, r.Status, r.GRPC, r.Message, w.status, w.grpc)
		}
		if got, ok := Lookup(r.Code); !ok || got != r {
			t.Errorf("Lookup(%q) = %v %v", r.Code, got, ok)
		}
	}
	if _, ok := Lookup("no_such_code"); ok {
		t.Error("Lookup found a code outside the catalogue")
	}
	if r := Of("no_such_code"); r.Code != Internal || r.Status != 500 {
		t.Errorf("Of(unknown) = %v, want the internal row", r)
	}
}

func TestFrom(t *testing.T) {
	e := Errorf(NotFound, "no message %q", "m_1")
	if got := From(fmt.Errorf("reading: %w", e)); got != e {
		t.Errorf("From(wrapped) = %v, want the catalogue error", got)
	}
	cause := errors.New("disk on fire")
	got := From(cause)
	if got.Code != Internal || got.Message != "internal error" || !errors.Is(got, cause) {
		t.Errorf("From(plain) = %+v, want internal with the cause kept", got)
	}
}
