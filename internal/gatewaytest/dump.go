package gatewaytest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DumpPostgres renders every row of every user table of the database at dbURL as JSON
// text (bytea as \x hex), one "schema.table {…}" line per row: the PostgreSQL
// counterpart of reading the embedded store's file bytes, for secret scans. A database
// without tables fails the test, so a scan cannot pass by reading nothing.
func DumpPostgres(t testing.TB, dbURL string) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the gateway's database: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return pgx.Identifier{schema, name}.Sanitize(), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 {
		t.Fatal("the gateway's PostgreSQL database has no tables")
	}
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT row_to_json(t)::text FROM %s t", tbl))
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("dump %s: %v", tbl, err)
		}
		for _, l := range lines {
			b.WriteString(tbl + " " + l + "\n")
		}
	}
	return []byte(b.String())
}
