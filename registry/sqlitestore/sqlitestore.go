// Package sqlitestore implements registry.Store (and with it vault.Store) on the embedded
// SQLite database opened by internal/sqlitedb, for single-machine deployments.
//
// It passes the same registry/registrytest suite as registry/pgstore. Writes run in
// BEGIN IMMEDIATE transactions (sqlitedb's DSN), so SQLite serialises writers and the
// check-then-write sequences below (binding a key to an integration, deleting an
// integration) cannot interleave.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"modernc.org/sqlite"

	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a registry.Store on a *sql.DB. It does not own the database: the caller closes it.
type Store struct {
	db *sql.DB
	// Statements of the per-request lookups, prepared once by New: database/sql
	// prepares a Stmt lazily on each pooled connection and keeps it there, so a
	// lookup no longer parses its SQL (sqlite3_prepare_v2 was 17.5% of a gateway
	// profile).
	lookupKey, getIntegration, listIntegrations, getTenant, getCredential, getVaultKey *sql.Stmt
}

var _ registry.Store = (*Store)(nil)

// New applies the registry migrations and returns a Store over db.
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("registry sqlitestore: %w", err)
	}
	if err := sqlitedb.Migrate(ctx, db, "registry", sub); err != nil {
		return nil, classify("registry sqlitestore: migrate", err)
	}
	s := &Store{db: db}
	for _, q := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.lookupKey, lookupKeySQL},
		{&s.getIntegration, getIntegrationSQL},
		{&s.listIntegrations, listIntegrationsSQL},
		{&s.getTenant, getTenantSQL},
		{&s.getCredential, getCredentialSQL},
		{&s.getVaultKey, getVaultKeySQL},
	} {
		st, err := db.PrepareContext(ctx, q.query)
		if err != nil {
			s.Close()
			return nil, classify("registry sqlitestore: prepare", err)
		}
		*q.dst = st
	}
	return s, nil
}

// Close releases the store's prepared statements; it does not close the database.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.lookupKey, s.getIntegration, s.listIntegrations, s.getTenant, s.getCredential, s.getVaultKey} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping reports whether the database answers (for /readyz). Errors wrap ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	return classify("registry ping", s.db.PingContext(ctx))
}

// SQLite result codes (https://www.sqlite.org/rescode.html).
const (
	codeBusy       = 5
	codeLocked     = 6
	codeNoMem      = 7
	codeInterrupt  = 9
	codeIOErr      = 10
	codeFull       = 13
	codeCantOpen   = 14
	codeConstraint = 19
	codeForeignKey = 787 // SQLITE_CONSTRAINT_FOREIGNKEY
)

func sqliteCode(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

func isFK(err error) bool {
	c, ok := sqliteCode(err)
	return ok && c == codeForeignKey
}

// classify wraps err with op and the registry sentinel that describes it.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	if c, ok := sqliteCode(err); ok {
		switch c & 0xff {
		case codeConstraint:
			return fmt.Errorf("%s: %w: %w", op, registry.ErrConflict, err)
		case codeBusy, codeLocked, codeNoMem, codeInterrupt, codeIOErr, codeFull, codeCantOpen:
			return fmt.Errorf("%s: %w: %w", op, registry.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	// database/sql's "database is closed", driver.ErrBadConn, context deadlines.
	return fmt.Errorf("%s: %w: %w", op, registry.ErrUnavailable, err)
}

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

// micros stores times as UTC microseconds, the precision PostgreSQL keeps.
func micros(t time.Time) int64 { return t.UTC().Truncate(time.Microsecond).UnixMicro() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil || t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(*t), Valid: true}
}

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func inTx(ctx context.Context, db *sql.DB, f func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// ---- tenants ----

const tenantCols = `id, name, response_kem_public_key, response_key_id, hmac_key_sealed, hmac_key_id, kms_key_id, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanTenant(r scanner) (registry.Tenant, error) {
	var t registry.Tenant
	var created int64
	err := r.Scan(&t.ID, &t.Name, &t.ResponseKEMPublicKey, &t.ResponseKeyID, &t.HMACKeySealed, &t.HMACKeyID, &t.KMSKeyID, &created)
	t.CreatedAt = fromMicros(created)
	return t, err
}

// CreateTenant implements registry.Store.
func (s *Store) CreateTenant(ctx context.Context, t registry.Tenant, first registry.APIKey) error {
	if first.TenantID != t.ID {
		return fmt.Errorf("create tenant %s: first key belongs to %q", t.ID, first.TenantID)
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_tenants (`+tenantCols+`) VALUES (?,?,?,?,?,?,?,?)`,
			t.ID, t.Name, nonNil(t.ResponseKEMPublicKey), t.ResponseKeyID, nonNil(t.HMACKeySealed), t.HMACKeyID, t.KMSKeyID, micros(t.CreatedAt)); err != nil {
			return err
		}
		return insertKey(ctx, tx, first)
	})
	return classify(fmt.Sprintf("create tenant %s", t.ID), err)
}

