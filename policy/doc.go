// Package policy is the gateway's operation catalogue and default-deny decision logic.
//
// It is pure: no I/O, no gRPC, no net/http. The extproc package asks it three things:
//
//   - [Match]: which catalogue operation does this raw HTTP method and path (Okta's own
//     REST shape, "transparent mode") name? Anything not in the catalogue is
//     [ReasonUnknownOperation].
//   - [Decide]: is that operation in the integration's allowed_operations? Default deny.
//   - [BuildRequest]: turn an outbound-API payload ({"operation": …, "payload": {…}}) into
//     the exact upstream method, path with URL-encoded query, and body, validating the
//     payload against the operation's schema ([PayloadError] names the field).
//
// # Catalogue
//
// The catalogue is data: one table per system_type (today only "okta"), each entry an
// [Operation] with its method, path template, OAuth scope and payload schema. Adding an
// operation is a table entry (ARCHITECTURE.md, "Operation catalogue").
//
// # Path matching rules
//
// Matching works on the raw (still percent-encoded) path, because a decoded %2F would
// split into a different path (okta-api.md §1.2). The query is ignored for matching
// (envoy-extproc.md §10 item 8). These are rejected outright: dot segments (also
// percent-encoded ones), empty segments (so "//" and a trailing "/"), encoded slashes and
// backslashes (%2F, %5C in any case), raw backslashes, control characters, and malformed
// percent-encoding. A path parameter such as {id} takes a user id or a login; '@' may be
// raw or %40, as SDK v5.0.2 sends it raw (url.PathEscape).
//
// # Policy hash
//
// [Hash] is the audit event's policy_sha256 (audit-v1.md): hex SHA-256 of the RFC 8785
// (JCS) form of {"allowed_operations": [sorted], "envelope": e}. The shape is fixed, so
// this package carries its own small canonical encoder instead of importing audit.
package policy
