// Package registrytest is the contract suite every registry.Store must pass: the
// PostgreSQL store and the embedded store run the same [Run].
//
// It covers round trips of every record, the sentinel errors each method documents,
// tenant isolation (tenant A naming tenant B's ids reads, changes and deletes nothing),
// and store-down behaviour (a closed pool or database gives registry.ErrUnavailable; a
// new handle on the same database sees all committed data).
package registrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// Open opens a new handle (a pool or *sql.DB) on one database and returns a Store over it
// and a function that closes that handle.
type Open func(t *testing.T) (s registry.Store, closeHandle func())

// Run runs the contract suite. newDatabase must create a fresh, empty database for the
// calling test and return an Open for it.
func Run(t *testing.T, newDatabase func(t *testing.T) Open) {
	tests := []struct {
		name string
		f    func(t *testing.T, s registry.Store)
	}{
		{"Tenants", testTenants},
		{"APIKeys", testAPIKeys},
		{"Authenticate", testAuthenticate},
		{"VaultKeys", testVaultKeys},
		{"Credentials", testCredentials},
		{"Integrations", testIntegrations},
		{"TenantIsolation", testTenantIsolation},
		{"BindDeleteRace", testBindDeleteRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			open := newDatabase(t)
			s, closeHandle := open(t)
			t.Cleanup(closeHandle)
			tc.f(t, s)
		})
	}
	t.Run("StoreDown", func(t *testing.T) { testStoreDown(t, newDatabase(t)) })
}

// T0 is the fixture time: UTC with microsecond precision, which both stores keep.
var T0 = time.Date(2026, 11, 29, 2, 0, 0, 123456000, time.UTC)

