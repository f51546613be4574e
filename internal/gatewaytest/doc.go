// Package gatewaytest runs the real quantaseal binary for tests: it builds
// cmd/quantaseal once per test binary, starts `quantaseal serve` on free loopback ports
// with a given environment and data directory, waits for /readyz, captures its JSON log
// lines, stops it gracefully or with SIGKILL and restarts it on the same ports and data.
// Around the process it offers what fault and end-to-end tests need:
//
//   - [API]: the documented HTTP API (tenants, API keys, vault, integrations, audit)
//     for seeding and for raw requests;
//   - [Gateway.Conn] and [NewEnvoy]: an ext_proc gRPC connection and a fake Envoy
//     (internal/envoytest) generated from the shipped sidecar bootstrap;
//   - [Proxy]: a TCP proxy that can be cut and restored (PostgreSQL, the KMS);
//   - [Front]: an HTTP front for the Okta double that records every request (host,
//     path, headers) and injects delays, statuses and headers per endpoint class;
//   - [Scanner]: a search for known secrets in byte blobs in their raw, JSON-escaped,
//     URL-escaped, hex and base64/base64url forms (at every byte alignment);
//   - [RunCLI]: other subcommands (audit verify, audit export).
//
// # Use
//
//	func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }
//
//	g := gatewaytest.Start(t, gatewaytest.Options{AllowedDomains: []string{okta.Origin()}})
//	tn := g.API().CreateTenant(t, g.AdminToken, "acme")
//	e := gatewaytest.NewEnvoy(t, g.GRPCAddr, okta.URL())
//	g.Kill(t); g.Restart(t)
//
// The binary is built with -race when the test binary is, and a data race the gateway
// reports fails the test at Stop; $QUANTASEAL_TEST_GATEWAY_BIN names a prebuilt binary
// to use instead (for example one built from a patched tree). Everything listens on
// 127.0.0.1 only.
package gatewaytest
