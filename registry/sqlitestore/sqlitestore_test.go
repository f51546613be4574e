package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/registry/registrytest"
	"github.com/quantaseal/gateway/registry/sqlitestore"
)

func TestContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Open {
		path := filepath.Join(t.TempDir(), "registry.db")
		return func(t *testing.T) (registry.Store, func()) {
			db, err := sqlitedb.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sqlitestore.New(t.Context(), db)
			if err != nil {
				db.Close()
				t.Fatal(err)
			}
			return s, func() { db.Close() }
		}
	})
}
