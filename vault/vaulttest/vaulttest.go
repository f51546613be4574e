// Package vaulttest provides in-memory test doubles for package vault's collaborators:
// [MemStore], a [vault.Store] with the contract's semantics, and [FakeWrapper], a
// [vault.KeyWrapper] standing in for KMS. Both can be switched to failing, as if the
// database or KMS were down, and count the calls tests assert on.
//
// They are for tests only (the repository's dependency test keeps *test packages out
// of production code). The registry's real stores are checked against the contract by
// package registrytest, not by these doubles.
package vaulttest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quantaseal/gateway/vault"
)

// MemStore is an in-memory [vault.Store] with the contract's semantics: idempotent key
// put, replace on credential put, tenant scoping, [vault.ErrNotFound], List ordered by
// ID. It copies byte slices in and out, like a database. Its zero value is not usable;
// call [NewMemStore].
type MemStore struct {
	mu    sync.Mutex
	keys  map[string]vault.WrappedKey
	creds map[[2]string]vault.SealedCredential
	down  atomic.Bool
	puts  atomic.Int64 // PutTenantVaultKey calls
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{keys: map[string]vault.WrappedKey{}, creds: map[[2]string]vault.SealedCredential{}}
}

// errStoreDown is what every MemStore call returns while the store is down; the Vault
// maps it to vault.ErrUnavailable like any non-NotFound store error.
var errStoreDown = errors.New("vaulttest: store: connection refused")

// SetDown makes every later call fail (true) as if the database were unreachable, or
// work again (false).
func (s *MemStore) SetDown(down bool) { s.down.Store(down) }

// KeyPuts returns how many PutTenantVaultKey calls reached the store while it was up.
func (s *MemStore) KeyPuts() int64 { return s.puts.Load() }

// PutTenantVaultKey implements [vault.Store].
func (s *MemStore) PutTenantVaultKey(_ context.Context, tenantID string, k vault.WrappedKey) error {
	if s.down.Load() {
		return errStoreDown
	}
	s.puts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[tenantID]; !ok {
		k.EncapsulationKey = slices.Clone(k.EncapsulationKey)
		k.WrappedSeed = slices.Clone(k.WrappedSeed)
		s.keys[tenantID] = k
	}
	return nil
}

