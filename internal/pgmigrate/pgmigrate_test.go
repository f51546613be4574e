package pgmigrate_test

import (
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/internal/pgmigrate"
	"github.com/quantaseal/gateway/internal/testenv"
)

func TestLoadRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number": {"init.sql": {Data: []byte("x")}},
		"duplicate": {"0001_a.sql": {Data: []byte("x")}, "0001_b.sql": {Data: []byte("y")}},
	} {
		if _, err := pgmigrate.Load(fsys); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
	migs, err := pgmigrate.Load(fstest.MapFS{
		"0002_b.sql": {Data: []byte("B")}, "0001_a.sql": {Data: []byte("A")}, "README": {Data: []byte("-")},
	})
	if err != nil || len(migs) != 2 || migs[0].Version != 1 || migs[1].SQL != "B" {
		t.Fatalf("Load = %+v, %v", migs, err)
	}
}

func TestApplyConcurrentlyOnce(t *testing.T) {
	url := testenv.Postgres(t)
	fsys := fstest.MapFS{
		"0001_t.sql":   {Data: []byte("CREATE TABLE t (x int)")},
		"0002_row.sql": {Data: []byte("INSERT INTO t VALUES (1)")},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			pool, err := pgxpool.New(t.Context(), url)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			errs <- pgmigrate.Apply(t.Context(), pool, "test", fsys)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d, %v; want exactly one application of 0002", n, err)
	}
}