func mustNot(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// NewTenant creates a tenant with one live API key in s and returns both and the key.
func NewTenant(t *testing.T, s registry.Store, name string) (registry.Tenant, registry.APIKey, secret.Secret) {
	t.Helper()
	tn := registry.Tenant{
		ID: id.New(registry.TenantIDPrefix), Name: name,
		ResponseKEMPublicKey: bytes.Repeat([]byte{1}, 1184), ResponseKeyID: "0123456789abcdef",
		HMACKeySealed: []byte("sealed-hmac-" + name), HMACKeyID: "fedcba9876543210",
		KMSKeyID: "alias/" + name, CreatedAt: T0,
	}
	k, key := registry.NewAPIKey(tn.ID, "", T0)
	mustNot(t, "CreateTenant", s.CreateTenant(t.Context(), tn, k))
	return tn, k, key
}

// NewCredential stores a sealed credential (opaque ciphertext) for tenantID.
func NewCredential(t *testing.T, s registry.Store, tenantID, name string) vault.SealedCredential {
	t.Helper()
	c := vault.SealedCredential{
		CredentialMeta: vault.CredentialMeta{
			TenantID: tenantID, ID: id.New(registry.CredentialIDPrefix), Name: name,
			Type: vault.CredentialTypeOAuth2Client, Fingerprint: "fp-" + name, CreatedAt: T0,
		},
		Ciphertext: []byte("ciphertext-" + name),
	}
	mustNot(t, "PutSealedCredential", s.PutSealedCredential(t.Context(), c))
	return c
}

// NewIntegration stores an integration of tenantID using credentialID.
func NewIntegration(t *testing.T, s registry.Store, tenantID, credentialID, name string) registry.Integration {
	t.Helper()
	in := registry.Integration{
		ID: id.New(registry.IntegrationIDPrefix), TenantID: tenantID, SystemType: "okta", Name: name,
		OktaDomain: "https://" + name + ".okta.com", CredentialID: credentialID,
		AllowedOperations: []string{"get_user", "list_users"}, Envelope: registry.EnvelopeOnRequest,
		CreatedAt: T0, UpdatedAt: T0,
	}
	mustNot(t, "CreateIntegration", s.CreateIntegration(t.Context(), in))
	return in
}

func testTenants(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, ka, _ := NewTenant(t, s, "alpha")
	b, _, _ := NewTenant(t, s, "beta")

	got, err := s.GetTenant(ctx, a.ID)
	mustNot(t, "GetTenant", err)
	if d := cmp.Diff(a, got); d != "" {
		t.Errorf("GetTenant mismatch (-want +got):\n%s", d)
	}
	all, err := s.ListTenants(ctx)
	mustNot(t, "ListTenants", err)
	if d := cmp.Diff([]registry.Tenant{a, b}, all); d != "" {
		t.Errorf("ListTenants mismatch (-want +got):\n%s", d)
	}
	keys, err := s.ListAPIKeys(ctx, a.ID)
	mustNot(t, "ListAPIKeys", err)
	if d := cmp.Diff([]registry.APIKey{ka}, keys); d != "" {
		t.Errorf("first key mismatch (-want +got):\n%s", d)
	}

	_, err = s.GetTenant(ctx, id.New(registry.TenantIDPrefix))
	wantErr(t, "GetTenant(unknown)", err, registry.ErrNotFound)

	// Same tenant id again: conflict, and the first key of the failed call is not stored.
	k2, _ := registry.NewAPIKey(a.ID, "", T0)
	wantErr(t, "CreateTenant(dup)", s.CreateTenant(ctx, a, k2), registry.ErrConflict)
	_, err = s.LookupAPIKey(ctx, k2.Hash)
	wantErr(t, "LookupAPIKey(key of failed tenant)", err, registry.ErrNotFound)

	// A first key that reuses an existing hash: the tenant row must roll back too.
	c := registry.Tenant{ID: id.New(registry.TenantIDPrefix), Name: "gamma", CreatedAt: T0}
	dupKey := ka
	dupKey.ID, dupKey.TenantID = id.New(registry.APIKeyIDPrefix), c.ID
	wantErr(t, "CreateTenant(dup key hash)", s.CreateTenant(ctx, c, dupKey), registry.ErrConflict)
	_, err = s.GetTenant(ctx, c.ID)
	wantErr(t, "GetTenant(rolled back)", err, registry.ErrNotFound)
}

func testAPIKeys(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, ka, _ := NewTenant(t, s, "alpha")
	b, _, _ := NewTenant(t, s, "beta")
	credA := NewCredential(t, s, a.ID, "ca")
	credB := NewCredential(t, s, b.ID, "cb")
	intA := NewIntegration(t, s, a.ID, credA.ID, "ia")
	intB := NewIntegration(t, s, b.ID, credB.ID, "ib")

	bound, _ := registry.NewAPIKey(a.ID, intA.ID, T0.Add(time.Second))
	mustNot(t, "CreateAPIKey(bound)", s.CreateAPIKey(ctx, bound))
	got, err := s.LookupAPIKey(ctx, bound.Hash)
	mustNot(t, "LookupAPIKey", err)
	if d := cmp.Diff(bound, got); d != "" {
		t.Errorf("LookupAPIKey mismatch (-want +got):\n%s", d)
	}
	list, err := s.ListAPIKeys(ctx, a.ID)
	mustNot(t, "ListAPIKeys", err)
	if d := cmp.Diff([]registry.APIKey{ka, bound}, list); d != "" {
		t.Errorf("ListAPIKeys mismatch (-want +got):\n%s", d)
	}

	bad := []struct {
		name string
		k    registry.APIKey
		want error
	}{
		{"unknown tenant", func() registry.APIKey { k, _ := registry.NewAPIKey(id.New("ten"), "", T0); return k }(), registry.ErrNotFound},
		{"integration of another tenant", func() registry.APIKey { k, _ := registry.NewAPIKey(a.ID, intB.ID, T0); return k }(), registry.ErrNotFound},
		{"unknown integration", func() registry.APIKey { k, _ := registry.NewAPIKey(a.ID, id.New("int"), T0); return k }(), registry.ErrNotFound},
		{"duplicate hash", func() registry.APIKey { k := ka; k.ID = id.New("key"); return k }(), registry.ErrConflict},
		{"duplicate id", func() registry.APIKey { k, _ := registry.NewAPIKey(a.ID, "", T0); k.ID = ka.ID; return k }(), registry.ErrConflict},
	}
	for _, tc := range bad {
		wantErr(t, "CreateAPIKey("+tc.name+")", s.CreateAPIKey(ctx, tc.k), tc.want)
		if _, err := s.LookupAPIKey(ctx, tc.k.Hash); tc.want != registry.ErrConflict && !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("CreateAPIKey(%s) stored the key: lookup err = %v", tc.name, err)
		}
	}

	// Revoke: idempotent, keeps the first time; another tenant cannot revoke.
	wantErr(t, "RevokeAPIKey(other tenant)", s.RevokeAPIKey(ctx, b.ID, bound.ID, T0), registry.ErrNotFound)
	wantErr(t, "RevokeAPIKey(unknown)", s.RevokeAPIKey(ctx, a.ID, id.New("key"), T0), registry.ErrNotFound)
	if got, _ := s.LookupAPIKey(ctx, bound.Hash); got.RevokedAt != nil {
		t.Fatalf("another tenant's revoke took effect")
	}
	at := T0.Add(time.Hour)
	mustNot(t, "RevokeAPIKey", s.RevokeAPIKey(ctx, a.ID, bound.ID, at))
	mustNot(t, "RevokeAPIKey(again)", s.RevokeAPIKey(ctx, a.ID, bound.ID, at.Add(time.Hour)))
	got, err = s.LookupAPIKey(ctx, bound.Hash)
	mustNot(t, "LookupAPIKey(revoked)", err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at)
	}
	_, err = s.LookupAPIKey(ctx, make([]byte, 32))
	wantErr(t, "LookupAPIKey(unknown)", err, registry.ErrNotFound)
}

