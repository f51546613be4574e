// Package reliability holds the gateway's fault-injection and abuse tests (issue 9). It
// contains no production code: every test runs the real `quantaseal serve` binary
// (internal/gatewaytest) behind a fake Envoy (internal/envoytest) in front of the Okta
// double (okta/oktatest), or, for stream-level faults, an in-process extproc server
// built with fakes, and breaks something on purpose.
//
// # Faults
//
//   - PostgreSQL cut mid-load (a TCP proxy) and restored: 503 during the outage, no
//     call, read or write, forwarded without its committed intent event, the chain
//     verifies, no acknowledged event missing.
//   - The KMS (QUANTASEAL_KMS=aws against the local KMS server through a TCP proxy) cut:
//     cached vault keys serve until QUANTASEAL_KMS_CACHE_TTL, then 503; recovery.
//   - Okta's token endpoint slow, failing, or answering invalid_client; the Management
//     API slow, 5xx, 429 with rate-limit headers: clear errors, bounded latency, no
//     retries, one token request per token lifetime.
//   - Envoy streams cancelled at every phase, oversized headers and bodies, messages in
//     unexpected order, unknown messages: no panic, no goroutine leak (goleak), each
//     stream audited once.
//   - `quantaseal serve` killed with SIGKILL under load and restarted: no acknowledged
//     event lost, the chain continues and verifies.
//
// # Abuse
//
//   - Path and header tricks never reach a non-catalogue Okta endpoint or another host.
//   - API-key guessing is rate limited per source (internal/authlimit) and audited
//     without the presented key.
//   - Tenant isolation across every endpoint and the processor.
//   - Seeded secrets never appear in logs, audit events, /metrics, error bodies,
//     response headers or the database (internal/gatewaytest.Scanner).
//
// # Figures
//
// Each test adds a row of figures (faults injected, requests sent, events committed and
// verified, leaks found). With QUANTASEAL_WRITE_RELIABILITY_REPORT=1, a passing run
// writes them to docs/reliability.md.
//
// The tests need the services of `make test` (source /tmp/qs-services/env); without
// them the PostgreSQL and KMS tests skip unless QUANTASEAL_TEST_REQUIRE_SERVICES=1.
// -short skips everything that starts the gateway binary.
package reliability
