package vault

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
)

// DefaultKeyCacheTTL is how long an unwrapped tenant key is kept when Config.KeyCacheTTL
// is zero.
const DefaultKeyCacheTTL = 5 * time.Minute

// IDPrefix is the prefix of credential ids ("vlt_…").
const IDPrefix = "vlt"

const maxTenantIDLen = 255

// Config configures a Vault.
type Config struct {
	// KeyCacheTTL is how long an unwrapped tenant vault key stays in memory. Zero means
	// DefaultKeyCacheTTL; a negative value disables the cache (every call unwraps).
	KeyCacheTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives key lifecycle events (nil: discard). Never a secret.
	Logger *slog.Logger
}

// Vault seals, rotates and unseals tenant credentials. It is safe for concurrent use.
type Vault struct {
	store   Store
	wrapper KeyWrapper
	now     func() time.Time
	log     *slog.Logger
	cache   *keyCache
}

// New returns a Vault over store that protects tenant keys with wrapper.
func New(cfg Config, store Store, wrapper KeyWrapper) *Vault {
	if cfg.KeyCacheTTL == 0 {
		cfg.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Vault{
		store:   store,
		wrapper: wrapper,
		now:     cfg.Now,
		log:     cfg.Logger,
		cache:   newKeyCache(cfg.KeyCacheTTL, cfg.Now),
	}
}

// Seal validates c, creates the tenant's vault key if this is its first seal, and stores c
// sealed under a new id. c.Type may be empty (it is set to credType); otherwise it must
// equal credType. The returned metadata never holds the secret.
//
// Errors: [*ValidationError] for a bad name, type or secret; [ErrUnavailable] if the key
// wrapper or the store is unreachable, in which case nothing has been stored.
func (v *Vault) Seal(ctx context.Context, tenantID, name, credType string, c Credential) (CredentialMeta, error) {
	if err := checkTenant(tenantID); err != nil {
		return CredentialMeta{}, err
	}
	if err := checkText("name", name, maxNameLen, false); err != nil {
		return CredentialMeta{}, err
	}
	if c.Type == "" {
		c.Type = credType
	}
	if c.Type != credType {
		return CredentialMeta{}, invalid("credential_type", "differs from the secret's type")
	}
	now := v.timestamp()
	meta := CredentialMeta{TenantID: tenantID, ID: id.New(IDPrefix), Name: name, Type: c.Type, CreatedAt: now}
	if err := v.sealInto(ctx, &meta, c, v.store.PutSealedCredential); err != nil {
		return CredentialMeta{}, err
	}
	return meta, nil
}

// Rotate reseals a new secret c under the existing credential id, keeping its name and
// type (c.Type may be empty; a different type is a [*ValidationError]). The caller drops
// cached tokens of the integrations that use the credential.
//
// Errors: [ErrNotFound], [*ValidationError], [ErrUnavailable] (nothing changed).
func (v *Vault) Rotate(ctx context.Context, tenantID, credentialID string, c Credential) (CredentialMeta, error) {
	if err := checkTenant(tenantID); err != nil {
		return CredentialMeta{}, err
	}
	old, err := v.store.GetSealedCredential(ctx, tenantID, credentialID)
	if err != nil {
		return CredentialMeta{}, storeErr("rotate: read credential", err)
	}
	if c.Type == "" {
		c.Type = old.Type
	}
	if c.Type != old.Type {
		return CredentialMeta{}, invalid("credential_type", "cannot change on rotate")
	}
	meta := old.CredentialMeta
	meta.RotatedAt = v.timestamp()
	// Replace, not Put: a Delete that lands between the read above and the write must
	// not be undone by an insert.
	if err := v.sealInto(ctx, &meta, c, v.store.ReplaceSealedCredential); err != nil {
		return CredentialMeta{}, err
	}
	return meta, nil
}

// sealInto validates c, seals it under meta's tenant, id and type, fills meta.Fingerprint
// and stores the row with put.
func (v *Vault) sealInto(ctx context.Context, meta *CredentialMeta, c Credential, put func(context.Context, SealedCredential) error) error {
	info, err := c.validate()
	if err != nil {
		return err
	}
	key, err := v.tenantKey(ctx, meta.TenantID)
	if err != nil {
		return err
	}
	pt, err := encodeCredential(c)
	if err != nil {
		return fmt.Errorf("vault: encode credential: %w", err)
	}
	blob, err := seal(key.pub, binding{kind: kindCredential, tenantID: meta.TenantID, id: meta.ID, typ: meta.Type}, pt)
	clear(pt)
	if err != nil {
		return fmt.Errorf("vault: seal credential: %w", err)
	}
	meta.Fingerprint = fingerprint(c, info, key.fpKey)
	if err := put(ctx, SealedCredential{CredentialMeta: *meta, Ciphertext: blob}); err != nil {
		return storeErr("store sealed credential", err)
	}
	return nil
}

// Unseal returns the plaintext credential. Use it only for as long as a token request
// needs it; it is never cached.
//
// Errors: [ErrNotFound]; [ErrUnavailable]; any other error means the stored blob does not
// open for this tenant, id and type (tampering or a store bug) and is not retryable.
func (v *Vault) Unseal(ctx context.Context, tenantID, credentialID string) (Credential, error) {
	if err := checkTenant(tenantID); err != nil {
		return Credential{}, err
	}
	sc, err := v.store.GetSealedCredential(ctx, tenantID, credentialID)
	if err != nil {
		return Credential{}, storeErr("unseal: read credential", err)
	}
	key, err := v.tenantKey(ctx, tenantID)
	if err != nil {
		return Credential{}, err
	}
	// Bind to what the caller asked for, not to what the row says, so that a row of
	// another tenant or id returned by a faulty store does not open.
	pt, err := open(key.priv, binding{kind: kindCredential, tenantID: tenantID, id: credentialID, typ: sc.Type}, sc.Ciphertext)
	if err != nil {
		return Credential{}, fmt.Errorf("vault: unseal %s: %w", credentialID, err)
	}
	c, err := decodeCredential(pt)
	clear(pt)
	if err != nil {
		return Credential{}, fmt.Errorf("vault: unseal %s: %w", credentialID, err)
	}
	if c.Type != sc.Type {
		return Credential{}, fmt.Errorf("vault: unseal %s: sealed type differs from stored type", credentialID)
	}
	return c, nil
}

// Get returns a credential's metadata (never its secret), or [ErrNotFound].
func (v *Vault) Get(ctx context.Context, tenantID, credentialID string) (CredentialMeta, error) {
	sc, err := v.store.GetSealedCredential(ctx, tenantID, credentialID)
	if err != nil {
		return CredentialMeta{}, storeErr("get credential", err)
	}
	return sc.CredentialMeta, nil
}

// List returns the metadata of the tenant's credentials.
func (v *Vault) List(ctx context.Context, tenantID string) ([]CredentialMeta, error) {
	ms, err := v.store.ListSealedCredentials(ctx, tenantID)
	if err != nil {
		return nil, storeErr("list credentials", err)
	}
	return ms, nil
}

// Delete deletes a credential, or returns [ErrNotFound]. Refusing to delete a credential
// that an integration still uses is the caller's job.
func (v *Vault) Delete(ctx context.Context, tenantID, credentialID string) error {
	if err := v.store.DeleteSealedCredential(ctx, tenantID, credentialID); err != nil {
		return storeErr("delete credential", err)
	}
	return nil
}

// SealBytes seals a tenant secret other than a credential (the tenant HMAC key) under
// purpose, e.g. "hmac_key". The caller stores the result; [Vault.OpenBytes] with the same
// tenant and purpose opens it. Errors: [ErrUnavailable].
func (v *Vault) SealBytes(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	if err := checkTenant(tenantID); err != nil {
		return nil, err
	}
	if err := checkText("purpose", purpose, maxIDLen, true); err != nil {
		return nil, err
	}
	key, err := v.tenantKey(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	blob, err := seal(key.pub, binding{kind: kindSecret, tenantID: tenantID, id: purpose}, plaintext)
	if err != nil {
		return nil, fmt.Errorf("vault: seal %s: %w", purpose, err)
	}
	return blob, nil
}

// OpenBytes opens a blob made by [Vault.SealBytes] for the same tenant and purpose.
// Errors: [ErrUnavailable]; any other error means the blob does not open.
func (v *Vault) OpenBytes(ctx context.Context, tenantID, purpose string, sealed []byte) (secret.Secret, error) {
	if err := checkTenant(tenantID); err != nil {
		return secret.Secret{}, err
	}
	key, err := v.tenantKey(ctx, tenantID)
	if err != nil {
		return secret.Secret{}, err
	}
	pt, err := open(key.priv, binding{kind: kindSecret, tenantID: tenantID, id: purpose}, sealed)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("vault: open %s: %w", purpose, err)
	}
	s := secret.FromBytes(pt)
	clear(pt)
	return s, nil
}

// tenantKey returns the tenant's unwrapped vault key from the cache, loading (or, on the
// tenant's first use, creating) it on a miss.
func (v *Vault) tenantKey(ctx context.Context, tenantID string) (*tenantKey, error) {
	return v.cache.get(ctx, tenantID, func(ctx context.Context) (*tenantKey, error) {
		wk, err := v.store.GetTenantVaultKey(ctx, tenantID)
		if errors.Is(err, ErrNotFound) {
			return v.createKey(ctx, tenantID)
		}
		if err != nil {
			return nil, storeErr("read vault key", err)
		}
		return v.unwrapKey(ctx, tenantID, wk)
	})
}

// createKey makes the tenant's vault key pair. The seed is wrapped before anything is
// stored, so a wrapper failure leaves no row. If another replica stored a key first, the
// store keeps that one (idempotent put) and this replica uses it.
func (v *Vault) createKey(ctx context.Context, tenantID string) (*tenantKey, error) {
	seed := make([]byte, mlkem768.KeySeedSize)
	defer clear(seed)
	_, _ = rand.Read(seed) // crypto/rand.Read never fails (Go 1.24+)
	wrapped, err := v.wrapper.Wrap(ctx, tenantID, PurposeVaultKey, seed)
	if err != nil {
		return nil, fmt.Errorf("vault: wrap new vault key: %w", err)
	}
	key, err := keyFromSeed(tenantID, seed)
	if err != nil {
		return nil, err
	}
	wk := WrappedKey{
		TenantID:         tenantID,
		EncapsulationKey: packPub(key.pub),
		WrappedSeed:      wrapped,
		CreatedAt:        v.timestamp(),
	}
	if d, ok := v.wrapper.(KeyDescriber); ok {
		if wk.KeyProvider, wk.KMSKeyID, err = d.DescribeKey(ctx, tenantID); err != nil {
			return nil, fmt.Errorf("vault: describe key: %w", err)
		}
	}
	if err := v.store.PutTenantVaultKey(ctx, tenantID, wk); err != nil {
		return nil, storeErr("store vault key", err)
	}
	stored, err := v.store.GetTenantVaultKey(ctx, tenantID)
	if err != nil {
		return nil, storeErr("re-read vault key", err)
	}
	if !bytes.Equal(stored.EncapsulationKey, wk.EncapsulationKey) {
		// Lost the race to another replica: use the key the store kept.
		return v.unwrapKey(ctx, tenantID, stored)
	}
	v.log.LogAttrs(ctx, slog.LevelInfo, "vault key created",
		slog.String("tenant_id", tenantID), slog.String("key_provider", wk.KeyProvider))
	return key, nil
}

func (v *Vault) unwrapKey(ctx context.Context, tenantID string, wk WrappedKey) (*tenantKey, error) {
	seed, err := v.wrapper.Unwrap(ctx, tenantID, PurposeVaultKey, wk.WrappedSeed)
	if err != nil {
		return nil, fmt.Errorf("vault: unwrap vault key: %w", err)
	}
	defer clear(seed)
	if len(seed) != mlkem768.KeySeedSize {
		return nil, errors.New("vault: unwrapped vault key seed has the wrong length")
	}
	key, err := keyFromSeed(tenantID, seed)
	if err != nil {
		return nil, err
	}
	// The encapsulation key is stored in clear; a swapped one would make new seals
	// encrypt to someone else. Seal always uses the key derived from the seed, and a
	// mismatch is reported here.
	if !bytes.Equal(packPub(key.pub), wk.EncapsulationKey) {
		return nil, errors.New("vault: stored encapsulation key does not match the wrapped seed")
	}
	v.log.LogAttrs(ctx, slog.LevelDebug, "vault key unwrapped", slog.String("tenant_id", tenantID))
	return key, nil
}

func keyFromSeed(tenantID string, seed []byte) (*tenantKey, error) {
	pub, priv := mlkem768.NewKeyFromSeed(seed)
	fpKey, err := hkdf.Key(sha256.New, seed, nil, hkdfInfoBase+" fingerprint\x00"+tenantID, 32)
	if err != nil {
		return nil, fmt.Errorf("vault: derive fingerprint key: %w", err)
	}
	return &tenantKey{priv: priv, pub: pub, fpKey: fpKey}, nil
}

func packPub(pub *mlkem768.PublicKey) []byte {
	b := make([]byte, mlkem768.PublicKeySize)
	pub.Pack(b)
	return b
}

// timestamp is now in UTC at microsecond precision, what PostgreSQL keeps, so that the
// metadata returned by Seal equals what a later Get reads back.
func (v *Vault) timestamp() time.Time { return v.now().UTC().Truncate(time.Microsecond) }

func checkTenant(tenantID string) error {
	if tenantID == "" || len(tenantID) > maxTenantIDLen {
		return invalid("tenant_id", "required, at most 255 bytes")
	}
	return nil
}

// storeErr wraps a store error: ErrNotFound passes through; anything else means the store
// could not do its job and matches ErrUnavailable.
func storeErr(op string, err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("vault: %s: %w", op, err)
	}
	return fmt.Errorf("vault: %s: %w: %w", op, ErrUnavailable, err)
}
