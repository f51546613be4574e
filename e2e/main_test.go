package e2e

import (
	"os"
	"testing"

	"github.com/quantaseal/gateway/internal/gatewaytest"
)

// TestMain builds the quantaseal binary once (with -race when the suite runs under it)
// through gatewaytest, which the reliability suite shares.
func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }
