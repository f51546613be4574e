package pgstore

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/internal/pgmigrate"
)

// NewAtVersion is New with only the migrations up to version applied: a store running
// against the schema of an older install.
func NewAtVersion(ctx context.Context, pool *pgxpool.Pool, version int) (*Store, error) {
	migs, err := pgmigrate.Load(Migrations())
	if err != nil {
		return nil, err
	}
	older := fstest.MapFS{}
	for _, m := range migs {
		if m.Version <= version {
			older[m.Name] = &fstest.MapFile{Data: []byte(m.SQL), Mode: fs.ModePerm}
		}
	}
	if err := pgmigrate.Apply(ctx, pool, "audit", older); err != nil {
		return nil, fmt.Errorf("migrate to %d: %w", version, err)
	}
	return &Store{pool: pool, chains: map[string]chainState{}}, nil
}