// nonNil keeps NOT NULL BLOB columns satisfied by an empty value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// GetTenant implements registry.Store.
func (s *Store) GetTenant(ctx context.Context, tenantID string) (registry.Tenant, error) {
	t, err := scanTenant(s.getTenant.QueryRowContext(ctx, tenantID))
	if err != nil {
		return registry.Tenant{}, classify(fmt.Sprintf("get tenant %s", tenantID), err)
	}
	return t, nil
}

func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ListTenants implements registry.Store.
func (s *Store) ListTenants(ctx context.Context) ([]registry.Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tenantCols+` FROM registry_tenants ORDER BY id`)
	out, err := collect(rows, err, scanTenant)
	return out, classify("list tenants", err)
}

// ---- API keys ----

const keyCols = `id, tenant_id, hash, integration_id, created_at, revoked_at`

func scanKey(r scanner) (registry.APIKey, error) {
	var k registry.APIKey
	var created int64
	var revoked sql.NullInt64
	err := r.Scan(&k.ID, &k.TenantID, &k.Hash, &k.IntegrationID, &created, &revoked)
	k.CreatedAt = fromMicros(created)
	if revoked.Valid {
		v := fromMicros(revoked.Int64)
		k.RevokedAt = &v
	}
	return k, err
}

func insertKey(ctx context.Context, tx *sql.Tx, k registry.APIKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO registry_api_keys (`+keyCols+`) VALUES (?,?,?,?,?,?)`,
		k.ID, k.TenantID, nonNil(k.Hash), k.IntegrationID, micros(k.CreatedAt), nullMicros(k.RevokedAt))
	return err
}

// CreateAPIKey implements registry.Store.
func (s *Store) CreateAPIKey(ctx context.Context, k registry.APIKey) error {
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM registry_tenants WHERE id = ?`, k.TenantID).Scan(&one); err != nil {
			return err
		}
		if k.IntegrationID != "" {
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM registry_integrations WHERE tenant_id = ? AND id = ?`,
				k.TenantID, k.IntegrationID).Scan(&one); err != nil {
				return err
			}
		}
		return insertKey(ctx, tx, k)
	})
	return classify(fmt.Sprintf("create api key %s", k.ID), err)
}

// LookupAPIKey implements registry.Store.
func (s *Store) LookupAPIKey(ctx context.Context, hash []byte) (registry.APIKey, error) {
	k, err := scanKey(s.lookupKey.QueryRowContext(ctx, nonNil(hash)))
	if err != nil {
		return registry.APIKey{}, classify("lookup api key", err)
	}
	return k, nil
}

// ListAPIKeys implements registry.Store.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]registry.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyCols+` FROM registry_api_keys WHERE tenant_id = ? ORDER BY id`, tenantID)
	out, err := collect(rows, err, scanKey)
	return out, classify("list api keys", err)
}

// RevokeAPIKey implements registry.Store.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string, at time.Time) error {
	op := fmt.Sprintf("revoke api key %s", keyID)
	res, err := s.db.ExecContext(ctx, `UPDATE registry_api_keys SET revoked_at = COALESCE(revoked_at, ?)
		WHERE tenant_id = ? AND id = ?`, micros(at), tenantID, keyID)
	return rowsOrNotFound(op, res, err)
}

func rowsOrNotFound(op string, res sql.Result, err error) error {
	if err != nil {
		return classify(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return classify(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, registry.ErrNotFound)
	}
	return nil
}

// ---- integrations ----

const intCols = `id, tenant_id, system_type, name, okta_domain, credential_id, allowed_operations, envelope, created_at, updated_at`

func scanIntegration(r scanner) (registry.Integration, error) {
	var in registry.Integration
	var opsJSON string
	var created, updated int64
	if err := r.Scan(&in.ID, &in.TenantID, &in.SystemType, &in.Name, &in.OktaDomain, &in.CredentialID,
		&opsJSON, &in.Envelope, &created, &updated); err != nil {
		return registry.Integration{}, err
	}
	in.CreatedAt, in.UpdatedAt = fromMicros(created), fromMicros(updated)
	in.AllowedOperations = []string{}
	if err := json.Unmarshal([]byte(opsJSON), &in.AllowedOperations); err != nil {
		return registry.Integration{}, fmt.Errorf("integration %s: allowed_operations: %w", in.ID, err)
	}
	return in, nil
}

func opsJSON(in registry.Integration) string {
	ops := in.AllowedOperations
	if ops == nil {
		ops = []string{}
	}
	b, _ := json.Marshal(ops) // a []string always marshals
	return string(b)
}

// CreateIntegration implements registry.Store.
func (s *Store) CreateIntegration(ctx context.Context, in registry.Integration) error {
	op := fmt.Sprintf("create integration %s", in.ID)
	_, err := s.db.ExecContext(ctx, `INSERT INTO registry_integrations (`+intCols+`) VALUES (?,?,?,?,?,?,?,?,?,?)`,
		in.ID, in.TenantID, in.SystemType, in.Name, in.OktaDomain, in.CredentialID, opsJSON(in), in.Envelope,
		micros(in.CreatedAt), micros(in.UpdatedAt))
	if isFK(err) {
		return fmt.Errorf("%s: tenant or credential %s: %w", op, in.CredentialID, registry.ErrNotFound)
	}
	return classify(op, err)
}

// GetIntegration implements registry.Store.
func (s *Store) GetIntegration(ctx context.Context, tenantID, integrationID string) (registry.Integration, error) {
	in, err := scanIntegration(s.getIntegration.QueryRowContext(ctx, tenantID, integrationID))
	if err != nil {
		return registry.Integration{}, classify(fmt.Sprintf("get integration %s", integrationID), err)
	}
	return in, nil
}

// ListIntegrations implements registry.Store.
func (s *Store) ListIntegrations(ctx context.Context, tenantID string) ([]registry.Integration, error) {
	rows, err := s.listIntegrations.QueryContext(ctx, tenantID)
	out, err := collect(rows, err, scanIntegration)
	return out, classify("list integrations", err)
}

// ListIntegrationsByCredential implements registry.Store.
func (s *Store) ListIntegrationsByCredential(ctx context.Context, tenantID, credentialID string) ([]registry.Integration, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+intCols+` FROM registry_integrations
		WHERE tenant_id = ? AND credential_id = ? ORDER BY id`, tenantID, credentialID)
	out, err := collect(rows, err, scanIntegration)
	return out, classify("list integrations by credential", err)
}

// UpdateIntegration implements registry.Store.
func (s *Store) UpdateIntegration(ctx context.Context, in registry.Integration) error {
	op := fmt.Sprintf("update integration %s", in.ID)
	res, err := s.db.ExecContext(ctx, `UPDATE registry_integrations
		SET name = ?, okta_domain = ?, credential_id = ?, allowed_operations = ?, envelope = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ?`,
		in.Name, in.OktaDomain, in.CredentialID, opsJSON(in), in.Envelope, micros(in.UpdatedAt), in.TenantID, in.ID)
	if isFK(err) {
		return fmt.Errorf("%s: credential %s: %w", op, in.CredentialID, registry.ErrNotFound)
	}
	return rowsOrNotFound(op, res, err)
}

// DeleteIntegration implements registry.Store.
func (s *Store) DeleteIntegration(ctx context.Context, tenantID, integrationID string) error {
	op := fmt.Sprintf("delete integration %s", integrationID)
	errBound := errors.New("bound key")
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		var bound bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM registry_api_keys
			WHERE tenant_id = ? AND integration_id = ? AND revoked_at IS NULL)`, tenantID, integrationID).Scan(&bound); err != nil {
			return err
		}
		if bound {
			return errBound
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM registry_integrations WHERE tenant_id = ? AND id = ?`, tenantID, integrationID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(sql.ErrNoRows, err)
		}
		return nil
	})
	if errors.Is(err, errBound) {
		return fmt.Errorf("%s: a live API key is bound to it: %w", op, registry.ErrConflict)
	}
	return classify(op, err)
}

// ---- vault.Store ----

// PutTenantVaultKey implements vault.Store: it creates the key once; putting the same
// tenant again keeps the first key and succeeds.
func (s *Store) PutTenantVaultKey(ctx context.Context, tenantID string, k vault.WrappedKey) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO registry_vault_keys
		(tenant_id, key_provider, kms_key_id, encapsulation_key, wrapped_seed, created_at)
		VALUES (?,?,?,?,?,?) ON CONFLICT (tenant_id) DO NOTHING`,
		tenantID, k.KeyProvider, k.KMSKeyID, nonNil(k.EncapsulationKey), nonNil(k.WrappedSeed), micros(k.CreatedAt))
	return vaultErr(classify(fmt.Sprintf("put vault key of %s", tenantID), err))
}

