// Command quantaseal is the QuantaSeal gateway for Okta: an Envoy external processor that
// authenticates callers, enforces a default-deny operation list, injects Okta
// credentials from a KMS-wrapped vault, seals responses as HybridCryptoEnvelopes and
// records every call in a tamper-evident audit chain.
//
// Run `quantaseal help` for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// cmdIO is what a subcommand may touch of the outside world; tests substitute it.
type cmdIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// command is one subcommand. run returns a *usageError for bad arguments (exit 2) and
// any other error for a failure (exit 1).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, cio cmdIO, args []string) error
}

// usageError marks an error in how the command was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

func commands() []command {
	cmds := []command{
		{"serve", "run the gateway: ext_proc and ext_authz gRPC, HTTP API, metrics", runServe},
		{"envelope", "open (verify and decrypt) a HybridCryptoEnvelope: envelope open --profile FILE", runEnvelope},
		{"keys", "generate a tenant client profile with a new response key pair: keys generate --out FILE", runKeys},
		{"audit", "export or verify the audit hash chain: audit export | audit verify", runAudit},
		{"envoy", "print a validated Envoy bootstrap: envoy config --mode sidecar|gateway", runEnvoy},
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: quantaseal <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'quantaseal <command> --help' for a command's flags.")
}

// run executes the command line args (without the program name) and returns the exit code.
func run(ctx context.Context, cio cmdIO, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(cio.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, cio, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(cio.Stderr, "quantaseal %s: %s\n", c.name, ue.msg)
			return 2
		default:
			fmt.Fprintf(cio.Stderr, "quantaseal %s: %s\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(cio.Stderr, "quantaseal: unknown command %q\n", args[0])
	usage(cio.Stderr)
	return 2
}

// errHelp is returned by a subcommand that printed its --help.
var errHelp = errors.New("help requested")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cmdIO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// subcommandName joins a command path for messages, e.g. "audit verify".
func subcommandName(parts ...string) string { return strings.Join(parts, " ") }
