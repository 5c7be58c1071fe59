package herald

import (
	"testing"

	"github.com/heraldpush/herald/internal/apierr"
)

// TestCodesAreTheCatalogue keeps the SDK's public Code constants equal to
// the server's catalogue, code for code, and its statuses the catalogue's.
func TestCodesAreTheCatalogue(t *testing.T) {
	sdk := []string{CodeInvalidJSON, CodeInvalidTarget, CodeInvalidArgument, CodeUnauthorized, CodeForbidden,
		CodeNotFound, CodePayloadTooLarge, CodeRateLimited, CodeUnavailable, CodeInternal}
	rows := apierr.Rows()
	if len(sdk) != len(rows) {
		t.Fatalf("the SDK has %d codes, the catalogue %d", len(sdk), len(rows))
	}
	for i, r := range rows {
		if sdk[i] != r.Code {
			t.Errorf("code %d: SDK %q, catalogue %q", i, sdk[i], r.Code)
		}
		if got := statusOfCode(r.Code); got != r.Status {
			t.Errorf("statusOfCode(%q) = %d, want %d", r.Code, got, r.Status)
		}
	}
	if got := statusOfCode("from_a_newer_server"); got != 0 {
		t.Errorf("statusOfCode(unknown) = %d, want 0", got)
	}
}
