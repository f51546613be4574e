package sqlitestore_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/registry/sqlitestore"
	"github.com/quantaseal/gateway/vault"
)

// BenchmarkLookup measures the per-request registry reads through the Store (prepared
// statements) and, as "unprepared", the same SQL text run through *sql.DB, which
// makes the driver parse it on every call (the store's behaviour before it prepared
// its statements).
func BenchmarkLookup(b *testing.B) {
	ctx := b.Context()
	db, err := sqlitedb.Open(ctx, filepath.Join(b.TempDir(), "registry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := sqlitestore.New(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tn := registry.Tenant{ID: id.New(registry.TenantIDPrefix), Name: "bench",
		ResponseKEMPublicKey: bytes.Repeat([]byte{1}, 1184), ResponseKeyID: "0123456789abcdef",
		HMACKeySealed: []byte("sealed"), HMACKeyID: "fedcba9876543210", CreatedAt: t0}
	k, _ := registry.NewAPIKey(tn.ID, "", t0)
	if err := s.CreateTenant(ctx, tn, k); err != nil {
		b.Fatal(err)
	}
	cred := vault.SealedCredential{CredentialMeta: vault.CredentialMeta{TenantID: tn.ID,
		ID: id.New(registry.CredentialIDPrefix), Name: "c", Type: vault.CredentialTypeOAuth2Client, CreatedAt: t0},
		Ciphertext: []byte("ciphertext")}
	if err := s.PutSealedCredential(ctx, cred); err != nil {
		b.Fatal(err)
	}
	in := registry.Integration{ID: id.New(registry.IntegrationIDPrefix), TenantID: tn.ID, SystemType: "okta",
		Name: "o", OktaDomain: "https://o.okta.com", CredentialID: cred.ID,
		AllowedOperations: []string{"get_user"}, Envelope: registry.EnvelopeOnRequest, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateIntegration(ctx, in); err != nil {
		b.Fatal(err)
	}

	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.LookupAPIKey(ctx, k.Hash); err != nil {
				b.Fatal(err)
			}
			if _, err := s.GetIntegration(ctx, tn.ID, in.ID); err != nil {
				b.Fatal(err)
			}
			if _, err := s.GetTenant(ctx, tn.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unprepared", func(b *testing.B) {
		one := func(query string, args ...any) {
			rows, err := db.QueryContext(ctx, query, args...)
			if err != nil {
				b.Fatal(err)
			}
			vals := make([]any, 10)
			for i := range vals {
				vals[i] = new(sql.RawBytes)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				if err := rows.Scan(vals[:len(cols)]...); err != nil {
					b.Fatal(err)
				}
			}
			rows.Close()
		}
		b.ReportAllocs()
		for b.Loop() {
			one(`SELECT id, tenant_id, hash, integration_id, created_at, revoked_at FROM registry_api_keys WHERE hash = ?`, k.Hash)
			one(`SELECT id, tenant_id, system_type, name, okta_domain, credential_id, allowed_operations, envelope, created_at, updated_at
				FROM registry_integrations WHERE tenant_id = ? AND id = ?`, tn.ID, in.ID)
			one(`SELECT id, name, response_kem_public_key, response_key_id, hmac_key_sealed, hmac_key_id, kms_key_id, created_at
				FROM registry_tenants WHERE id = ?`, tn.ID)
		}
	})
}
