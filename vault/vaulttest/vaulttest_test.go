package vaulttest_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/vaulttest"
)

var (
	_ vault.Store        = (*vaulttest.MemStore)(nil)
	_ vault.KeyWrapper   = (*vaulttest.FakeWrapper)(nil)
	_ vault.KeyDescriber = (*vaulttest.FakeWrapper)(nil)
)

func cred(tenant, id, name string) vault.SealedCredential {
	return vault.SealedCredential{CredentialMeta: vault.CredentialMeta{TenantID: tenant, ID: id, Name: name}, Ciphertext: []byte("blob-" + id)}
}

func TestMemStore(t *testing.T) {
	ctx := t.Context()
	s := vaulttest.NewMemStore()

	// Keys: put-if-absent, tenant-scoped, copies.
	ek := []byte("ek-1")
	if err := s.PutTenantVaultKey(ctx, "ten_a", vault.WrappedKey{TenantID: "ten_a", EncapsulationKey: ek}); err != nil {
		t.Fatal(err)
	}
	ek[0] = 'X'
	if err := s.PutTenantVaultKey(ctx, "ten_a", vault.WrappedKey{TenantID: "ten_a", EncapsulationKey: []byte("ek-2")}); err != nil {
		t.Fatal(err)
	}
	if k, err := s.GetTenantVaultKey(ctx, "ten_a"); err != nil || string(k.EncapsulationKey) != "ek-1" {
		t.Errorf("GetTenantVaultKey = %q, %v; want the first key, unaliased", k.EncapsulationKey, err)
	}
	if _, err := s.GetTenantVaultKey(ctx, "ten_b"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("other tenant's key: %v, want ErrNotFound", err)
	}
	if got := s.KeyPuts(); got != 2 {
		t.Errorf("KeyPuts = %d, want 2", got)
	}
	s.ReplaceTenantVaultKey("ten_a", vault.WrappedKey{TenantID: "ten_a", EncapsulationKey: []byte("ek-3")})
	if k, _ := s.GetTenantVaultKey(ctx, "ten_a"); string(k.EncapsulationKey) != "ek-3" {
		t.Errorf("after Replace: %q", k.EncapsulationKey)
	}

	// Credentials: replace on put, tenant-scoped get/delete, list ordered by ID.
	for _, c := range []vault.SealedCredential{cred("ten_a", "vlt_2", "b"), cred("ten_a", "vlt_1", "a"), cred("ten_b", "vlt_3", "c"), cred("ten_a", "vlt_2", "b2")} {
		if err := s.PutSealedCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListSealedCredentials(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	want := []vault.CredentialMeta{{TenantID: "ten_a", ID: "vlt_1", Name: "a"}, {TenantID: "ten_a", ID: "vlt_2", Name: "b2"}}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if _, err := s.GetSealedCredential(ctx, "ten_b", "vlt_1"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("cross-tenant get: %v", err)
	}
	if err := s.DeleteSealedCredential(ctx, "ten_b", "vlt_1"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("cross-tenant delete: %v", err)
	}
	if err := s.DeleteSealedCredential(ctx, "ten_a", "vlt_1"); err != nil {
		t.Errorf("delete: %v", err)
	}
	// Replace (rotation) never creates: the deleted one and another tenant's stay away.
	if err := s.ReplaceSealedCredential(ctx, cred("ten_a", "vlt_1", "a")); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("replace of a deleted credential: %v, want ErrNotFound", err)
	}
	if err := s.ReplaceSealedCredential(ctx, cred("ten_b", "vlt_2", "b")); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("cross-tenant replace: %v, want ErrNotFound", err)
	}
	r := cred("ten_a", "vlt_2", "renamed")
	r.Fingerprint, r.Ciphertext = "fp-r", []byte("blob-r")
	if err := s.ReplaceSealedCredential(ctx, r); err != nil {
		t.Errorf("replace: %v", err)
	}
	if got, _ := s.GetSealedCredential(ctx, "ten_a", "vlt_2"); got.Name != "b2" || got.Fingerprint != "fp-r" || string(got.Ciphertext) != "blob-r" {
		t.Errorf("after replace: name %q, fingerprint %q, blob %q; want the name kept and the secret replaced", got.Name, got.Fingerprint, got.Ciphertext)
	}
	if keys, creds := s.Counts(); keys != 1 || creds != 2 {
		t.Errorf("Counts = %d, %d; want 1, 2", keys, creds)
	}
	if all := s.AllBytes(); !bytes.Contains(all, []byte("blob-vlt_3")) || !bytes.Contains(all, []byte("ek-3")) {
		t.Error("AllBytes misses stored bytes")
	}

	// Down: every method fails, with an error that is not ErrNotFound.
	s.SetDown(true)
	calls := map[string]error{
		"PutTenantVaultKey":       s.PutTenantVaultKey(ctx, "ten_c", vault.WrappedKey{}),
		"PutSealedCredential":     s.PutSealedCredential(ctx, cred("ten_a", "vlt_9", "z")),
		"DeleteSealedCredential":  s.DeleteSealedCredential(ctx, "ten_a", "vlt_2"),
		"ReplaceSealedCredential": s.ReplaceSealedCredential(ctx, cred("ten_a", "vlt_2", "z")),
	}
	_, calls["GetTenantVaultKey"] = s.GetTenantVaultKey(ctx, "ten_a")
	_, calls["GetSealedCredential"] = s.GetSealedCredential(ctx, "ten_a", "vlt_2")
	_, calls["ListSealedCredentials"] = s.ListSealedCredentials(ctx, "ten_a")
	for name, err := range calls {
		if err == nil || errors.Is(err, vault.ErrNotFound) {
			t.Errorf("%s while down = %v", name, err)
		}
	}
	s.SetDown(false)
	if keys, creds := s.Counts(); keys != 1 || creds != 2 {
		t.Errorf("calls while down changed the store: %d, %d", keys, creds)
	}
}

