// Package envelope implements the HybridCryptoEnvelope v1 (docs/spec/envelope-v1.md):
// the sealed, doubly signed form in which the gateway returns an upstream response.
//
// # Format
//
// The body is encrypted to the tenant's ML-KEM-768 response key (FIPS 203), with
// AES-256-GCM under a key derived by HKDF-SHA-256 from the shared secret. The
// length-prefixed message M over every member is signed twice: with the gateway's
// ML-DSA-65 key (FIPS 204, context "quantaseal-envelope-v1", hedged) and with the
// tenant's HMAC-SHA-512 key.
//
// # Sealing and opening
//
// [Seal] makes an envelope; [Envelope.MarshalJSON] writes it. [Open] parses, verifies
// and decrypts one: both signature checks always run to completion and are combined
// without short-circuit, and nothing is decrypted unless both pass. A refusal is an
// [*OpenError] naming the member and the check that failed.
//
// # Keys
//
// Keys are kept in seed form and parsed once: [SigningKey] (ML-DSA-65, 32-byte seed),
// [ResponseKey] (ML-KEM-768, 64-byte seed d‖z), [HMACKey]; their public halves are
// [VerifyingKey] and [EncapsulationKey]. [Profile] is the tenant's client profile file.
//
// The package depends only on the standard library, circl and internal/secret; it does
// no I/O except [LoadProfile] and the Save methods of [Profile].
//
// # Test vectors
//
// testdata/vectors.json holds positive and negative vectors for other implementations;
// `go test ./envelope -run Vectors -update` rewrites it (say why in the commit).
package envelope