// GetTenantVaultKey implements vault.Store.
func (s *Store) GetTenantVaultKey(ctx context.Context, tenantID string) (vault.WrappedKey, error) {
	var k vault.WrappedKey
	var created int64
	err := s.getVaultKey.QueryRowContext(ctx, tenantID).
		Scan(&k.TenantID, &k.KeyProvider, &k.KMSKeyID, &k.EncapsulationKey, &k.WrappedSeed, &created)
	if err != nil {
		return vault.WrappedKey{}, vaultErr(classify(fmt.Sprintf("get vault key of %s", tenantID), err))
	}
	k.CreatedAt = fromMicros(created)
	return k, nil
}

// PutSealedCredential implements vault.Store: insert, or replace the sealed secret of an
// existing credential of the same tenant (created_at is kept). An id that belongs to
// another tenant is a conflict, never an overwrite.
func (s *Store) PutSealedCredential(ctx context.Context, c vault.SealedCredential) error {
	op := fmt.Sprintf("put credential %s", c.ID)
	_, err := s.db.ExecContext(ctx, `INSERT INTO registry_credentials
		(tenant_id, id, name, type, fingerprint, ciphertext, created_at, rotated_at)
		VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, type = excluded.type,
			fingerprint = excluded.fingerprint, ciphertext = excluded.ciphertext, rotated_at = excluded.rotated_at`,
		c.TenantID, c.ID, c.Name, c.Type, c.Fingerprint, nonNil(c.Ciphertext), micros(c.CreatedAt), nullMicros(&c.RotatedAt))
	if isFK(err) {
		return vaultErr(fmt.Errorf("%s: tenant %s: %w", op, c.TenantID, registry.ErrNotFound))
	}
	return vaultErr(classify(op, err))
}