func testAuthenticate(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, ka, key := NewTenant(t, s, "alpha")
	revoked, revokedKey := registry.NewAPIKey(a.ID, "", T0)
	mustNot(t, "CreateAPIKey", s.CreateAPIKey(ctx, revoked))
	mustNot(t, "RevokeAPIKey", s.RevokeAPIKey(ctx, a.ID, revoked.ID, T0))
	_, unknownKey := registry.NewAPIKey(a.ID, "", T0)
	auth := registry.NewAuthenticator(s)

	got, err := auth.Authenticate(ctx, key)
	mustNot(t, "Authenticate", err)
	if d := cmp.Diff(ka, got); d != "" {
		t.Errorf("Authenticate mismatch (-want +got):\n%s", d)
	}
	for name, k := range map[string]secret.Secret{
		"revoked":   revokedKey,
		"unknown":   unknownKey,
		"empty":     secret.New(""),
		"no prefix": secret.New(key.Reveal()[len(registry.APIKeyPrefix):]),
		"truncated": secret.New(key.Reveal()[:len(key.Reveal())-1]),
		"padded":    secret.New(key.Reveal() + "="),
	} {
		_, err := auth.Authenticate(ctx, k)
		wantErr(t, "Authenticate("+name+")", err, registry.ErrInvalidAPIKey)
	}
}

func testVaultKeys(t *testing.T, s registry.Store) {
	ctx := t.Context()
	// The vault creates a tenant's key before the tenant row exists (tenant creation
	// seals the HMAC key first), so no tenant is created here.
	tenantID := id.New(registry.TenantIDPrefix)
	k := vault.WrappedKey{TenantID: tenantID, KeyProvider: "local", KMSKeyID: "k1",
		EncapsulationKey: bytes.Repeat([]byte{7}, 1184), WrappedSeed: []byte("wrapped"), CreatedAt: T0}
	_, err := s.GetTenantVaultKey(ctx, tenantID)
	wantErr(t, "GetTenantVaultKey(none)", err, vault.ErrNotFound)
	wantErr(t, "GetTenantVaultKey(none)", err, registry.ErrNotFound)
	mustNot(t, "PutTenantVaultKey", s.PutTenantVaultKey(ctx, tenantID, k))
	k2 := k
	k2.WrappedSeed, k2.KMSKeyID = []byte("other"), "k2"
	mustNot(t, "PutTenantVaultKey(again)", s.PutTenantVaultKey(ctx, tenantID, k2))
	got, err := s.GetTenantVaultKey(ctx, tenantID)
	mustNot(t, "GetTenantVaultKey", err)
	if d := cmp.Diff(k, got); d != "" {
		t.Errorf("GetTenantVaultKey must keep the first key (-want +got):\n%s", d)
	}
}

