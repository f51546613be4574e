package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantaseal/gateway/internal/testenv"
)

func TestPostmasterPID(t *testing.T) {
	for _, tt := range []struct {
		name, content string
		want          int
	}{
		{"postgres 15 layout", "4242\n/var/lib/postgresql/15/main\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001         0\nready   \n", 4242},
		{"garbage", "not a pid\n", 0},
		{"zero", "0\n", 0},
		{"empty", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := postmasterPID(dir)
			if got != tt.want || (err != nil) != (tt.want == 0) {
				t.Errorf("postmasterPID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	if _, err := postmasterPID(t.TempDir()); err == nil {
		t.Error("postmasterPID of a directory without postmaster.pid: nil error")
	}
}

// TestPostgresCPU reads the test server's CPU, which a burst of queries must raise.
func TestPostgresCPU(t *testing.T) {
	url := testenv.Postgres(t)
	read, err := postgresCPU(t.Context(), url)
	if err != nil {
		t.Fatalf("postgresCPU: %v (the test server runs on this machine)", err)
	}
	before, err := read()
	if err != nil || before <= 0 {
		t.Fatalf("first read = %v, %v; a running server has used some CPU", before, err)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// About half a second of backend CPU, well above the 10 ms resolution.
	if _, err := conn.Exec(t.Context(), "SELECT count(*) FROM generate_series(1, 5000000)"); err != nil {
		t.Fatal(err)
	}
	after, err := read()
	if err != nil || after-before < 50*time.Millisecond {
		t.Errorf("CPU before %v, after %v (%v): want the query's CPU counted", before, after, err)
	}

	if _, err := postgresCPU(t.Context(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"); err == nil {
		t.Error("postgresCPU of an unreachable server: nil error")
	}
}
