package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/pgstore"
	"github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/internal/testenv"
)

// auditRun runs `quantaseal args…` and returns the exit code, stdout and stderr.
func auditRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), cmdIO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, args)
	return code, out.String(), errb.String()
}

// seedStore appends n events per tenant through a Log signed with a key written to
// <dir>/signing.key, and returns that key's public form.
func seedStore(t *testing.T, dir string, store audit.Store, n int) *audit.SeedSigner {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(filepath.Join(dir, signingKeyFile), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := newAuditSigner(secret.FromBytes(seed))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.NewLog(audit.Config{}, store, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, tenant := range []string{"ten_a", "ten_b"} {
			if _, err := l.Append(t.Context(), audit.Event{TenantID: tenant, Decision: "allow", Status: 200, Path: "/api/v1/users", ResponseBytes: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func embeddedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlitedb.Open(t.Context(), filepath.Join(dir, embeddedDBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := sqlitestore.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	seedStore(t, dir, store, 5)
	return dir
}

func TestAuditExportVerify(t *testing.T) {
	dir := embeddedStore(t)
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, _, stderr := auditRun(t, nil, "audit", "export", "--data-dir", dir, "--out", export); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if st, err := os.Stat(export); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v", st, err)
	}
	data, _ := os.ReadFile(export)

	// Keys as GET /api/v2/signing-keys serves them.
	s, _ := newAuditSigner(secret.FromBytes(bytes.Repeat([]byte{7}, 32)))
	keysPath := filepath.Join(t.TempDir(), "signing-keys.json")
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]any{{"key_id": s.KeyID(), "algorithm": "ML-DSA-65", "public_key": base64.StdEncoding.EncodeToString(s.PublicKey()), "current": true}}})
	if err := os.WriteFile(keysPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	wrongKeys := filepath.Join(t.TempDir(), "wrong.json")
	other, _ := newAuditSigner(secret.FromBytes(bytes.Repeat([]byte{8}, 32)))
	doc, _ = json.Marshal(map[string]any{"keys": []map[string]any{{"key_id": other.KeyID(), "algorithm": "ML-DSA-65", "public_key": base64.StdEncoding.EncodeToString(other.PublicKey())}}})
	_ = os.WriteFile(wrongKeys, doc, 0o644)

	tampered := filepath.Join(t.TempDir(), "tampered.jsonl")
	// The export holds ten_a's events (seq 1..5), ten_b's, then checkpoints.
	lines := strings.SplitAfter(string(data), "\n")
	truncated := filepath.Join(t.TempDir(), "truncated.jsonl")
	_ = os.WriteFile(truncated, []byte(strings.Join(append(append([]string{}, lines[:4]...), lines[5:]...), "")), 0o600)
	lines[2] = strings.Replace(lines[2], `"status":200`, `"status":500`, 1)
	_ = os.WriteFile(tampered, []byte(strings.Join(lines, "")), 0o600)

	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"file with keys", nil, []string{"--file", export, "--keys", keysPath}, 0, "OK: 2 chains, 10 events", ""},
		{"file with data-dir key", nil, []string{"--file", export, "--data-dir", dir}, 0, "chain ten_a/w1: seq 1..5, signed through 5", ""},
		{"file with env data dir key", map[string]string{"QUANTASEAL_DATA_DIR": dir}, []string{"--file", export}, 0, "OK", ""},
		{"live embedded store", nil, []string{"--data-dir", dir}, 0, "OK: 2 chains", ""},
		{"live store from env", map[string]string{"QUANTASEAL_DATA_DIR": dir}, nil, 0, "OK: 2 chains", ""},
		{"tampered member", nil, []string{"--file", tampered, "--keys", keysPath}, 1, "", `"ten_a/w1" broken at seq 3 (hash)`},
		{"deleted last event", nil, []string{"--file", truncated, "--keys", keysPath}, 1, "", `"ten_a/w1" broken at seq 5 (seq): truncated`},
		{"wrong key", nil, []string{"--file", export, "--keys", wrongKeys}, 1, "", "(key_id)"},
		{"no keys", nil, []string{"--file", export, "--data-dir", t.TempDir()}, 1, "", "signing.key"},
		{"missing store", nil, []string{"--data-dir", t.TempDir(), "--keys", keysPath}, 1, "", "quantaseal.db"},
		{"file and database", nil, []string{"--file", export, "--database-url", "postgres://x"}, 2, "", "not both"},
		{"bad lag", nil, []string{"--file", export, "--max-checkpoint-lag", "0s"}, 2, "", "positive"},
		{"extra arg", nil, []string{"x"}, 2, "", "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := auditRun(t, tc.env, append([]string{"audit", "verify"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout ~%q, stderr ~%q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestAuditExportOptions(t *testing.T) {
	dir := embeddedStore(t)
	code, stdout, stderr := auditRun(t, nil, "audit", "export", "--data-dir", dir, "--chain", "ten_b/w1")
	if code != 0 || strings.Contains(stdout, "ten_a/") || !strings.Contains(stdout, "ten_b/w1") {
		t.Fatalf("--chain: exit %d, %s", code, stderr)
	}
	code, stdout, _ = auditRun(t, nil, "audit", "export", "--data-dir", dir, "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if code != 0 || strings.Contains(stdout, `"event"`) {
		t.Errorf("--since in the future exported events (exit %d)", code)
	}
	// Everything since the start, verified as a partial export.
	code, stdout, _ = auditRun(t, nil, "audit", "export", "--data-dir", dir, "--since", "2000-01-01T00:00:00Z")
	f := filepath.Join(t.TempDir(), "since.jsonl")
	_ = os.WriteFile(f, []byte(stdout), 0o600)
	if c, out, errs := auditRun(t, nil, "audit", "verify", "--file", f, "--data-dir", dir, "--partial"); code != 0 || c != 0 {
		t.Errorf("partial export: exit %d/%d: %s %s", code, c, out, errs)
	}
	for _, args := range [][]string{
		{"audit"},
		{"audit", "bogus"},
		{"audit", "export", "--since", "yesterday"},
		{"audit", "export", "--data-dir", dir, "--database-url", "postgres://x"},
	} {
		if code, _, _ := auditRun(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := auditRun(t, nil, "audit", "export", "--data-dir", dir, "--chain", "ten_zzz/w1"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("unknown chain: exit %d %s", code, stderr)
	}
}

func TestAuditPostgres(t *testing.T) {
	url := testenv.Postgres(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seedStore(t, dir, store, 3)
	code, stdout, stderr := auditRun(t, map[string]string{"QUANTASEAL_DATABASE_URL": url}, "audit", "verify", "--data-dir", dir, "--database-url", url)
	if code != 0 || !strings.Contains(stdout, "OK: 2 chains, 6 events") {
		t.Fatalf("verify postgres: exit %d: %s %s", code, stdout, stderr)
	}
	if _, err := pool.Exec(t.Context(), `DELETE FROM audit_events WHERE chain_id = 'ten_a/w1' AND seq = 2`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = auditRun(t, nil, "audit", "verify", "--database-url", url, "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, `"ten_a/w1" broken at seq 2 (seq)`) {
		t.Errorf("tampered postgres: exit %d: %s", code, stderr)
	}
	code, stdout, _ = auditRun(t, map[string]string{"QUANTASEAL_DATABASE_URL": url}, "audit", "export")
	if code != 0 || strings.Count(stdout, `{"event"`) != 5 {
		t.Errorf("export from $QUANTASEAL_DATABASE_URL: exit %d, %d events", code, strings.Count(stdout, `{"event"`))
	}
}
