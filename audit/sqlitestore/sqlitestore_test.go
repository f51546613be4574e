package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	"github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/sqlitedb"
)

func open(t testing.TB, path string) (*sql.DB, *sqlitestore.Store) {
	t.Helper()
	db, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := sqlitestore.New(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}

func TestContract(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audittest.Harness {
		db, s := open(t, filepath.Join(t.TempDir(), "quantaseal.db"))
		return audittest.Harness{
			Store: s,
			Exec: func(ctx context.Context, q string) error {
				_, err := db.ExecContext(ctx, q)
				return err
			},
			Break: func() { db.Close() },
		}
	})
}

func TestCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quantaseal.db")
	_, s := open(t, path)
	audittest.CrashTest(t, path, s)
}

// TestHelperProcess is the child of TestCrash; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(audittest.HelperEnv)
	if path == "" {
		t.Skip("crash-test helper; run by TestCrash")
	}
	_, s := open(t, path)
	if err := audittest.AppendUntilKilled(s, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppend(b *testing.B) {
	audittest.BenchmarkAppend(b, func(b *testing.B) audit.Store {
		_, s := open(b, filepath.Join(b.TempDir(), "quantaseal.db"))
		return s
	})
}
