package audit_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/quantaseal/gateway/audit"
)

func TestStoreError(t *testing.T) {
	driver := errors.New("connection refused")
	caller := errors.New("event 3: bad field")
	cases := []struct {
		name        string
		err         error
		want        string
		unavailable bool
		is          error
	}{
		{"driver error", driver, "audit teststore: append: audit store unavailable: connection refused", true, driver},
		{"build error", fmt.Errorf("in tx: %w", &audit.BuildError{Err: caller}), "audit teststore: append: event 3: bad field", false, caller},
		{"not found", fmt.Errorf("event x: %w", audit.ErrNotFound), "audit teststore: append: event x: audit record not found", false, audit.ErrNotFound},
		{"bad query", audit.ErrBadQuery, "audit teststore: append: invalid audit query", false, audit.ErrBadQuery},
		{"already unavailable", fmt.Errorf("pool: %w", audit.ErrUnavailable), "audit teststore: append: pool: audit store unavailable", true, audit.ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := audit.StoreError("audit teststore", "append", c.err)
			if got.Error() != c.want {
				t.Errorf("message %q, want %q", got, c.want)
			}
			if errors.Is(got, audit.ErrUnavailable) != c.unavailable {
				t.Errorf("errors.Is(ErrUnavailable) = %v, want %v", !c.unavailable, c.unavailable)
			}
			if !errors.Is(got, c.is) {
				t.Errorf("does not wrap %v", c.is)
			}
		})
	}
}