// ReplaceSealedCredential implements vault.Store: rotation updates the tenant's existing
// row only, so a credential deleted meanwhile stays deleted (ErrNotFound).
func (s *Store) ReplaceSealedCredential(ctx context.Context, c vault.SealedCredential) error {
	op := fmt.Sprintf("replace credential %s", c.ID)
	res, err := s.db.ExecContext(ctx, `UPDATE registry_credentials SET fingerprint = ?, ciphertext = ?, rotated_at = ?
		WHERE tenant_id = ? AND id = ?`, c.Fingerprint, nonNil(c.Ciphertext), nullMicros(&c.RotatedAt), c.TenantID, c.ID)
	return vaultErr(rowsOrNotFound(op, res, err))
}

const credMetaCols = `tenant_id, id, name, type, fingerprint, created_at, rotated_at`

// The statements New prepares.
const (
	getTenantSQL        = `SELECT ` + tenantCols + ` FROM registry_tenants WHERE id = ?`
	lookupKeySQL        = `SELECT ` + keyCols + ` FROM registry_api_keys WHERE hash = ?`
	getIntegrationSQL   = `SELECT ` + intCols + ` FROM registry_integrations WHERE tenant_id = ? AND id = ?`
	listIntegrationsSQL = `SELECT ` + intCols + ` FROM registry_integrations WHERE tenant_id = ? ORDER BY id`
	getCredentialSQL    = `SELECT ` + credMetaCols + `, ciphertext FROM registry_credentials WHERE tenant_id = ? AND id = ?`
	getVaultKeySQL      = `SELECT tenant_id, key_provider, kms_key_id, encapsulation_key, wrapped_seed, created_at
		FROM registry_vault_keys WHERE tenant_id = ?`
)

func scanMeta(r scanner, extra ...any) (vault.CredentialMeta, error) {
	var m vault.CredentialMeta
	var created int64
	var rotated sql.NullInt64
	err := r.Scan(append([]any{&m.TenantID, &m.ID, &m.Name, &m.Type, &m.Fingerprint, &created, &rotated}, extra...)...)
	m.CreatedAt = fromMicros(created)
	if rotated.Valid {
		m.RotatedAt = fromMicros(rotated.Int64)
	}
	return m, err
}

// GetSealedCredential implements vault.Store.
func (s *Store) GetSealedCredential(ctx context.Context, tenantID, credentialID string) (vault.SealedCredential, error) {
	var c vault.SealedCredential
	m, err := scanMeta(s.getCredential.QueryRowContext(ctx, tenantID, credentialID), &c.Ciphertext)
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
	res, err := s.db.ExecContext(ctx, `DELETE FROM registry_credentials WHERE tenant_id = ? AND id = ?`, tenantID, credentialID)
	if isFK(err) {
		return fmt.Errorf("%s: an integration uses it: %w", op, registry.ErrConflict)
	}
	return vaultErr(rowsOrNotFound(op, res, err))
}

// ListSealedCredentials implements vault.Store (metadata only, ordered by id).
func (s *Store) ListSealedCredentials(ctx context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+credMetaCols+` FROM registry_credentials WHERE tenant_id = ? ORDER BY id`, tenantID)
	out, err := collect(rows, err, func(r scanner) (vault.CredentialMeta, error) { return scanMeta(r) })
	return out, vaultErr(classify("list credentials", err))
}
