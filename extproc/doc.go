// Package extproc is the Envoy-facing gRPC server: the ext_proc ExternalProcessor
// (Process) and the ext_authz Authorization service (Check), both running one
// pipeline — authenticate the tenant API key, resolve the integration, match the
// catalogue operation ([policy.Match] / [policy.BuildRequest]), apply the default-deny
// policy, inject the Okta credential, and audit — plus the optional
// HybridCryptoEnvelope on ext_proc responses.
//
// # Modes
//
// Transparent mode: the caller speaks Okta's REST shape (GET /api/v1/users?…) with
// Authorization: SSWS qs_live_… (or Bearer, or X-API-Key). The request_headers reply
// swaps in the real Authorization (and DPoP), sets :authority to the Okta host, asks
// for identity encoding, and removes the caller's credential, x-quantaseal-* and
// hop-by-hop headers. Its mode_override buffers the response body only when it must
// be read (envelope, or [Config.HashResponses]).
//
// Outbound mode: POST [OutboundPath] with {"integration_id", "operation",
// "payload"}. The body is buffered; the request_body reply rewrites :method, :path,
// :authority, content-type, content-length and the body into the Okta call. The
// response is always an envelope.
//
// # Envoy rules this package follows
//
// Every item of envoy-extproc.md §10 is a requirement: header values are written in
// raw_value only (ext_authz: value); a denial is an ImmediateResponse with a status
// ≥ 400, never an OK stream close; each message gets exactly one reply of its own
// type, in order; bodiless requests and responses get their work done in the headers
// reply; content-length matches any replaced body; a slow step first sends a reply
// holding only override_message_timeout; pseudo-headers are changed by a single
// overwrite. The Envoy configuration must set allow_mode_override (the response body
// is BUFFERED per request) and allow_all_routing (outbound mode rewrites :method and
// :authority).
//
// # Audit
//
// A call denied or failed before it is forwarded ends in exactly one committed audit
// event. A call that is forwarded — read or state-changing, in both modes — has two:
// its intent (decision allow, reason forwarded, status 0), committed before the reply
// that releases the request upstream, and its outcome, whose intent_id names the
// intent, committed when the answer comes (before it is released to the client) or
// when the stream ends early (reason aborted). So nothing reaches Okta without a
// committed event, even when the store fails or the process dies between forwarding
// and answering (docs/spec/audit-v1.md "Chains"). The intent binds what is sent: a
// bodiless call's intent is committed in the request_headers reply; a transparent
// call with a body has its intent committed in the request_body reply, with
// request_sha256, and that reply also injects the credential (Envoy holds the
// headers until then, SEND + BUFFERED); an outbound call's intent carries the
// rewritten method, path, query and body hash. An ext_authz Check commits the intent
// only: the processor never sees the answer.
//
// Appends run under context.WithoutCancel with their own timeout, while Envoy holds
// the message (with override_message_timeout when slow); when one fails the client
// gets 503 and nothing is forwarded or released. The response carries the outcome's
// id in X-QuantaSeal-Audit-Event.
//
// # Caching
//
// A successful API-key authentication and integration resolution are remembered for
// [Config.AuthCacheTTL] (1s by default), so that steady-state calls make no store
// round trip before their audit commit. Failures are never remembered. A key revoked,
// or an integration created, changed or deleted, through another replica is honoured
// here for at most that TTL; the replica that makes the change calls
// [Server.ForgetAPIKey] or [Server.ForgetIntegrations] and is exact. Entries are keyed
// by the SHA-256 of the presented key and by the authenticated tenant, so one tenant's
// entry never answers another's call.
//
// # Errors
//
// status.go is the one place that maps an error class to an HTTP status, gRPC code
// and machine code; the code is the JSON body's error member, the metric label and the
// audit reason.
//
// The collaborators are small interfaces declared in deps.go; cmd/quantaseal adapts
// the registry, okta, envelope and audit packages to them.
package extproc
