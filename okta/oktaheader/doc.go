// Package oktaheader parses and rewrites the HTTP headers of Okta Management API
// responses that the gateway reads: pagination Link headers (RFC 8288) and
// WWW-Authenticate challenges (RFC 9110 §11.6.1).
//
// It is pure string handling, with no I/O and no imports beyond the standard
// library's strings, so that both the token sources (package okta) and the Envoy
// processor (package extproc, which must not depend on okta's HTTP client code) use
// one implementation.
//
// # Links
//
// Okta sends one Link header per rel (okta-api.md §1, §4); [ParseLinks] also splits
// comma-joined values, as some proxies fold them. [RewriteLinks] moves link targets
// from the Okta origin to the gateway's, keeping one value per link-value, because
// Okta SDK v5 loops forever on a joined header. [NextLink] finds the rel="next"
// target.
//
// # Challenges
//
// [AuthParams] reads the parameters of one challenge, for instance the error and
// scope of a 403 insufficient_scope answer (okta-api.md §2: that answer's body is
// empty, the scope is only in the header).
package oktaheader
