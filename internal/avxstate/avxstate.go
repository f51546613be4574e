// Package avxstate clears the upper halves of the YMM registers after a library's
// AVX2 assembly that returns without doing so.
//
// circl's ML-KEM-768 and ML-DSA-65 assembly (github.com/cloudflare/circl v1.6.5:
// pke/kyber/internal/common/amd64.s, sign/internal/dilithium/amd64.s) ends without
// VZEROUPPER. Until something clears it, the dirty upper state makes every
// legacy-SSE instruction that follows slow: SHA-NI (SHA-256, so HKDF), AES-NI and
// PCLMULQDQ (AES-GCM), and the MOVUPS the Go compiler emits for copies. The Go
// standard library's own AVX2 code clears the state before it returns; see Intel's
// optimization manual, "Mixing AVX code with SSE code", and AMD's guidance to issue
// VZEROUPPER before leaving AVX code. On the bench VM (AMD EPYC) one HKDF-SHA-256 that
// follows an ML-KEM-768 encapsulation took 138 µs instead of 4 µs
// (BenchmarkHKDFAfterEncapsulate).
//
// Call [Clean] right after a circl call on a hot path, before Go code goes on.
package avxstate
