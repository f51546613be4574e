// Package pgstore implements registry.Store (and with it vault.Store) on PostgreSQL
// through pgx/v5. It is the store for production and for several gateway replicas
// sharing one database.
//
// Migrations are embedded and applied by [New] through internal/pgmigrate, under an
// advisory lock, so replicas may start at the same time. Errors are classified once,
// in [classify]: no rows → registry.ErrNotFound; unique and foreign-key violations →
// registry.ErrConflict (or ErrNotFound where a referenced row is missing); connection
// failures, a closed pool, timeouts and server shutdown → registry.ErrUnavailable.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/internal/pgmigrate"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a registry.Store on a pgx pool. It does not own the pool: the caller closes it.
type Store struct {
	pool *pgxpool.Pool
}

var _ registry.Store = (*Store)(nil)

// New applies the registry migrations and returns a Store over pool.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("registry pgstore: %w", err)
	}
	if err := pgmigrate.Apply(ctx, pool, "registry", sub); err != nil {
		return nil, classify("registry pgstore: migrate", err)
	}
	return &Store{pool: pool}, nil
}

// Ping reports whether the database answers (for /readyz). Errors wrap ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	return classify("registry ping", s.pool.Ping(ctx))
}

// ts normalises a time to what the database keeps: UTC, microseconds.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func tsPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := ts(*t)
	return &v
}

// nonNil keeps NOT NULL bytea columns satisfied by an empty value (pgx sends nil as NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

// classify wraps err with op and the registry sentinel that describes it.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%s: %w (constraint %s)", op, registry.ErrConflict, pe.ConstraintName)
		case pe.Code == "23503": // foreign_key_violation
			return fmt.Errorf("%s: %w (constraint %s)", op, registry.ErrConflict, pe.ConstraintName)
		case pe.Code == "40001", pe.Code == "40P01", // serialization failure, deadlock: retry later
			len(pe.Code) == 5 && (pe.Code[:2] == "08" || pe.Code[:2] == "53" ||
				pe.Code[:2] == "57" || pe.Code[:2] == "58"):
			// connection exception, insufficient resources, operator intervention
			// (admin shutdown, query canceled by timeout), system error.
			return fmt.Errorf("%s: %w: %w", op, registry.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// Everything else is the connection or the pool: refused, reset, closed pool,
	// context deadline.
	return fmt.Errorf("%s: %w: %w", op, registry.ErrUnavailable, err)
}

// isFK reports a foreign-key violation.
func isFK(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// vaultErr adds the vault sentinel matching a registry sentinel, for vault.Store callers.
func vaultErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("%w: %w", vault.ErrNotFound, err)
	case errors.Is(err, registry.ErrUnavailable):
		return fmt.Errorf("%w: %w", vault.ErrUnavailable, err)
	}
	return err
}

// ---- tenants ----

const tenantCols = `id, name, response_kem_public_key, response_key_id, hmac_key_sealed, hmac_key_id, kms_key_id, created_at`

func scanTenant(r pgx.Row) (registry.Tenant, error) {
	var t registry.Tenant
	err := r.Scan(&t.ID, &t.Name, &t.ResponseKEMPublicKey, &t.ResponseKeyID, &t.HMACKeySealed, &t.HMACKeyID, &t.KMSKeyID, &t.CreatedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}

// CreateTenant implements registry.Store.
func (s *Store) CreateTenant(ctx context.Context, t registry.Tenant, first registry.APIKey) error {
	if first.TenantID != t.ID {
		return fmt.Errorf("create tenant %s: first key belongs to %q", t.ID, first.TenantID)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO registry_tenants (`+tenantCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
			t.ID, t.Name, nonNil(t.ResponseKEMPublicKey), t.ResponseKeyID, nonNil(t.HMACKeySealed), t.HMACKeyID, t.KMSKeyID, ts(t.CreatedAt)); err != nil {
			return err
		}
		return insertKey(ctx, tx, first)
	})
	return classify(fmt.Sprintf("create tenant %s", t.ID), err)
}

// GetTenant implements registry.Store.
func (s *Store) GetTenant(ctx context.Context, tenantID string) (registry.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM registry_tenants WHERE id = $1`, tenantID))
	if err != nil {
		return registry.Tenant{}, classify(fmt.Sprintf("get tenant %s", tenantID), err)
	}
	return t, nil
}

// ListTenants implements registry.Store.
func (s *Store) ListTenants(ctx context.Context) ([]registry.Tenant, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tenantCols+` FROM registry_tenants ORDER BY id`)
	if err != nil {
		return nil, classify("list tenants", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.Tenant, error) { return scanTenant(r) })
	return out, classify("list tenants", err)
}