func TestFakeWrapper(t *testing.T) {
	ctx := t.Context()
	w := vaulttest.NewFakeWrapper()
	wrapped, err := w.Wrap(ctx, "ten_a", "vault_key", []byte("seed"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := w.Replica().Unwrap(ctx, "ten_a", "vault_key", wrapped); err != nil || string(pt) != "seed" {
		t.Errorf("replica Unwrap = %q, %v", pt, err)
	}
	for _, tc := range []struct{ tenant, purpose string }{{"ten_b", "vault_key"}, {"ten_a", "hmac_key"}} {
		if _, err := w.Unwrap(ctx, tc.tenant, tc.purpose, wrapped); err == nil || errors.Is(err, vault.ErrUnavailable) {
			t.Errorf("Unwrap as %s/%s = %v, want a permanent error", tc.tenant, tc.purpose, err)
		}
	}
	if _, err := w.Unwrap(ctx, "ten_a", "vault_key", []byte("short")); err == nil {
		t.Error("short ciphertext unwrapped")
	}
	if w.Wraps() != 1 || w.Unwraps() != 3 {
		t.Errorf("counters = %d, %d", w.Wraps(), w.Unwraps())
	}

	w.SetDown(true)
	if _, err := w.Wrap(ctx, "ten_a", "p", nil); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Wrap while down = %v", err)
	}
	if _, err := w.Unwrap(ctx, "ten_a", "vault_key", wrapped); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Unwrap while down = %v", err)
	}
	w.SetDown(false)

	// Hold: Unwrap waits for release, or for its context.
	release := w.Hold()
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := w.Unwrap(short, "ten_a", "vault_key", wrapped); !errors.Is(err, vault.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held Unwrap with expiring context = %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Unwrap(ctx, "ten_a", "vault_key", wrapped)
		done <- err
	}()
	release()
	release()
	if err := <-done; err != nil {
		t.Errorf("released Unwrap = %v", err)
	}
	if p, k, err := w.DescribeKey(t.Context(), "ten_a"); p == "" || k == "" || err != nil {
		t.Errorf("DescribeKey = %q %q %v", p, k, err)
	}
}
