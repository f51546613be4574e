package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/quantaseal/gateway/envelope"
)

// maxEnvelopeBytes bounds what `envelope open` reads from stdin.
const maxEnvelopeBytes = 256 << 20

// runEnvelope implements `quantaseal envelope open --profile FILE`: it reads a
// HybridCryptoEnvelope on stdin, verifies and decrypts it with the client profile, and
// writes the plaintext to stdout. A refused envelope is an error naming the failed
// check and member (exit 1); nothing is written to stdout then.
func runEnvelope(ctx context.Context, cio cmdIO, args []string) error {
	const synopsis = "open --profile FILE [--meta] < envelope.json > body"
	if len(args) == 0 {
		return usagef("missing subcommand; usage: quantaseal envelope %s", synopsis)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		flags := newFlagSet("envelope", cio.Stdout, synopsis)
		envelopeOpenFlags(flags)
		flags.Usage()
		return errHelp
	case "open":
		return envelopeOpen(ctx, cio, args[1:])
	default:
		return usagef("unknown subcommand %q; usage: quantaseal envelope %s", args[0], synopsis)
	}
}

type envelopeOpenOptions struct {
	profile *string
	meta    *bool
}

func envelopeOpenFlags(flags *flag.FlagSet) envelopeOpenOptions {
	return envelopeOpenOptions{
		profile: flags.String("profile", "", "client profile JSON file, mode 0600 (required)"),
		meta:    flags.Bool("meta", false, "also print the envelope's status, success, next, audit_event_id and issued_at as one JSON line on stderr"),
	}
}

func envelopeOpen(_ context.Context, cio cmdIO, args []string) error {
	flags := newFlagSet(subcommandName("envelope", "open"), cio.Stderr, "--profile FILE [--meta] < envelope.json > body")
	opts := envelopeOpenFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		return usagef("unexpected arguments %q: the envelope is read from standard input", flags.Args())
	}
	if *opts.profile == "" {
		return usagef("--profile is required")
	}
	profile, err := envelope.LoadProfile(*opts.profile)
	if err != nil {
		return err
	}
	keys, err := profile.OpenKeys()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(cio.Stdin, maxEnvelopeBytes+1))
	if err != nil {
		return fmt.Errorf("read envelope from standard input: %w", err)
	}
	if len(data) > maxEnvelopeBytes {
		return fmt.Errorf("envelope on standard input is larger than %d bytes", maxEnvelopeBytes)
	}
	body, e, err := envelope.Open(data, keys)
	if err != nil {
		var oe *envelope.OpenError
		if errors.As(err, &oe) {
			return fmt.Errorf("refused the envelope: %w", err)
		}
		return err
	}
	if *opts.meta {
		meta, _ := json.Marshal(map[string]any{
			"status": e.Status, "success": e.Success, "next": e.Next,
			"audit_event_id": e.AuditEventID, "issued_at": e.IssuedAt, "signing_key_id": e.Signature.KeyID,
		})
		fmt.Fprintf(cio.Stderr, "%s\n", meta)
	}
	if _, err := cio.Stdout.Write(body); err != nil {
		return fmt.Errorf("write plaintext: %w", err)
	}
	return nil
}