func testCredentials(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, _, _ := NewTenant(t, s, "alpha")
	c1 := NewCredential(t, s, a.ID, "one")
	c2 := NewCredential(t, s, a.ID, "two")

	got, err := s.GetSealedCredential(ctx, a.ID, c1.ID)
	mustNot(t, "GetSealedCredential", err)
	if d := cmp.Diff(c1, got); d != "" {
		t.Errorf("GetSealedCredential mismatch (-want +got):\n%s", d)
	}
	list, err := s.ListSealedCredentials(ctx, a.ID)
	mustNot(t, "ListSealedCredentials", err)
	if d := cmp.Diff([]vault.CredentialMeta{c1.CredentialMeta, c2.CredentialMeta}, list); d != "" {
		t.Errorf("ListSealedCredentials mismatch (-want +got):\n%s", d)
	}

	// Rotation replaces the blob and keeps created_at.
	r := c1
	r.Ciphertext, r.Fingerprint, r.RotatedAt = []byte("rotated"), "fp-rotated", T0.Add(time.Minute)
	r.CreatedAt = T0.Add(time.Hour) // must be ignored
	mustNot(t, "PutSealedCredential(rotate)", s.PutSealedCredential(ctx, r))
	got, err = s.GetSealedCredential(ctx, a.ID, c1.ID)
	mustNot(t, "GetSealedCredential(rotated)", err)
	r.CreatedAt = T0
	if d := cmp.Diff(r, got); d != "" {
		t.Errorf("rotated credential mismatch (-want +got):\n%s", d)
	}

	// ReplaceSealedCredential (what Rotate uses) changes the secret and keeps the rest;
	// it never creates a row.
	rr := c1
	rr.Ciphertext, rr.Fingerprint, rr.RotatedAt = []byte("replaced"), "fp-replaced", T0.Add(2*time.Minute)
	rr.Name, rr.CreatedAt = "ignored", T0.Add(time.Hour) // kept from the row
	mustNot(t, "ReplaceSealedCredential", s.ReplaceSealedCredential(ctx, rr))
	got, err = s.GetSealedCredential(ctx, a.ID, c1.ID)
	mustNot(t, "GetSealedCredential(replaced)", err)
	rr.Name, rr.CreatedAt = c1.Name, T0
	if d := cmp.Diff(rr, got); d != "" {
		t.Errorf("replaced credential mismatch (-want +got):\n%s", d)
	}
	gone := rr
	gone.ID = id.New("vlt")
	wantErr(t, "ReplaceSealedCredential(missing)", s.ReplaceSealedCredential(ctx, gone), registry.ErrNotFound)
	_, err = s.GetSealedCredential(ctx, a.ID, gone.ID)
	wantErr(t, "GetSealedCredential(after a replace of a missing one)", err, vault.ErrNotFound)

	wantErr(t, "PutSealedCredential(unknown tenant)", s.PutSealedCredential(ctx, vault.SealedCredential{
		CredentialMeta: vault.CredentialMeta{TenantID: id.New("ten"), ID: id.New("vlt"), CreatedAt: T0}}), registry.ErrNotFound)
	_, err = s.GetSealedCredential(ctx, a.ID, id.New("vlt"))
	wantErr(t, "GetSealedCredential(unknown)", err, vault.ErrNotFound)
	wantErr(t, "DeleteSealedCredential(unknown)", s.DeleteSealedCredential(ctx, a.ID, id.New("vlt")), registry.ErrNotFound)

	mustNot(t, "DeleteSealedCredential", s.DeleteSealedCredential(ctx, a.ID, c2.ID))
	_, err = s.GetSealedCredential(ctx, a.ID, c2.ID)
	wantErr(t, "GetSealedCredential(deleted)", err, registry.ErrNotFound)

	in := NewIntegration(t, s, a.ID, c1.ID, "uses-one")
	wantErr(t, "DeleteSealedCredential(in use)", s.DeleteSealedCredential(ctx, a.ID, c1.ID), registry.ErrConflict)
	mustNot(t, "DeleteIntegration", s.DeleteIntegration(ctx, a.ID, in.ID))
	mustNot(t, "DeleteSealedCredential(after)", s.DeleteSealedCredential(ctx, a.ID, c1.ID))
	list, err = s.ListSealedCredentials(ctx, a.ID)
	mustNot(t, "ListSealedCredentials(empty)", err)
	if len(list) != 0 {
		t.Errorf("ListSealedCredentials = %v, want empty", list)
	}
}

