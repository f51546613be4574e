// Package pgmigrate applies a component's embedded SQL migrations to PostgreSQL.
//
// Files are named NNNN_description.sql and applied in order, each in its own transaction,
// and recorded in schema_migrations(component, version). The whole run holds a
// transaction-level advisory lock, so two replicas starting at once apply each
// migration exactly once: the second waits, then finds nothing left to do.
package pgmigrate

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migration is one parsed migration file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads and orders the migrations in fsys (top level only).
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// lockKey derives the advisory lock id; one lock for all components keeps the
// schema_migrations bootstrap itself race-free.
func lockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("quantaseal schema_migrations"))
	return int64(h.Sum64())
}

// Apply applies the migrations of component found in fsys that are not yet recorded.
func Apply(ctx context.Context, pool *pgxpool.Pool, component string, fsys fs.FS) error {
	migs, err := Load(fsys)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	defer conn.Release()
	// A session-level lock spans the per-migration transactions below.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey()); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", component, err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey())
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component  text        NOT NULL,
		version    integer     NOT NULL,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", component, err)
	}
	for _, m := range migs {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx,
				"SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE component=$1 AND version=$2)",
				component, m.Version).Scan(&exists); err != nil {
				return err
			}
			if exists {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx,
				"INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
				component, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %s: %w", component, m.Name, err)
		}
	}
	return nil
}
