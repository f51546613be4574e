package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	"github.com/quantaseal/gateway/audit/pgstore"
	"github.com/quantaseal/gateway/internal/testenv"
)

func open(t testing.TB, url string) (*pgxpool.Pool, *pgstore.Store) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := pgstore.New(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return pool, s
}

func TestContract(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audittest.Harness {
		pool, s := open(t, testenv.Postgres(t))
		return audittest.Harness{
			Store: s,
			Exec: func(ctx context.Context, q string) error {
				_, err := pool.Exec(ctx, q)
				return err
			},
			Break: pool.Close,
		}
	})
}

// TestTwoProcesses runs two gateway "processes" — each its own pool, store and Log — on
// one database under concurrent load, sharing chains (same writer id, serialised on
// the head row) or sharded (distinct writer ids).
func TestTwoProcesses(t *testing.T) {
	for _, writers := range [][2]string{{"w1", "w1"}, {"w1", "w2"}} {
		t.Run(writers[0]+"+"+writers[1], func(t *testing.T) {
			url := testenv.Postgres(t)
			var logs []*audit.Log
			var stores []audit.Store
			for _, w := range writers {
				_, s := open(t, url)
				stores = append(stores, s)
				logs = append(logs, audittest.NewLog(t, s, audit.Config{WriterID: w, CheckpointEvery: 50}))
			}
			ctx := t.Context()
			var mu sync.Mutex
			acked := map[string]bool{}
			var wg sync.WaitGroup
			for g := range 64 {
				wg.Go(func() {
					for i := range 20 {
						ev, err := logs[g%2].Append(ctx, audittest.Sample(fmt.Sprintf("ten_%d", g%3), i))
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						mu.Lock()
						acked[ev.ID] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, l := range logs {
				if err := l.Close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			evs, _ := audittest.VerifyStore(t, stores[1], audit.VerifyOptions{MaxUnsigned: 50})
			for _, e := range evs {
				delete(acked, e.ID)
			}
			if len(acked) != 0 || len(evs) != 64*20 {
				t.Errorf("%d events stored, %d acknowledged ones missing", len(evs), len(acked))
			}
		})
	}
}

func TestCrash(t *testing.T) {
	url := testenv.Postgres(t)
	_, s := open(t, url)
	audittest.CrashTest(t, url, s)
}

// TestHelperProcess is the child of TestCrash; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	url := os.Getenv(audittest.HelperEnv)
	if url == "" {
		t.Skip("crash-test helper; run by TestCrash")
	}
	_, s := open(t, url)
	if err := audittest.AppendUntilKilled(s, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAppend(b *testing.B) {
	audittest.BenchmarkAppend(b, func(b *testing.B) audit.Store {
		_, s := open(b, testenv.Postgres(b))
		return s
	})
}

// BenchmarkTwoWriters measures two processes (pools and Logs) on one database, 128
// appenders for one tenant, against one process alone: shared chains serialise on the
// head row; distinct writer ids shard the tenant's log into one chain per process.
func BenchmarkTwoWriters(b *testing.B) {
	for _, writers := range [][]string{{"w1"}, {"w1", "w1"}, {"w1", "w2"}} {
		b.Run(strings.Join(writers, "+"), func(b *testing.B) {
			url := testenv.Postgres(b)
			var logs []*audit.Log
			for _, w := range writers {
				_, s := open(b, url)
				logs = append(logs, audittest.NewLog(b, s, audit.Config{WriterID: w}))
			}
			audittest.RunAppenders(b, 128, 1, logs)
		})
	}
}
