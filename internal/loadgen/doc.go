// Package loadgen is the measurement harness of the ext_proc gateway: a load generator
// that plays Envoy against an ExternalProcessor, and the "bare crypto" ceiling the
// envelope scenarios are compared with.
//
// # Playing Envoy
//
// [Run] opens ext_proc streams the way Envoy's ext_proc filter does
// (envoy-extproc.md §1):
//
//   - one gRPC stream per HTTP request, many streams multiplexed on a few shared
//     HTTP/2 connections ([Config.Conns], default 2, like the per-worker connection
//     Envoy keeps to its ext_proc cluster);
//   - headers as raw_value only, lower-case keys, pseudo-headers first, and a fresh
//     x-request-id per request, as the connection manager adds one;
//   - messages in the order the scenario's processing_mode gives, each sent only once
//     the previous one is answered: request_headers (end_of_stream when there is no
//     body), request_body when its mode is not NONE, response_headers with :status,
//     response_body likewise; protocol_config on the first message;
//   - mode_override on a headers reply is honoured when [Scenario.AllowModeOverride]
//     is set (it changes the body modes for the rest of the stream, §5);
//     CONTINUE_AND_REPLACE on a headers reply turns that direction's body off (§3);
//   - a reply carrying override_message_timeout is not the answer: the real reply
//     follows as a separate message; the per-message timer ([Config.MessageTimeout])
//     is re-armed once per message when the override is within
//     [Config.MaxMessageTimeout] (§5 "Timeouts");
//   - every reply must answer the outstanding message: an empty reply, one of the
//     wrong type, a header set in value instead of raw_value, an OK close of the
//     stream (Envoy would continue unprocessed) or a late reply is an error
//     (§10 items 1, 2, 10, 13); an ImmediateResponse is a denial.
//
// The stream is closed after the last reply with a half-close and a cancel, as Envoy
// does (closeStream + resetStream).
//
// # Closed and open loop
//
// By default the load is a closed loop: [Config.Concurrency] streams, each starting
// its next request when the previous one ends. It finds the most requests per second
// the processor can answer, but its latency is that of a saturated processor, and a
// stall hides itself by stopping the generator too. With [Config.Rate] the load is an
// open loop (openloop.go): requests start on an evenly spaced schedule whatever is in
// flight, Concurrency caps the requests in flight and a start that finds the cap
// reached is counted as dropped rather than delayed, and latency runs from each
// request's scheduled start — the latency a processor shows at a given load.
//
// # What is reported
//
// [Result] holds the completed requests per second, latency percentiles overall and
// per phase (the time from sending each message to its reply), the outcome counts, the
// achieved rate, drops and start lag of an open-loop run, the CPU time per request of
// this process (getrusage), of the server process when
// [Config.ServerPID] names one (/proc/PID/stat) and of the database server when
// [Config.DatabaseCPU] reads it (for a local PostgreSQL, [ProcessFamilyCPU] of its
// postmaster: on a shared machine its commits are part of a call's cost), the most body messages that awaited
// their replies at once (what a processor that buffers bodies had to hold), and — for
// a server running in this process — heap allocations per request from
// runtime.MemStats, which then include the generator's own. [PeakRSS] reads a server's
// peak resident set size.
//
// # Crypto ceiling
//
// [Ceiling] measures, with the same concurrency as the load, how many times per second
// this machine can seal a given body with [envelope.Seal] and, separately, run the
// bare primitives the envelope needs (ML-KEM-768 encapsulation, ML-DSA-65 signature,
// AES-256-GCM, HMAC-SHA-512). An envelope scenario's throughput divided by the Seal
// rate says how much the gateway loses to everything that is not cryptography.
//
// # Bodies
//
// [UsersPage] and [SystemLogPage] build Okta responses of realistic size and shape
// (okta-api.md §1.1 and §1.7); [SystemLogPageOfSize] fills a page to an exact size,
// such as a proxy's buffer limit.
package loadgen
