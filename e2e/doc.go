// Package e2e holds the end-to-end tests of the QuantaSeal gateway. It contains no
// production code.
//
// The tests build the real quantaseal binary once (TestMain), run `quantaseal serve` as a
// subprocess configured only through QUANTASEAL_* environment variables, seed it through
// the documented HTTP API (ARCHITECTURE.md "Tenants and keys", "Vault", "Integrations"),
// and drive it through a fake Envoy ([github.com/quantaseal/gateway/internal/envoytest])
// built from an [github.com/quantaseal/gateway/envoy] sidecar bootstrap, in front of the
// Okta test double ([github.com/quantaseal/gateway/okta/oktatest]).
//
// # What is checked
//
//  1. The unchanged official Okta Go SDK (v5.0.2) works through the gateway with a
//     qs_live_ key, and the double only ever sees the real Okta credential.
//  2. Default deny: operations outside allowed_operations and path tricks never reach
//     the double or a non-catalogue endpoint.
//  3. The Go client's Outbound returns verified, decrypted envelopes for every operation.
//  4. invalid_client and insufficient_scope reach the caller as documented.
//  5. Every call is in the audit chain, which verifies (`quantaseal audit verify`), and
//     every returned audit id is served with a valid proof.
//  6. No seeded or issued secret appears in logs, audit events, client-visible
//     responses or the database.
//  7. The whole flow runs on the embedded store, on PostgreSQL and with AWS KMS (the
//     local KMS server); the latter two need the services of `make test`
//     (source /tmp/qs-services/env, or internal/testenv skips them).
//
// The numbered subtests of one variant share a gateway and run in order: 5 and 6 check
// the calls made by 1–4, so run a whole variant (-run TestEndToEnd/embedded_store), not a
// single numbered subtest. E2E_GATEWAY_LOG_DIR=DIR keeps each variant's gateway output.
//
// When the test binary is built with -race, the gateway binary is too, and a data race
// reported by the gateway fails the test.
package e2e