// GetTenantVaultKey implements [vault.Store].
func (s *MemStore) GetTenantVaultKey(_ context.Context, tenantID string) (vault.WrappedKey, error) {
	if s.down.Load() {
		return vault.WrappedKey{}, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[tenantID]
	if !ok {
		return vault.WrappedKey{}, vault.ErrNotFound
	}
	k.EncapsulationKey = slices.Clone(k.EncapsulationKey)
	k.WrappedSeed = slices.Clone(k.WrappedSeed)
	return k, nil
}

// ReplaceTenantVaultKey overwrites the tenant's stored key unconditionally, bypassing
// the put-if-absent rule, for tests that tamper with stored rows.
func (s *MemStore) ReplaceTenantVaultKey(tenantID string, k vault.WrappedKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k.EncapsulationKey = slices.Clone(k.EncapsulationKey)
	k.WrappedSeed = slices.Clone(k.WrappedSeed)
	s.keys[tenantID] = k
}

// PutSealedCredential implements [vault.Store].
func (s *MemStore) PutSealedCredential(_ context.Context, c vault.SealedCredential) error {
	if s.down.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Ciphertext = slices.Clone(c.Ciphertext)
	s.creds[[2]string{c.TenantID, c.ID}] = c
	return nil
}

// ReplaceSealedCredential implements [vault.Store].
func (s *MemStore) ReplaceSealedCredential(_ context.Context, c vault.SealedCredential) error {
	if s.down.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{c.TenantID, c.ID}
	old, ok := s.creds[k]
	if !ok {
		return vault.ErrNotFound
	}
	old.Ciphertext, old.Fingerprint, old.RotatedAt = slices.Clone(c.Ciphertext), c.Fingerprint, c.RotatedAt
	s.creds[k] = old
	return nil
}

// GetSealedCredential implements [vault.Store].
func (s *MemStore) GetSealedCredential(_ context.Context, tenantID, credentialID string) (vault.SealedCredential, error) {
	if s.down.Load() {
		return vault.SealedCredential{}, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[[2]string{tenantID, credentialID}]
	if !ok {
		return vault.SealedCredential{}, vault.ErrNotFound
	}
	c.Ciphertext = slices.Clone(c.Ciphertext)
	return c, nil
}

// DeleteSealedCredential implements [vault.Store].
func (s *MemStore) DeleteSealedCredential(_ context.Context, tenantID, credentialID string) error {
	if s.down.Load() {
		return errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{tenantID, credentialID}
	if _, ok := s.creds[k]; !ok {
		return vault.ErrNotFound
	}
	delete(s.creds, k)
	return nil
}

// ListSealedCredentials implements [vault.Store].
func (s *MemStore) ListSealedCredentials(_ context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []vault.CredentialMeta
	for k, c := range s.creds {
		if k[0] == tenantID {
			out = append(out, c.CredentialMeta)
		}
	}
	slices.SortFunc(out, func(a, b vault.CredentialMeta) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Counts returns the number of stored tenant keys and credentials, across tenants.
func (s *MemStore) Counts() (keys, creds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys), len(s.creds)
}

// AllBytes returns every byte the store holds (keys, blobs and metadata), for checks
// that no plaintext secret reached the store.
func (s *MemStore) AllBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, k := range s.keys {
		b = append(b, k.EncapsulationKey...)
		b = append(b, k.WrappedSeed...)
		b = append(b, k.KeyProvider+k.KMSKeyID...)
	}
	for _, c := range s.creds {
		b = append(b, c.Ciphertext...)
		b = append(b, c.Name+c.Type+c.Fingerprint+c.ID+c.TenantID...)
	}
	return b
}

// FakeWrapper is a [vault.KeyWrapper] (and [vault.KeyDescriber]) that wraps with
// AES-256-GCM under a random key, binding tenant and purpose as additional data the
// way KMS binds its encryption context, so a value moved to another tenant or purpose
// does not unwrap. It can be switched to failing with [vault.ErrUnavailable] (KMS
// down) and can hold Unwrap calls until released.
type FakeWrapper struct {
	aead    cipher.AEAD
	down    atomic.Bool
	wraps   atomic.Int64
	unwraps atomic.Int64
	gate    atomic.Pointer[chan struct{}] // if set, Unwrap waits for it to be closed
}

// NewFakeWrapper returns a wrapper with a fresh random key.
func NewFakeWrapper() *FakeWrapper {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	// Neither call can fail: 32 bytes is an AES-256 key and AES has a 16-byte block.
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &FakeWrapper{aead: aead}
}

// Replica returns another wrapper over the same key with zero counters, up and not
// held: a second gateway replica talking to the same KMS.
func (w *FakeWrapper) Replica() *FakeWrapper { return &FakeWrapper{aead: w.aead} }

var errKMSDown = errors.New("vaulttest: kms: dial tcp: connection refused")

// SetDown makes later Wrap and Unwrap calls fail with [vault.ErrUnavailable] (true), or
// work again (false).
func (w *FakeWrapper) SetDown(down bool) { w.down.Store(down) }

// Wraps returns the number of Wrap calls so far.
func (w *FakeWrapper) Wraps() int64 { return w.wraps.Load() }

// Unwraps returns the number of Unwrap calls so far, counted when they start.
func (w *FakeWrapper) Unwraps() int64 { return w.unwraps.Load() }

// Hold makes Unwrap calls that start from now on wait until release is called (or
// their context ends, with [vault.ErrUnavailable]). release may be called more than
// once.
func (w *FakeWrapper) Hold() (release func()) {
	ch := make(chan struct{})
	w.gate.Store(&ch)
	return sync.OnceFunc(func() { close(ch) })
}

// Wrap implements [vault.KeyWrapper].
func (w *FakeWrapper) Wrap(_ context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	w.wraps.Add(1)
	if w.down.Load() {
		return nil, errors.Join(vault.ErrUnavailable, errKMSDown)
	}
	nonce := make([]byte, w.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return w.aead.Seal(nonce, nonce, plaintext, []byte(tenantID+"\x00"+purpose)), nil
}

// Unwrap implements [vault.KeyWrapper].
func (w *FakeWrapper) Unwrap(ctx context.Context, tenantID, purpose string, wrapped []byte) ([]byte, error) {
	w.unwraps.Add(1)
	if gate := w.gate.Load(); gate != nil {
		select {
		case <-*gate:
		case <-ctx.Done():
			return nil, errors.Join(vault.ErrUnavailable, ctx.Err())
		}
	}
	if w.down.Load() {
		return nil, errors.Join(vault.ErrUnavailable, errKMSDown)
	}
	n := w.aead.NonceSize()
	if len(wrapped) < n {
		return nil, errors.New("vaulttest: kms: invalid ciphertext")
	}
	pt, err := w.aead.Open(nil, wrapped[:n], wrapped[n:], []byte(tenantID+"\x00"+purpose))
	if err != nil {
		return nil, errors.New("vaulttest: kms: invalid ciphertext")
	}
	return pt, nil
}

// DescribeKey implements [vault.KeyDescriber].
func (w *FakeWrapper) DescribeKey(context.Context, string) (provider, keyID string, err error) {
	return "fake", "fake-key-1", nil
}
