package sqlitestore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	"github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/id"
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

// TestAppendBatchConflictWritesNothing checks that a batch whose insert fails part-way
// leaves no event and no head change behind, also when earlier statements or rows of
// the same batch succeeded, and that the store keeps working afterwards. The batches
// are correctly linked (audit.CheckLinks would refuse a mis-linked one before any
// insert); the conflict is an event id used twice, which UNIQUE (tenant_id, id)
// refuses in the database.
func TestAppendBatchConflictWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events int
		dup    int // the event that reuses the previous event's id; 0: a committed event's id
	}{
		// insertRows writes 5 events as one 4-row statement and one 1-row statement.
		{"inside a multi-row statement", 5, 2},
		{"in a later statement", 5, 4},
		{"with a committed event", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			_, s := open(t, filepath.Join(t.TempDir(), "quantaseal.db"))
			appendSamples(t, s, 1, 3)
			committed, _ := audittest.Load(t, s)
			chain := audit.Chain{ID: "ten_0/w1", TenantID: "ten_0"}
			before, err := s.Head(ctx, chain.ID)
			if err != nil {
				t.Fatal(err)
			}
			err = s.AppendBatch(ctx, []audit.Chain{chain}, func(heads map[string]audit.Head) (audit.Batch, error) {
				h := heads[chain.ID]
				var b audit.Batch
				for i := range tc.events {
					e := audittest.Sample(chain.TenantID, i)
					e.ID, e.ChainID, e.Seq = id.New("aud"), chain.ID, h.Seq+1
					switch {
					case i == tc.dup && i > 0:
						e.ID = b.Events[i-1].ID
					case i == tc.dup:
						e.ID = committed[len(committed)-1].ID
					}
					e.Time, e.PrevHash = time.Now().UTC().Format(audit.TimeLayout), h.Hash
					e.Hash = e.ComputeHash()
					h.Seq, h.Hash = e.Seq, e.Hash
					b.Events = append(b.Events, e)
				}
				return b, nil
			})
			if !errors.Is(err, audit.ErrUnavailable) {
				t.Fatalf("AppendBatch with a repeated event id = %v, want ErrUnavailable", err)
			}
			after, err := s.Head(ctx, chain.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Errorf("head moved from %+v to %+v", before, after)
			}
			if evs, _ := audittest.VerifyStore(t, s, audit.VerifyOptions{MaxUnsigned: 10}); len(evs) != 3 {
				t.Errorf("%d events after the failed batch, want 3", len(evs))
			}
			appendSamples(t, s, 1, 2)
			if evs, _ := audittest.VerifyStore(t, s, audit.VerifyOptions{MaxUnsigned: 10}); len(evs) != 5 {
				t.Errorf("%d events after appending again, want 5", len(evs))
			}
		})
	}
}

// appendSamples appends n events spread over tenants through a Log and closes it, so
// that every chain ends signed.
func appendSamples(t *testing.T, s audit.Store, tenants, n int) {
	t.Helper()
	l := audittest.NewLog(t, s, audit.Config{CheckpointEvery: 7})
	for i := range n {
		if _, err := l.Append(t.Context(), audittest.Sample(fmt.Sprintf("ten_%d", i%tenants), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
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

// BenchmarkAppend also reports the process CPU time per event (user + system, every
// goroutine: the appenders, the committer and SQLite), which is what the embedded
// store costs a gateway that runs it in-process.
func BenchmarkAppend(b *testing.B) {
	audittest.BenchmarkAppend(b, func(b *testing.B) audit.Store {
		_, s := open(b, filepath.Join(b.TempDir(), "quantaseal.db"))
		reportCPUPerEvent(b)
		return s
	})
}

// reportCPUPerEvent reports the process CPU time from now until b's end, per b.N.
func reportCPUPerEvent(b *testing.B) {
	start := cpuTime(b)
	b.Cleanup(func() {
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu_us/event")
	})
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
