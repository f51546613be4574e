package audit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Log's committer goroutine must be gone once its tests have closed it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