// ---- API keys ----

const keyCols = `id, tenant_id, hash, integration_id, created_at, revoked_at`

func scanKey(r pgx.Row) (registry.APIKey, error) {
	var k registry.APIKey
	err := r.Scan(&k.ID, &k.TenantID, &k.Hash, &k.IntegrationID, &k.CreatedAt, &k.RevokedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	if k.RevokedAt != nil {
		v := k.RevokedAt.UTC()
		k.RevokedAt = &v
	}
	return k, err
}

func insertKey(ctx context.Context, tx pgx.Tx, k registry.APIKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO registry_api_keys (`+keyCols+`) VALUES ($1,$2,$3,$4,$5,$6)`,
		k.ID, k.TenantID, nonNil(k.Hash), k.IntegrationID, ts(k.CreatedAt), tsPtr(k.RevokedAt))
	return err
}

// CreateAPIKey implements registry.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k registry.APIKey) error {
	op := fmt.Sprintf("create api key %s", k.ID)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// FOR SHARE on the bound integration: a concurrent DeleteIntegration (FOR UPDATE)
		// waits, so it cannot miss this key.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM registry_tenants WHERE id = $1 FOR SHARE`, k.TenantID).Scan(&one); err != nil {
			return err
		}
		if k.IntegrationID != "" {
			if err := tx.QueryRow(ctx, `SELECT 1 FROM registry_integrations WHERE tenant_id = $1 AND id = $2 FOR SHARE`,
				k.TenantID, k.IntegrationID).Scan(&one); err != nil {
				return err
			}
		}
		return insertKey(ctx, tx, k)
	})
	return classify(op, err)
}

