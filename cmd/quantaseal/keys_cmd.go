package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

// runKeys implements `quantaseal keys generate --out FILE [--tenant ID] [--force]`: it
// writes a new client profile (mode 0600) holding a fresh ML-KEM-768 response key seed
// and a fresh HMAC key, and prints the public half to register with the gateway as one
// JSON object on stdout.
func runKeys(ctx context.Context, cio cmdIO, args []string) error {
	const synopsis = "generate --out FILE [--tenant ID] [--force]"
	if len(args) == 0 {
		return usagef("missing subcommand; usage: quantaseal keys %s", synopsis)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		flags := newFlagSet("keys", cio.Stdout, synopsis)
		keysGenerateFlags(flags)
		flags.Usage()
		return errHelp
	case "generate":
		return keysGenerate(ctx, cio, args[1:])
	default:
		return usagef("unknown subcommand %q; usage: quantaseal keys %s", args[0], synopsis)
	}
}

type keysGenerateOptions struct {
	out    *string
	tenant *string
	force  *bool
}

func keysGenerateFlags(flags *flag.FlagSet) keysGenerateOptions {
	return keysGenerateOptions{
		out:    flags.String("out", "", "client profile file to write, mode 0600 (required)"),
		tenant: flags.String("tenant", "", "tenant id to put in the profile (default: empty, fill in after registration)"),
		force:  flags.Bool("force", false, "replace an existing profile file (its keys are lost)"),
	}
}

// keysGenerated is what `keys generate` prints: the public half to register.
type keysGenerated struct {
	Profile              string `json:"profile"`
	TenantID             string `json:"tenant_id"`
	ResponseKEMPublicKey string `json:"response_kem_public_key"`
	ResponseKeyID        string `json:"response_key_id"`
	ResponseKeyAlgorithm string `json:"response_key_algorithm"`
	HMACKeyID            string `json:"hmac_key_id"`
}

func keysGenerate(_ context.Context, cio cmdIO, args []string) error {
	flags := newFlagSet(subcommandName("keys", "generate"), cio.Stderr, "--out FILE [--tenant ID] [--force]")
	opts := keysGenerateFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		return usagef("unexpected arguments %q", flags.Args())
	}
	if *opts.out == "" {
		return usagef("--out is required")
	}
	rk, err := envelope.GenerateResponseKey(nil)
	if err != nil {
		return err
	}
	hk, err := envelope.GenerateHMACKey(nil)
	if err != nil {
		return err
	}
	p := &envelope.Profile{
		TenantID:        *opts.tenant,
		APIKey:          secret.Secret{},
		HMACKey:         hk.Secret(),
		ResponseKEMSeed: rk.Seed(),
		SigningKeys:     map[string][]byte{},
	}
	if *opts.force {
		err = p.Save(*opts.out)
	} else {
		err = p.SaveNew(*opts.out)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; pass --force to replace it (the keys in it are lost)", *opts.out)
		}
	}
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(keysGenerated{
		Profile:              *opts.out,
		TenantID:             *opts.tenant,
		ResponseKEMPublicKey: base64.StdEncoding.EncodeToString(rk.Public().Bytes()),
		ResponseKeyID:        rk.KeyID(),
		ResponseKeyAlgorithm: envelope.KEMAlgorithm,
		HMACKeyID:            hk.KeyID(),
	}, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(cio.Stdout, "%s\n", out)
	fmt.Fprintf(cio.Stderr, "wrote %s (mode 0600). Register response_kem_public_key with the gateway (POST /api/v2/tenants), then put the tenant_id, api_key and hmac_key it returns, and the gateway's keys from GET /api/v2/signing-keys, into the profile.\n", *opts.out)
	return nil
}
