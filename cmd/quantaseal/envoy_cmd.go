package main

import "context"

// runEnvoy is owned by the helper building this subcommand; it replaces this file.
func runEnvoy(ctx context.Context, cio cmdIO, args []string) error {
	return usagef("envoy: not built yet")
}
