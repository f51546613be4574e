// Package sqlitedb opens the embedded store's SQLite database and applies migrations.
//
// The embedded store uses modernc.org/sqlite, a pure-Go SQLite: `quantaseal serve` then
// needs no server and no cgo, and the stores keep SQL (transactions, indexes, range
// queries for audit reads) that bbolt would make us hand-build. The database runs in WAL
// mode with synchronous=FULL, so a committed transaction survives SIGKILL and power loss,
// and with a busy timeout so concurrent writers wait instead of failing.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"

	"github.com/quantaseal/gateway/internal/pgmigrate"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// MaxConns is the size of the connection pool Open configures.
const MaxConns = 16

// Open opens (creating if needed) the database file at path, readable by its owner only
// (it holds sealed credentials and the audit chain).
func Open(ctx context.Context, path string) (*sql.DB, error) {
	// temp_store(MEMORY) keeps statement journals (which a multi-row INSERT or an
	// upsert writes, to undo itself on a constraint failure) in memory instead of a
	// temporary file written with a syscall per page; they never need to survive a
	// crash. The WAL, and with it durability, is unaffected.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// database/sql keeps only 2 idle connections by default, so under concurrent reads
	// it would open (and close) SQLite connections constantly, each re-running the
	// pragmas above: keep the pool's connections open instead. WAL lets readers run
	// alongside the one writer; more connections than this only queue on the lock.
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// Migrate applies component's NNNN_name.sql files from fsys that are not yet recorded in
// schema_migrations. Writers are serialised by SQLite itself (BEGIN IMMEDIATE).
func Migrate(ctx context.Context, db *sql.DB, component string, fsys fs.FS) error {
	migs, err := pgmigrate.Load(fsys)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component  TEXT    NOT NULL,
		version    INTEGER NOT NULL,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", component, err)
	}
	for _, m := range migs {
		if err := applyOne(ctx, db, component, m); err != nil {
			return fmt.Errorf("migrate %s: %s: %w", component, m.Name, err)
		}
	}
	return nil
}

func applyOne(ctx context.Context, db *sql.DB, component string, m pgmigrate.Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx,
		"SELECT count(*) FROM schema_migrations WHERE component=? AND version=?",
		component, m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO schema_migrations (component, version, name) VALUES (?, ?, ?)",
		component, m.Version, m.Name); err != nil {
		return err
	}
	return tx.Commit()
}