func testIntegrations(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, _, _ := NewTenant(t, s, "alpha")
	b, _, _ := NewTenant(t, s, "beta")
	credA := NewCredential(t, s, a.ID, "ca")
	credA2 := NewCredential(t, s, a.ID, "ca2")
	credB := NewCredential(t, s, b.ID, "cb")
	i1 := NewIntegration(t, s, a.ID, credA.ID, "one")
	i2 := NewIntegration(t, s, a.ID, credA2.ID, "two")

	got, err := s.GetIntegration(ctx, a.ID, i1.ID)
	mustNot(t, "GetIntegration", err)
	if d := cmp.Diff(i1, got); d != "" {
		t.Errorf("GetIntegration mismatch (-want +got):\n%s", d)
	}
	list, err := s.ListIntegrations(ctx, a.ID)
	mustNot(t, "ListIntegrations", err)
	if d := cmp.Diff([]registry.Integration{i1, i2}, list); d != "" {
		t.Errorf("ListIntegrations mismatch (-want +got):\n%s", d)
	}
	byCred, err := s.ListIntegrationsByCredential(ctx, a.ID, credA.ID)
	mustNot(t, "ListIntegrationsByCredential", err)
	if d := cmp.Diff([]registry.Integration{i1}, byCred); d != "" {
		t.Errorf("ListIntegrationsByCredential mismatch (-want +got):\n%s", d)
	}

	mk := func(f func(*registry.Integration)) registry.Integration {
		in := i1
		in.ID, in.Name = id.New("int"), "fresh"
		f(&in)
		return in
	}
	for _, tc := range []struct {
		name string
		in   registry.Integration
		want error
	}{
		{"duplicate name", mk(func(in *registry.Integration) { in.Name = "one" }), registry.ErrConflict},
		{"duplicate id", mk(func(in *registry.Integration) { in.ID = i1.ID }), registry.ErrConflict},
		{"credential of another tenant", mk(func(in *registry.Integration) { in.CredentialID = credB.ID }), registry.ErrNotFound},
		{"unknown credential", mk(func(in *registry.Integration) { in.CredentialID = id.New("vlt") }), registry.ErrNotFound},
		{"unknown tenant", mk(func(in *registry.Integration) { in.TenantID = id.New("ten") }), registry.ErrNotFound},
	} {
		wantErr(t, "CreateIntegration("+tc.name+")", s.CreateIntegration(ctx, tc.in), tc.want)
	}

	// Update.
	u := i1
	u.Name, u.OktaDomain, u.CredentialID = "renamed", "https://other.oktapreview.com", credA2.ID
	u.AllowedOperations, u.Envelope, u.UpdatedAt = []string{}, registry.EnvelopeAlways, T0.Add(time.Hour)
	mustNot(t, "UpdateIntegration", s.UpdateIntegration(ctx, u))
	got, err = s.GetIntegration(ctx, a.ID, i1.ID)
	mustNot(t, "GetIntegration(updated)", err)
	if d := cmp.Diff(u, got); d != "" {
		t.Errorf("updated integration mismatch (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		name string
		in   registry.Integration
		want error
	}{
		{"name taken", func() registry.Integration { v := u; v.Name = "two"; return v }(), registry.ErrConflict},
		{"credential of another tenant", func() registry.Integration { v := u; v.CredentialID = credB.ID; return v }(), registry.ErrNotFound},
		{"unknown id", func() registry.Integration { v := u; v.ID = id.New("int"); return v }(), registry.ErrNotFound},
	} {
		wantErr(t, "UpdateIntegration("+tc.name+")", s.UpdateIntegration(ctx, tc.in), tc.want)
	}
	if got, _ := s.GetIntegration(ctx, a.ID, i1.ID); !cmp.Equal(u, got) {
		t.Errorf("a failed update changed the row: %+v", got)
	}

	// Delete: refused while a live key is bound, allowed after revocation.
	k, _ := registry.NewAPIKey(a.ID, i2.ID, T0)
	mustNot(t, "CreateAPIKey(bound)", s.CreateAPIKey(ctx, k))
	wantErr(t, "DeleteIntegration(bound)", s.DeleteIntegration(ctx, a.ID, i2.ID), registry.ErrConflict)
	mustNot(t, "RevokeAPIKey", s.RevokeAPIKey(ctx, a.ID, k.ID, T0))
	mustNot(t, "DeleteIntegration", s.DeleteIntegration(ctx, a.ID, i2.ID))
	_, err = s.GetIntegration(ctx, a.ID, i2.ID)
	wantErr(t, "GetIntegration(deleted)", err, registry.ErrNotFound)
	wantErr(t, "DeleteIntegration(again)", s.DeleteIntegration(ctx, a.ID, i2.ID), registry.ErrNotFound)
}

// testTenantIsolation: tenant A, naming every one of tenant B's ids, reads nothing,
// changes nothing and deletes nothing.
func testTenantIsolation(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, _, _ := NewTenant(t, s, "alpha")
	b, kb, _ := NewTenant(t, s, "beta")
	credA := NewCredential(t, s, a.ID, "ca")
	credB := NewCredential(t, s, b.ID, "cb")
	intB := NewIntegration(t, s, b.ID, credB.ID, "ib")
	keyB, _ := registry.NewAPIKey(b.ID, intB.ID, T0)
	mustNot(t, "CreateAPIKey", s.CreateAPIKey(ctx, keyB))

	snapshot := func() any {
		t.Helper()
		c, err := s.GetSealedCredential(ctx, b.ID, credB.ID)
		mustNot(t, "snapshot credential", err)
		in, err := s.GetIntegration(ctx, b.ID, intB.ID)
		mustNot(t, "snapshot integration", err)
		keys, err := s.ListAPIKeys(ctx, b.ID)
		mustNot(t, "snapshot keys", err)
		return []any{c, in, keys}
	}
	before := snapshot()

	hijack := intB
	hijack.TenantID, hijack.Name, hijack.CredentialID = a.ID, "hijacked", credA.ID
	stolenCred := credB
	stolenCred.TenantID, stolenCred.Ciphertext = a.ID, []byte("overwrite")
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"GetSealedCredential", func() error { _, err := s.GetSealedCredential(ctx, a.ID, credB.ID); return err }, registry.ErrNotFound},
		{"DeleteSealedCredential", func() error { return s.DeleteSealedCredential(ctx, a.ID, credB.ID) }, registry.ErrNotFound},
		{"PutSealedCredential(B's id)", func() error { return s.PutSealedCredential(ctx, stolenCred) }, registry.ErrConflict},
		{"ReplaceSealedCredential(B's id)", func() error { return s.ReplaceSealedCredential(ctx, stolenCred) }, registry.ErrNotFound},
		{"GetIntegration", func() error { _, err := s.GetIntegration(ctx, a.ID, intB.ID); return err }, registry.ErrNotFound},
		{"UpdateIntegration", func() error { return s.UpdateIntegration(ctx, hijack) }, registry.ErrNotFound},
		{"DeleteIntegration", func() error { return s.DeleteIntegration(ctx, a.ID, intB.ID) }, registry.ErrNotFound},
		{"CreateIntegration(B's id)", func() error { return s.CreateIntegration(ctx, hijack) }, registry.ErrConflict},
		{"CreateIntegration(B's credential)", func() error {
			in := hijack
			in.ID, in.CredentialID = id.New("int"), credB.ID
			return s.CreateIntegration(ctx, in)
		}, registry.ErrNotFound},
		{"RevokeAPIKey", func() error { return s.RevokeAPIKey(ctx, a.ID, kb.ID, T0) }, registry.ErrNotFound},
		{"CreateAPIKey(bound to B's integration)", func() error {
			k, _ := registry.NewAPIKey(a.ID, intB.ID, T0)
			return s.CreateAPIKey(ctx, k)
		}, registry.ErrNotFound},
		{"ListIntegrationsByCredential", func() error {
			l, err := s.ListIntegrationsByCredential(ctx, a.ID, credB.ID)
			if err == nil && len(l) != 0 {
				return errors.New("saw B's integrations")
			}
			return registry.ErrNotFound
		}, registry.ErrNotFound},
	} {
		wantErr(t, tc.name, tc.call(), tc.want)
	}
	if d := cmp.Diff(before, snapshot()); d != "" {
		t.Errorf("tenant B's rows changed (-before +after):\n%s", d)
	}
	for name, f := range map[string]func() (int, error){
		"ListIntegrations":      func() (int, error) { l, err := s.ListIntegrations(ctx, a.ID); return len(l), err },
		"ListSealedCredentials": func() (int, error) { l, err := s.ListSealedCredentials(ctx, a.ID); return len(l), err },
		"ListAPIKeys":           func() (int, error) { l, err := s.ListAPIKeys(ctx, a.ID); return len(l), err },
	} {
		n, err := f()
		mustNot(t, name, err)
		want := map[string]int{"ListIntegrations": 0, "ListSealedCredentials": 1, "ListAPIKeys": 1}[name]
		if n != want {
			t.Errorf("%s(A) returned %d rows, want %d", name, n, want)
		}
	}
}

