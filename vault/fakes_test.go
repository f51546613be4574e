package vault_test

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
	"time"

	"github.com/quantaseal/gateway/vault"
)

// memStore is an in-memory vault.Store with the contract's semantics (idempotent key put,
// tenant scoping) and a switch that makes every call fail as if the database were down.
type memStore struct {
	mu    sync.Mutex
	keys  map[string]vault.WrappedKey
	creds map[[2]string]vault.SealedCredential
	down  atomic.Bool
	puts  atomic.Int64 // PutTenantVaultKey calls
}

func newMemStore() *memStore {
	return &memStore{keys: map[string]vault.WrappedKey{}, creds: map[[2]string]vault.SealedCredential{}}
}

var errDBDown = errors.New("memstore: connection refused")

func (s *memStore) PutTenantVaultKey(_ context.Context, tenantID string, k vault.WrappedKey) error {
	if s.down.Load() {
		return errDBDown
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

func (s *memStore) GetTenantVaultKey(_ context.Context, tenantID string) (vault.WrappedKey, error) {
	if s.down.Load() {
		return vault.WrappedKey{}, errDBDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[tenantID]
	if !ok {
		return vault.WrappedKey{}, vault.ErrNotFound
	}
	return k, nil
}

func (s *memStore) PutSealedCredential(_ context.Context, c vault.SealedCredential) error {
	if s.down.Load() {
		return errDBDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Ciphertext = slices.Clone(c.Ciphertext)
	s.creds[[2]string{c.TenantID, c.ID}] = c
	return nil
}

func (s *memStore) GetSealedCredential(_ context.Context, tenantID, credentialID string) (vault.SealedCredential, error) {
	if s.down.Load() {
		return vault.SealedCredential{}, errDBDown
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

func (s *memStore) DeleteSealedCredential(_ context.Context, tenantID, credentialID string) error {
	if s.down.Load() {
		return errDBDown
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

func (s *memStore) ListSealedCredentials(_ context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	if s.down.Load() {
		return nil, errDBDown
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

// counts returns the number of stored keys and credentials.
func (s *memStore) counts() (keys, creds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys), len(s.creds)
}

// allBytes is every byte the store holds, for secret-leak checks.
func (s *memStore) allBytes() []byte {
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

// fakeWrapper wraps with AES-GCM under a random key, binding tenant and purpose like KMS's
// encryption context. It can be switched to failing (KMS down) and can hold Unwrap calls
// until released.
type fakeWrapper struct {
	aead    cipher.AEAD
	down    atomic.Bool
	wraps   atomic.Int64
	unwraps atomic.Int64
	gate    chan struct{} // if non-nil, Unwrap waits for it to be closed
}

func newFakeWrapper() *fakeWrapper {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &fakeWrapper{aead: aead}
}

var errKMSDown = errors.New("fake kms: dial tcp: connection refused")

func (w *fakeWrapper) Wrap(_ context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	w.wraps.Add(1)
	if w.down.Load() {
		return nil, errors.Join(vault.ErrUnavailable, errKMSDown)
	}
	nonce := make([]byte, w.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return w.aead.Seal(nonce, nonce, plaintext, []byte(tenantID+"\x00"+purpose)), nil
}

func (w *fakeWrapper) Unwrap(ctx context.Context, tenantID, purpose string, wrapped []byte) ([]byte, error) {
	w.unwraps.Add(1)
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return nil, errors.Join(vault.ErrUnavailable, ctx.Err())
		}
	}
	if w.down.Load() {
		return nil, errors.Join(vault.ErrUnavailable, errKMSDown)
	}
	n := w.aead.NonceSize()
	if len(wrapped) < n {
		return nil, errors.New("fake kms: invalid ciphertext")
	}
	pt, err := w.aead.Open(nil, wrapped[:n], wrapped[n:], []byte(tenantID+"\x00"+purpose))
	if err != nil {
		return nil, errors.New("fake kms: invalid ciphertext")
	}
	return pt, nil
}

func (w *fakeWrapper) DescribeKey(string) (string, string, error) { return "fake", "fake-key-1", nil }

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
