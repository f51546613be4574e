// Package okta obtains the credentials the gateway injects into Okta Management API
// calls: OAuth 2.0 access tokens from the org authorization server, and Okta API tokens.
//
// # Token sources
//
// A [TokenSource] turns an integration's vault credential into an Authorization header:
//
//   - api_key: "SSWS <token>" (okta-api.md §3, "SSWS API tokens").
//   - oauth2_client: a client-credentials grant at {origin}/oauth2/v1/token, the client
//     authenticated with client_secret_basic (a client secret) or private_key_jwt (an
//     RS256 or ES256 client assertion; the only method Okta's org authorization server
//     accepts for okta.* scopes). When Okta demands DPoP (invalid_dpop_proof,
//     use_dpop_nonce), the source holds an EC P-256 DPoP key per integration, answers the
//     nonce challenge once, and returns "DPoP <token>" plus a fresh proof bound to each
//     call's method and URL (RFC 9449).
//
// Tokens are cached per integration and scope set. Concurrent misses share one token
// request, and one goroutine per cached token refreshes it before it expires, so
// requests do not wait on Okta in steady state. All scopes of an integration are
// requested together; Okta silently drops scopes the app was not granted, so the
// granted set is cached and an operation whose scope is missing fails alone with
// insufficient_scope.
//
// # Failed token fetches
//
// A failed token fetch is remembered per integration and scope set (a negative cache),
// so that a wrong or rotated credential, or a struggling token endpoint, does not turn
// every call into a token request: Okta limits /oauth2/v1/token to about four
// requests a second (okta-api.md §2, "Rate-limit headers"). While a failure is remembered,
// Authorize returns a copy of the same [*Error] at once, without loading the credential
// or sending anything:
//
//   - invalid_client, token_rejected and invalid_credential, which only a change to the
//     credential or the app can fix, for [Config.FailureTTL] (default 5s);
//   - token_unavailable, token_timeout and rate_limited, for a backoff of 1s that
//     doubles per consecutive failure up to FailureTTL, or, for a 429 carrying
//     X-Rate-Limit-Reset, until Okta's window resets (at most a minute). Their
//     [Error.RetryAfter] says how long is left.
//
// [TokenSource.Invalidate], called when the vault entry is rotated or the integration
// changes, forgets the failure, so a fixed credential works on the very next call. A
// caller that gives up (cancelled context, own deadline) only ends its own wait: the
// shared request runs on under the source's context and its result, not the caller's
// error, is what is cached. insufficient_scope is remembered separately
// ([Config.ScopeRefusalTTL]), and vault loader errors not at all.
//
// # Errors
//
// Failures are [*Error] values with a stable Code (invalid_client, insufficient_scope,
// invalid_dpop_proof, token_timeout, token_unavailable, rate_limited, …).
// [ClassifyResponse] maps Okta resource answers (403 insufficient_scope, 401) onto the
// same type. No error or log line carries a secret, assertion, proof or token.
//
// # Metrics
//
// A TokenSource is a [prometheus.Collector]: quantaseal_okta_token_cache_lookups_total
// {result="hit"|"miss"|"negative"} counts Authorize calls served from the cache, waiting
// for a token request, or answered from the negative cache, and
// quantaseal_okta_token_fetches_total{result="ok"|<code>|"error"} counts token fetches.
//
// # Headers
//
// Okta's pagination Link headers and WWW-Authenticate challenges are parsed by package
// [github.com/quantaseal/gateway/okta/oktaheader], which package extproc shares
// without depending on this package.
//
// The test double for all of this is package oktatest.
package okta