// testStoreDown closes the handle under a store: every method must then fail with
// ErrUnavailable (never ErrNotFound, which the API would turn into a wrong 404/401), and
// a new handle on the same database sees the committed data.
func testStoreDown(t *testing.T, open Open) {
	s, closeHandle := open(t)
	a, ka, _ := NewTenant(t, s, "alpha")
	c := NewCredential(t, s, a.ID, "c")
	in := NewIntegration(t, s, a.ID, c.ID, "i")
	closeHandle()

	ctx := context.WithoutCancel(t.Context())
	k, _ := registry.NewAPIKey(a.ID, "", T0)
	calls := map[string]func() error{
		"CreateTenant": func() error {
			tn := a
			tn.ID = id.New("ten")
			k := k
			k.TenantID = tn.ID
			return s.CreateTenant(ctx, tn, k)
		},
		"GetTenant":                    func() error { _, err := s.GetTenant(ctx, a.ID); return err },
		"ListTenants":                  func() error { _, err := s.ListTenants(ctx); return err },
		"CreateAPIKey":                 func() error { return s.CreateAPIKey(ctx, k) },
		"LookupAPIKey":                 func() error { _, err := s.LookupAPIKey(ctx, ka.Hash); return err },
		"ListAPIKeys":                  func() error { _, err := s.ListAPIKeys(ctx, a.ID); return err },
		"RevokeAPIKey":                 func() error { return s.RevokeAPIKey(ctx, a.ID, ka.ID, T0) },
		"CreateIntegration":            func() error { v := in; v.ID = id.New("int"); return s.CreateIntegration(ctx, v) },
		"GetIntegration":               func() error { _, err := s.GetIntegration(ctx, a.ID, in.ID); return err },
		"ListIntegrations":             func() error { _, err := s.ListIntegrations(ctx, a.ID); return err },
		"ListIntegrationsByCredential": func() error { _, err := s.ListIntegrationsByCredential(ctx, a.ID, c.ID); return err },
		"UpdateIntegration":            func() error { return s.UpdateIntegration(ctx, in) },
		"DeleteIntegration":            func() error { return s.DeleteIntegration(ctx, a.ID, in.ID) },
		"PutTenantVaultKey":            func() error { return s.PutTenantVaultKey(ctx, a.ID, vault.WrappedKey{TenantID: a.ID}) },
		"GetTenantVaultKey":            func() error { _, err := s.GetTenantVaultKey(ctx, a.ID); return err },
		"PutSealedCredential":          func() error { return s.PutSealedCredential(ctx, c) },
		"ReplaceSealedCredential":      func() error { return s.ReplaceSealedCredential(ctx, c) },
		"GetSealedCredential":          func() error { _, err := s.GetSealedCredential(ctx, a.ID, c.ID); return err },
		"DeleteSealedCredential":       func() error { return s.DeleteSealedCredential(ctx, a.ID, c.ID) },
		"ListSealedCredentials":        func() error { _, err := s.ListSealedCredentials(ctx, a.ID); return err },
		"Authenticate": func() error {
			_, key := registry.NewAPIKey(a.ID, "", T0)
			_, err := registry.NewAuthenticator(s).Authenticate(ctx, key)
			return err
		},
	}
	for name, call := range calls {
		err := call()
		wantErr(t, name+" on a closed store", err, registry.ErrUnavailable)
		if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrInvalidAPIKey) {
			t.Errorf("%s on a closed store also matches a client error: %v", name, err)
		}
	}
	for _, name := range []string{"GetTenantVaultKey", "GetSealedCredential", "ListSealedCredentials"} {
		wantErr(t, name+" on a closed store (vault sentinel)", calls[name](), vault.ErrUnavailable)
	}

	s2, close2 := open(t)
	defer close2()
	got, err := s2.GetIntegration(t.Context(), a.ID, in.ID)
	mustNot(t, "GetIntegration after reopen", err)
	if d := cmp.Diff(in, got); d != "" {
		t.Errorf("integration after reopen (-want +got):\n%s", d)
	}
	if _, err := s2.LookupAPIKey(t.Context(), ka.Hash); err != nil {
		t.Errorf("LookupAPIKey after reopen: %v", err)
	}
}

