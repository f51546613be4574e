// Package authlimit limits failed authentication attempts per source, so that guessing
// API keys or the admin token from one address is slowed to a trickle while honest
// callers, who rarely fail, never notice it.
//
// # Model
//
// Each source (an IP address; IPv6 addresses are grouped by their /64, the block one
// host usually controls) has a token bucket of [Config.Burst] failure tokens, refilled
// at one token per [Config.Refill]. A failed attempt spends a token ([Limiter.Failure]);
// while the bucket is empty, [Limiter.Allow] refuses the source and says how long to
// wait. Successful attempts cost nothing and refill nothing, so a valid key does not
// reset the count of an address that is also guessing.
//
// # Bounded memory
//
// Only sources with a spent token are tracked, at most [Config.MaxSources] of them, in
// least-recently-used order; a full bucket is forgotten. When the map is full the
// least recently seen source is evicted, which forgives it: an attacker who controls
// more than MaxSources addresses can therefore keep guessing at the refill rate of
// the evicted ones. That is the price of a fixed memory bound; with the defaults
// (10,000 sources of ~150 bytes) the map stays under 2 MiB.
//
// # Sources
//
// [SourceFromAddr] turns a "host:port" (http.Request.RemoteAddr, Envoy's
// source.address attribute) or a bare IP into a source key. The caller decides which
// address to trust: the HTTP API uses the TCP peer; the ext_proc server should use
// Envoy's source.address request attribute (envoy-extproc.md §5, "Attributes"), and an
// X-Forwarded-For hop only when Envoy is configured to append it from a trusted edge.
package authlimit
