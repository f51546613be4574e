package sqlitestore_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	"github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/sqlitedb"
)

// TestMigrateHoldsEvents upgrades a database that holds chains written under the first
// schema and checks that they still verify, read and grow.
func TestMigrateHoldsEvents(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	// The rows of a real Log, written under the current schema…
	src := filepath.Join(dir, "src.db")
	_, written := open(t, src)
	appendSamples(t, written, 3, 40)

	// …copied into a database that has only the first migration.
	old, err := sqlitedb.Open(ctx, filepath.Join(dir, "quantaseal.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close() })
	first, err := fs.ReadFile(sqlitestore.Migrations(), "0001_audit.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(ctx, old, "audit", fstest.MapFS{"0001_audit.sql": {Data: first}}); err != nil {
		t.Fatal(err)
	}
	copyAudit(t, old, src)

	s, err := sqlitestore.New(ctx, old)
	if err != nil {
		t.Fatalf("migrating a database with events: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	evs, _ := audittest.VerifyStore(t, s, audit.VerifyOptions{MaxUnsigned: 10})
	if len(evs) != 40 {
		t.Fatalf("%d events after the migration, want 40", len(evs))
	}
	page, _, err := s.ListEvents(ctx, "ten_1", audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 13 {
		t.Errorf("ListEvents(ten_1) = %d events, want 13", len(page))
	}
	if _, err := s.EventProof(ctx, evs[0].TenantID, evs[0].ID); err != nil {
		t.Errorf("EventProof after the migration: %v", err)
	}
	// The chains continue from their migrated heads.
	appendSamples(t, s, 3, 20)
	if evs, _ := audittest.VerifyStore(t, s, audit.VerifyOptions{MaxUnsigned: 10}); len(evs) != 60 {
		t.Errorf("%d events after appending to the migrated chains, want 60", len(evs))
	}

	want := []string{"audit_events_chain_seq", "audit_events_chain_time", "audit_events_tenant_id"}
	if got := indexes(t, old, "audit_events"); !slices.Equal(got, want) {
		t.Errorf("indexes on audit_events = %v, want %v", got, want)
	}
	var fks int
	if err := old.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_list('audit_events')`).Scan(&fks); err != nil {
		t.Fatal(err)
	}
	if fks != 0 {
		t.Errorf("audit_events has %d foreign keys, want none", fks)
	}
}

// copyAudit copies the audit tables of the database file src into db, parents first.
func copyAudit(t *testing.T, db *sql.DB, src string) {
	t.Helper()
	ctx := t.Context()
	conn, err := db.Conn(ctx) // ATTACH applies to one connection
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS src`, src); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO audit_chains SELECT chain_id, tenant_id, head_seq, head_hash, checkpoint_seq, checkpoint_time FROM src.audit_chains`,
		`INSERT INTO audit_events (id, chain_id, seq, tenant_id, integration_id, time, prev_hash, hash, body)
			SELECT id, chain_id, seq, tenant_id, integration_id, time, prev_hash, hash, body FROM src.audit_events`,
		`INSERT INTO audit_checkpoints SELECT chain_id, seq, tenant_id, time, body FROM src.audit_checkpoints`,
		`DETACH DATABASE src`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func indexes(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM pragma_index_list(?) ORDER BY name`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