// LookupAPIKey implements registry.Store.
func (s *Store) LookupAPIKey(ctx context.Context, hash []byte) (registry.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM registry_api_keys WHERE hash = $1`, hash))
	if err != nil {
		return registry.APIKey{}, classify("lookup api key", err)
	}
	return k, nil
}

// ListAPIKeys implements registry.Store.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]registry.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM registry_api_keys WHERE tenant_id = $1 ORDER BY id`, tenantID)
	if err != nil {
		return nil, classify("list api keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.APIKey, error) { return scanKey(r) })
	return out, classify("list api keys", err)
}

// RevokeAPIKey implements registry.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE registry_api_keys SET revoked_at = COALESCE(revoked_at, $3)
		WHERE tenant_id = $1 AND id = $2`, tenantID, keyID, ts(at))
	op := fmt.Sprintf("revoke api key %s", keyID)
	if err != nil {
		return classify(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	return nil
}

// ---- integrations ----

const intCols = `id, tenant_id, system_type, name, okta_domain, credential_id, allowed_operations, envelope, created_at, updated_at`

func scanIntegration(r pgx.Row) (registry.Integration, error) {
	var in registry.Integration
	err := r.Scan(&in.ID, &in.TenantID, &in.SystemType, &in.Name, &in.OktaDomain, &in.CredentialID,
		&in.AllowedOperations, &in.Envelope, &in.CreatedAt, &in.UpdatedAt)
	in.CreatedAt, in.UpdatedAt = in.CreatedAt.UTC(), in.UpdatedAt.UTC()
	if in.AllowedOperations == nil {
		in.AllowedOperations = []string{}
	}
	return in, err
}

func ops(in registry.Integration) []string {
	if in.AllowedOperations == nil {
		return []string{}
	}
	return in.AllowedOperations
}

// CreateIntegration implements registry.Store.
func (s *Store) CreateIntegration(ctx context.Context, in registry.Integration) error {
	op := fmt.Sprintf("create integration %s", in.ID)
	_, err := s.pool.Exec(ctx, `INSERT INTO registry_integrations (`+intCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		in.ID, in.TenantID, in.SystemType, in.Name, in.OktaDomain, in.CredentialID, ops(in), in.Envelope,
		ts(in.CreatedAt), ts(in.UpdatedAt))
	if isFK(err) {
		return fmt.Errorf("%s: tenant or credential %s: %w", op, in.CredentialID, registry.ErrNotFound)
	}
	return classify(op, err)
}

// GetIntegration implements registry.Store.
func (s *Store) GetIntegration(ctx context.Context, tenantID, integrationID string) (registry.Integration, error) {
	in, err := scanIntegration(s.pool.QueryRow(ctx,
		`SELECT `+intCols+` FROM registry_integrations WHERE tenant_id = $1 AND id = $2`, tenantID, integrationID))
	if err != nil {
		return registry.Integration{}, classify(fmt.Sprintf("get integration %s", integrationID), err)
	}
	return in, nil
}

func (s *Store) listIntegrations(ctx context.Context, op, q string, args ...any) ([]registry.Integration, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, classify(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (registry.Integration, error) { return scanIntegration(r) })
	return out, classify(op, err)
}

// ListIntegrations implements registry.Store.
func (s *Store) ListIntegrations(ctx context.Context, tenantID string) ([]registry.Integration, error) {
	return s.listIntegrations(ctx, "list integrations",
		`SELECT `+intCols+` FROM registry_integrations WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

// ListIntegrationsByCredential implements registry.Store.
func (s *Store) ListIntegrationsByCredential(ctx context.Context, tenantID, credentialID string) ([]registry.Integration, error) {
	return s.listIntegrations(ctx, "list integrations by credential",
		`SELECT `+intCols+` FROM registry_integrations WHERE tenant_id = $1 AND credential_id = $2 ORDER BY id`,
		tenantID, credentialID)
}

// UpdateIntegration implements registry.Store.
func (s *Store) UpdateIntegration(ctx context.Context, in registry.Integration) error {
	op := fmt.Sprintf("update integration %s", in.ID)
	tag, err := s.pool.Exec(ctx, `UPDATE registry_integrations
		SET name = $3, okta_domain = $4, credential_id = $5, allowed_operations = $6, envelope = $7, updated_at = $8
		WHERE tenant_id = $1 AND id = $2`,
		in.TenantID, in.ID, in.Name, in.OktaDomain, in.CredentialID, ops(in), in.Envelope, ts(in.UpdatedAt))
	if isFK(err) {
		return fmt.Errorf("%s: credential %s: %w", op, in.CredentialID, registry.ErrNotFound)
	}
	if err != nil {
		return classify(op, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	return nil
}

// DeleteIntegration implements registry.Store.
func (s *Store) DeleteIntegration(ctx context.Context, tenantID, integrationID string) error {
	op := fmt.Sprintf("delete integration %s", integrationID)
	errBound := errors.New("bound key")
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM registry_integrations WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
			tenantID, integrationID).Scan(&one); err != nil {
			return err
		}
		var bound bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM registry_api_keys
			WHERE tenant_id = $1 AND integration_id = $2 AND revoked_at IS NULL)`, tenantID, integrationID).Scan(&bound); err != nil {
			return err
		}
		if bound {
			return errBound
		}
		_, err := tx.Exec(ctx, `DELETE FROM registry_integrations WHERE tenant_id = $1 AND id = $2`, tenantID, integrationID)
		return err
	})
	if errors.Is(err, errBound) {
		return fmt.Errorf("%s: a live API key is bound to it: %w", op, registry.ErrConflict)
	}
	return classify(op, err)
}

// ---- vault.Store ----

// PutTenantVaultKey implements vault.Store: it creates the key once; putting the same
// tenant again keeps the first key and succeeds (two replicas may race to create it).
func (s *Store) PutTenantVaultKey(ctx context.Context, tenantID string, k vault.WrappedKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO registry_vault_keys
		(tenant_id, key_provider, kms_key_id, encapsulation_key, wrapped_seed, created_at)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (tenant_id) DO NOTHING`,
		tenantID, k.KeyProvider, k.KMSKeyID, nonNil(k.EncapsulationKey), nonNil(k.WrappedSeed), ts(k.CreatedAt))
	return vaultErr(classify(fmt.Sprintf("put vault key of %s", tenantID), err))
}

// GetTenantVaultKey implements vault.Store. Errors wrap vault.ErrNotFound /
// vault.ErrUnavailable as well as the registry sentinels.
func (s *Store) GetTenantVaultKey(ctx context.Context, tenantID string) (vault.WrappedKey, error) {
	var k vault.WrappedKey
	err := s.pool.QueryRow(ctx, `SELECT tenant_id, key_provider, kms_key_id, encapsulation_key, wrapped_seed, created_at
		FROM registry_vault_keys WHERE tenant_id = $1`, tenantID).
		Scan(&k.TenantID, &k.KeyProvider, &k.KMSKeyID, &k.EncapsulationKey, &k.WrappedSeed, &k.CreatedAt)
	if err != nil {
		return vault.WrappedKey{}, vaultErr(classify(fmt.Sprintf("get vault key of %s", tenantID), err))
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// PutSealedCredential implements vault.Store: insert, or replace the sealed secret of an
// existing credential of the same tenant (rotation; created_at is kept). An id that
// belongs to another tenant is a conflict, never an overwrite.
func (s *Store) PutSealedCredential(ctx context.Context, c vault.SealedCredential) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO registry_credentials
		(tenant_id, id, name, type, fingerprint, ciphertext, created_at, rotated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
			fingerprint = EXCLUDED.fingerprint, ciphertext = EXCLUDED.ciphertext, rotated_at = EXCLUDED.rotated_at`,
		c.TenantID, c.ID, c.Name, c.Type, c.Fingerprint, nonNil(c.Ciphertext), ts(c.CreatedAt), nullTime(c.RotatedAt))
	op := fmt.Sprintf("put credential %s", c.ID)
	if isFK(err) {
		return vaultErr(fmt.Errorf("%s: tenant %s: %w", op, c.TenantID, registry.ErrNotFound))
	}
	return vaultErr(classify(op, err))
}

// ReplaceSealedCredential implements vault.Store: rotation updates the tenant's existing
// row only, so a credential deleted meanwhile stays deleted (ErrNotFound).
func (s *Store) ReplaceSealedCredential(ctx context.Context, c vault.SealedCredential) error {
	op := fmt.Sprintf("replace credential %s", c.ID)
	tag, err := s.pool.Exec(ctx, `UPDATE registry_credentials SET fingerprint = $3, ciphertext = $4, rotated_at = $5
		WHERE tenant_id = $1 AND id = $2`, c.TenantID, c.ID, c.Fingerprint, nonNil(c.Ciphertext), nullTime(c.RotatedAt))
	if err != nil {
		return vaultErr(classify(op, err))
	}
	if tag.RowsAffected() == 0 {
		return vaultErr(fmt.Errorf("%s: %w", op, registry.ErrNotFound))
	}
	return nil
}

const credMetaCols = `tenant_id, id, name, type, fingerprint, created_at, rotated_at`

func scanMeta(r pgx.Row, extra ...any) (vault.CredentialMeta, error) {
	var m vault.CredentialMeta
	var rotated *time.Time
	err := r.Scan(append([]any{&m.TenantID, &m.ID, &m.Name, &m.Type, &m.Fingerprint, &m.CreatedAt, &rotated}, extra...)...)
	m.CreatedAt = m.CreatedAt.UTC()
	if rotated != nil {
		m.RotatedAt = rotated.UTC()
	}
	return m, err
}

// GetSealedCredential implements vault.Store.
func (s *Store) GetSealedCredential(ctx context.Context, tenantID, credentialID string) (vault.SealedCredential, error) {
	var c vault.SealedCredential
	m, err := scanMeta(s.pool.QueryRow(ctx, `SELECT `+credMetaCols+`, ciphertext FROM registry_credentials
		WHERE tenant_id = $1 AND id = $2`, tenantID, credentialID), &c.Ciphertext)
	if err != nil {
		return vault.SealedCredential{}, vaultErr(classify(fmt.Sprintf("get credential %s", credentialID), err))
	}
	c.CredentialMeta = m
	return c, nil
}

// DeleteSealedCredential implements vault.Store. Errors wrap registry.ErrConflict when
// an integration still uses the credential, ErrNotFound when there is none.
func (s *Store) DeleteSealedCredential(ctx context.Context, tenantID, credentialID string) error {
	op := fmt.Sprintf("delete credential %s", credentialID)
	tag, err := s.pool.Exec(ctx, `DELETE FROM registry_credentials WHERE tenant_id = $1 AND id = $2`, tenantID, credentialID)
	if isFK(err) {
		return fmt.Errorf("%s: an integration uses it: %w", op, registry.ErrConflict)
	}
	if err != nil {
		return vaultErr(classify(op, err))
	}
	if tag.RowsAffected() == 0 {
		return vaultErr(fmt.Errorf("%s: %w", op, registry.ErrNotFound))
	}
	return nil
}

// ListSealedCredentials implements vault.Store (metadata only, ordered by id).
func (s *Store) ListSealedCredentials(ctx context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credMetaCols+` FROM registry_credentials WHERE tenant_id = $1 ORDER BY id`, tenantID)
	if err != nil {
		return nil, vaultErr(classify("list credentials", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (vault.CredentialMeta, error) { return scanMeta(r) })
	return out, vaultErr(classify("list credentials", err))
}
