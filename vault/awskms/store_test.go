package awskms_test

import (
	"context"
	"sync"

	"github.com/quantaseal/gateway/vault"
)

// memStore is a minimal in-memory vault.Store (idempotent key put, tenant scoping).
type memStore struct {
	mu    sync.Mutex
	keys  map[string]vault.WrappedKey
	creds map[[2]string]vault.SealedCredential
}

func newMemStore() *memStore {
	return &memStore{keys: map[string]vault.WrappedKey{}, creds: map[[2]string]vault.SealedCredential{}}
}

func (s *memStore) PutTenantVaultKey(_ context.Context, tenantID string, k vault.WrappedKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[tenantID]; !ok {
		s.keys[tenantID] = k
	}
	return nil
}

func (s *memStore) GetTenantVaultKey(_ context.Context, tenantID string) (vault.WrappedKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[tenantID]
	if !ok {
		return vault.WrappedKey{}, vault.ErrNotFound
	}
	return k, nil
}

func (s *memStore) PutSealedCredential(_ context.Context, c vault.SealedCredential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[[2]string{c.TenantID, c.ID}] = c
	return nil
}

func (s *memStore) GetSealedCredential(_ context.Context, tenantID, credentialID string) (vault.SealedCredential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[[2]string{tenantID, credentialID}]
	if !ok {
		return vault.SealedCredential{}, vault.ErrNotFound
	}
	return c, nil
}

func (s *memStore) DeleteSealedCredential(_ context.Context, tenantID, credentialID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.creds[[2]string{tenantID, credentialID}]; !ok {
		return vault.ErrNotFound
	}
	delete(s.creds, [2]string{tenantID, credentialID})
	return nil
}

func (s *memStore) ListSealedCredentials(_ context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []vault.CredentialMeta
	for k, c := range s.creds {
		if k[0] == tenantID {
			out = append(out, c.CredentialMeta)
		}
	}
	return out, nil
}

// allBytes is every byte the store holds, for secret-leak checks.
func (s *memStore) allBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, k := range s.keys {
		b = append(b, k.EncapsulationKey...)
		b = append(b, k.WrappedSeed...)
	}
	for _, c := range s.creds {
		b = append(b, c.Ciphertext...)
		b = append(b, c.Name+c.Fingerprint...)
	}
	return b
}
