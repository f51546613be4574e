// Package vault is QuantaVault: it seals tenant credentials (Okta OAuth2 clients and API
// tokens) so that the stored bytes are useless without the tenant's key-management key, and
// unseals them for the short time a token request needs them.
//
// # Keys
//
// Each tenant has an ML-KEM-768 vault key pair (FIPS 203). The 64-byte decapsulation seed
// is stored only wrapped by a [KeyWrapper] (AWS KMS in production, see package
// [github.com/quantaseal/gateway/vault/awskms]; a key file on one machine, see
// [github.com/quantaseal/gateway/vault/localkey]) under the encryption context
// {"tenant_id": tenant, "purpose": [PurposeVaultKey]}. The encapsulation key is stored in
// clear and is checked against the unwrapped seed. The key pair is created on the tenant's
// first seal; two replicas sealing at once both end up using the one key the [Store] kept.
//
// Unwrapped keys are cached for [Config.KeyCacheTTL] so that KMS is not on the request
// path; concurrent misses for a tenant share one Unwrap. Plaintext credentials are never
// cached.
//
// # Sealed format
//
// A credential is sealed by encapsulating to the tenant's vault key, deriving an
// AES-256-GCM key with HKDF-SHA-256 from the shared secret, and encrypting a small JSON
// document with additional data that binds the tenant, the credential id and the
// credential type. The byte layout is specified in docs/spec/vault-v1.md; [Vault.Unseal]
// refuses a blob copied to another tenant, id or type, and any flipped bit.
//
// # Errors
//
// [ErrNotFound] means the credential (or tenant key) does not exist; [ErrUnavailable] means
// the key wrapper or the store could not be reached (HTTP 503, retry later); a
// [*ValidationError] names the request field that is wrong (HTTP 400). No error ever
// contains a secret.
package vault
