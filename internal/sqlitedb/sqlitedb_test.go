package sqlitedb_test

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/quantaseal/gateway/internal/sqlitedb"
)

func TestMigrateIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	fsys := fstest.MapFS{
		"0001_t.sql":   {Data: []byte("CREATE TABLE t (x INTEGER)")},
		"0002_row.sql": {Data: []byte("INSERT INTO t VALUES (1)")},
	}
	for range 2 {
		db, err := sqlitedb.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlitedb.Migrate(t.Context(), db, "test", fsys); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("rows = %d, %v", n, err)
		}
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v", mode, err)
		}
		db.Close()
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	db, _ := sqlitedb.Open(t.Context(), path)
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != sqlitedb.MaxConns {
		t.Fatalf("MaxOpenConnections = %d, want %d", got, sqlitedb.MaxConns)
	}
	if err := sqlitedb.Migrate(t.Context(), db, "bad", fstest.MapFS{"0001_x.sql": {Data: []byte("NOT SQL")}}); err == nil {
		t.Fatal("a broken migration was accepted")
	}
}
