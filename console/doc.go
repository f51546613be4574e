// Package console is the gateway's Admin Console: server-rendered HTML pages under
// /console/ for managing integrations, sealed credentials (QuantaVault), the audit log,
// signing keys and — for the operator holding the admin token — tenants and API keys.
//
// # Wiring
//
// [New] returns an http.Handler that serves every path under /console/ (mount it with
// mux.Handle("/console/", h), without http.StripPrefix). It needs only the small
// interfaces declared here ([Registry], [Vault], [Audit]); registry.Store, *vault.Vault
// and audit.Store satisfy them.
//
// # Security
//
//   - Sign-in takes a tenant API key ("qs_live_…", checked by registry.Authenticator) or
//     the admin token (SHA-256 digests compared in constant time). Keys bound to one
//     integration cannot sign in, as on the management API.
//   - Sessions are server-side: a random 256-bit id in an in-memory map (so a restart
//     signs everyone out, and replicas do not share sessions), with an idle timeout and a
//     maximum age. The cookie is HttpOnly, SameSite=Strict, Path=/console/, and Secure when
//     the request came over TLS or with X-Forwarded-Proto: https.
//   - Every POST carries a per-session CSRF token, compared in constant time; a request
//     without it, or with a wrong one, gets 403 and changes nothing. The sign-in form uses
//     a double-submit cookie for the same purpose. Requests a browser marks
//     Sec-Fetch-Site: cross-site are refused outright.
//   - Every response carries a strict Content-Security-Policy (no inline script or
//     style; the one stylesheet and the small progressive-enhancement script are embedded
//     in the binary), X-Content-Type-Options, Referrer-Policy and Cache-Control: no-store.
//   - Pages are html/template; no user data is ever marked safe. Secrets (client
//     secrets, private keys, tokens) are accepted in password inputs and never rendered
//     back, not even after a validation error. API keys and tenant HMAC keys are shown once,
//     in the response to the form that created them.
//   - Every read and write is scoped by the session's tenant id: tenant A's session
//     cannot view or change tenant B's integration, credential or audit event by naming
//     its id (the stores answer not-found, the console 404).
//
// # Audit page
//
// The audit page reads the tenant's events of a time window (default: the last 24
// hours) through [Audit.ListEvents], filters them by integration, operation, decision and
// time, draws calls per operation over time split by decision as an SVG chart generated
// on the server, and lists the newest matching events. It reads at most
// [Config.MaxScanEvents] events per request (the audit query API pages forward in
// creation order only), and says so when a window holds more. "Verify chain" runs
// audit.Verify over each of the tenant's chains read from the store.
package console
