// Package testenv gives tests the external services they need: a fresh PostgreSQL
// database per test and the local KMS server's endpoint.
//
// `make test` (scripts/services.sh) starts a throwaway PostgreSQL cluster and the local
// KMS server and exports QUANTASEAL_TEST_DATABASE_URL, QUANTASEAL_TEST_KMS_ENDPOINT and
// QUANTASEAL_TEST_REQUIRE_SERVICES=1. Under `go test` without them, tests that need a
// service skip with a message saying how to run them; with REQUIRE_SERVICES set, a
// missing service is a failure, never a silent skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	envDatabase = "QUANTASEAL_TEST_DATABASE_URL"
	envKMS      = "QUANTASEAL_TEST_KMS_ENDPOINT"
	envRequire  = "QUANTASEAL_TEST_REQUIRE_SERVICES"
)

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("%s is not set but %s=1: %s is required (run `make test`)", env, envRequire, what)
	}
	t.Skipf("%s not set: run `make test` to start %s", env, what)
	return ""
}

// PostgresAdminURL returns the URL of the test server's maintenance database.
func PostgresAdminURL(t testing.TB) string {
	t.Helper()
	return need(t, envDatabase, "PostgreSQL")
}

// Postgres creates a new, empty database on the test server and returns its URL. The
// database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "qs_test_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", envDatabase, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", envDatabase, err)
	}
	u.Path = "/" + name
	return u.String()
}

// KMSEndpoint returns the local KMS server's URL (http://127.0.0.1:PORT).
func KMSEndpoint(t testing.TB) string {
	t.Helper()
	return need(t, envKMS, "the local KMS server")
}