// testBindDeleteRace races binding a new key to an integration against deleting that
// integration: afterwards no live key may be bound to an integration that is gone (a
// key whose integration vanished would fail closed, but the API promised a 409).
func testBindDeleteRace(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a, _, _ := NewTenant(t, s, "alpha")
	c := NewCredential(t, s, a.ID, "c")
	for i := range 10 {
		in := NewIntegration(t, s, a.ID, c.ID, fmt.Sprintf("race%d", i))
		var wg sync.WaitGroup
		var bindErr, delErr error
		k, _ := registry.NewAPIKey(a.ID, in.ID, T0)
		wg.Go(func() { bindErr = s.CreateAPIKey(ctx, k) })
		wg.Go(func() { delErr = s.DeleteIntegration(ctx, a.ID, in.ID) })
		wg.Wait()
		_, getErr := s.GetIntegration(ctx, a.ID, in.ID)
		deleted := errors.Is(getErr, registry.ErrNotFound)
		switch {
		case bindErr == nil && delErr == nil:
			t.Fatalf("round %d: both the bind and the delete succeeded", i)
		case bindErr == nil && deleted:
			t.Fatalf("round %d: a live key is bound to a deleted integration", i)
		case delErr == nil && !deleted:
			t.Fatalf("round %d: delete succeeded but the integration is still there", i)
		}
		for _, err := range []error{bindErr, delErr} {
			if err != nil && !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrConflict) {
				t.Fatalf("round %d: unexpected error %v", i, err)
			}
		}
	}
}
