// Package envoy builds and checks the Envoy bootstrap configurations that put QuantaSeal in
// front of the Okta Management API.
//
// [Generate] turns a [Config] into a typed go-control-plane [bootstrapv3.Bootstrap]: a
// sidecar (one application, loopback listener) or a mesh egress gateway (many workloads,
// optional downstream mTLS), each with the ext_proc filter, or with ext_authz in the
// authorization-only variant. [MarshalYAML] renders it, and [Validate] parses any bootstrap
// YAML strictly back into the typed proto, resolves every typed extension, runs the PGV
// validators on the bootstrap and on every embedded Any, and enforces QuantaSeal's own
// invariants (fail closed, no secrets or query strings in access logs).
//
// # Design decisions
//
// Body buffering. Request and response bodies are not buffered by default (NONE), so a
// transparent list_users call streams through. Two mechanisms switch buffering on:
//
//   - The outbound API route (exact path [OutboundPath]) carries a per-route
//     ExtProcPerRoute override with request and response body BUFFERED. That path always
//     needs the JSON body (payload validation and the rewrite into the Okta call,
//     envoy-extproc.md §3) and always answers with an envelope, so the decision is static
//     and is made by Envoy: it does not depend on the processor remembering to ask.
//   - allow_mode_override: true, so that the processor may answer request_headers (or
//     response_headers) with mode_override response_body_mode BUFFERED when it decides,
//     from the integration and the Accept header, that the response must be enveloped.
//     That decision needs tenant data Envoy does not have, so it cannot be per route.
//     allowed_override_modes is deliberately left empty: Envoy compares each override
//     field by field against that list and silently ignores a non-matching override, and a
//     silently ignored response-body override would let an envelope-required response out
//     unwrapped. The processor is trusted (it already decides every request), so the list
//     would add a fail-open path without adding protection.
//
// Upstream selection. One TLS cluster (LOGICAL_DNS) per configured Okta host, pinned by
// SNI and SAN, with one virtual host per Okta host (domains = that host) and a route
// whose host_rewrite_literal is that host; the same layout serves a sidecar (one host)
// and a gateway (several). The dynamic forward proxy was rejected: restricting it to a
// host list needs the same per-host virtual hosts anyway, and it validates certificates
// only against whatever :authority the request ends with (auto_san_validation), whereas a
// static cluster per host cannot be steered anywhere else by a header. Requests addressed
// to Envoy itself (http://127.0.0.1:10000, the gateway's service name) land in a
// catch-all virtual host whose routes answer 404. The processor sets :authority to the
// integration's Okta host and Envoy re-resolves the route (ext_proc route_cache_action
// CLEAR, ext_authz clear_route_cache), so a request reaches a host only if the processor
// named it and the deployment configured it: an integration's token goes to that
// integration's own Okta host or nowhere, whatever host the client addressed.
//
// Route names ("okta:HOST", "outbound:HOST", "outbound:unpinned", "unrouted") reach the
// processor as the xds.route_name attribute (the route chosen before its reply).
//
// Escaped slashes. path_with_escaped_slashes_action is KEEP_UNCHANGED: the Okta SDK sends
// a login containing "/" as %2F (okta-api.md §1.2), and the processor rejects or routes
// such paths itself; normalize_path and merge_slashes still run.
package envoy
