package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/internal/testenv"
	"github.com/quantaseal/gateway/registry/pgstore"
	"github.com/quantaseal/gateway/registry/registrytest"
)

// TestLookupsArePrepared checks that the per-request lookups run as statements pgx
// prepared once and cached on the connection (its default QueryExecModeCacheStatement),
// not re-parsed by PostgreSQL on every call.
func TestLookupsArePrepared(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // one session, so pg_prepared_statements sees the lookups' statements
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := pgstore.New(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	tn, k, _ := registrytest.NewTenant(t, s, "cache")
	c := registrytest.NewCredential(t, s, tn.ID, "c")
	in := registrytest.NewIntegration(t, s, tn.ID, c.ID, "o")
	for range 2 {
		if _, err := s.LookupAPIKey(t.Context(), k.Hash); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTenant(t.Context(), tn.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetIntegration(t.Context(), tn.ID, in.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListIntegrations(t.Context(), tn.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"registry_api_keys WHERE hash", "registry_tenants WHERE id", "registry_integrations WHERE tenant_id = $1 AND id"} {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM ' || $1 || '%'`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("prepared statements for %q: %d, want 1", table, n)
		}
	}
}
