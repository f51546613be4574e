package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantaseal/gateway/internal/loadgen"
)

// postgresCPU returns a reader of the CPU time used so far by the PostgreSQL server at
// url — its postmaster and every backend and background worker it forked — when that
// server runs on this machine. The bench's PostgreSQL shares the two cores with the
// gateway and the load generator, so its share of a call's cost belongs in the table:
// it is the third term of "CPU per call" next to the gateway's and the generator's.
//
// The postmaster is found through its data directory's postmaster.pid (SHOW
// data_directory needs a superuser or pg_read_all_settings, which the bench's
// administrative URL has). A remote server, or one whose process this user cannot
// read, yields an error and the column shows "-".
func postgresCPU(ctx context.Context, url string) (func() (time.Duration, error), error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres CPU: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return nil, fmt.Errorf("postgres CPU: %w", err)
	}
	pid, err := postmasterPID(dir)
	if err != nil {
		return nil, fmt.Errorf("postgres CPU: %w", err)
	}
	read := func() (time.Duration, error) { return loadgen.ProcessFamilyCPU(pid) }
	if _, err := read(); err != nil {
		return nil, fmt.Errorf("postgres CPU: %w", err)
	}
	return read, nil
}

// postmasterPID reads the postmaster's pid, the first line of dir/postmaster.pid.
func postmasterPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, err // a remote server's data directory is not here
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: no pid on its first line", filepath.Join(dir, "postmaster.pid"))
	}
	return pid, nil
}
