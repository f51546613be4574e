package gatewaytest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/quantaseal/gateway/internal/testenv"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main builds the binary, runs the tests and removes the binary; use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }
//
// Without it, [Binary] still builds on first use, but the temporary directory holding
// the binary is left behind.
func Main(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse() // testing.Short needs the flags; m.Run would parse them later
	}
	if !testing.Short() {
		buildBinary()
		if build.err != nil {
			fmt.Fprintln(os.Stderr, "gatewaytest:", build.err)
			return 1
		}
	}
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}

// Binary returns the path of the quantaseal binary, building it on first use
// (`go build [-race] github.com/quantaseal/gateway/cmd/quantaseal`), or the binary named
// by $QUANTASEAL_TEST_GATEWAY_BIN.
func Binary(t testing.TB) string {
	t.Helper()
	buildBinary()
	if build.err != nil {
		t.Fatalf("gatewaytest: %v", build.err)
	}
	return build.path
}

// BinaryEnv names a prebuilt quantaseal binary to use instead of building one.
const BinaryEnv = "QUANTASEAL_TEST_GATEWAY_BIN"

func buildBinary() {
	build.once.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			if _, err := os.Stat(p); err != nil {
				build.err = fmt.Errorf("%s: %w", BinaryEnv, err)
			}
			build.path = p
			return
		}
		dir, err := os.MkdirTemp("", "quantaseal-gatewaytest-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		build.path = filepath.Join(dir, "quantaseal")
		args := []string{"build", "-o", build.path}
		if testenv.Race {
			args = append(args, "-race")
		}
		args = append(args, "github.com/quantaseal/gateway/cmd/quantaseal")
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = fmt.Errorf("the go command is needed to build the gateway: %w", err)
			return
		}
		cmd := exec.Command(goTool, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
		}
	})
}
