package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/internal/testenv"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/registry/pgstore"
	"github.com/quantaseal/gateway/registry/registrytest"
)

func TestContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registrytest.Open {
		url := testenv.Postgres(t)
		return func(t *testing.T) (registry.Store, func()) {
			pool, err := pgxpool.New(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			s, err := pgstore.New(t.Context(), pool)
			if err != nil {
				pool.Close()
				t.Fatal(err)
			}
			return s, pool.Close
		}
	})
}
