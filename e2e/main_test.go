package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// gatewayBin is the quantaseal binary built by TestMain.
var gatewayBin string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quantaseal-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gatewayBin = filepath.Join(dir, "quantaseal")
	args := []string{"build", "-o", gatewayBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/quantaseal/gateway/cmd/quantaseal")
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the go command is needed to build the gateway: %v\n", err)
		return 1
	}
	cmd := exec.Command(goTool, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %v: %v\n", args, err)
		return 1
	}
	return m.Run()
}
