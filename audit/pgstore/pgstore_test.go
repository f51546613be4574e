package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	"github.com/quantaseal/gateway/audit/pgstore"
	"github.com/quantaseal/gateway/internal/testenv"
)

func open(t testing.TB, url string) (*pgxpool.Pool, *pgstore.Store) {
	t.Helper()
	return openTraced(t, url, nil)
}

// openTraced is open with tracer (nil: none) on every connection of the pool.
func openTraced(t testing.TB, url string, tracer pgx.QueryTracer) (*pgxpool.Pool, *pgstore.Store) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
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
	pool, s := open(t, url)
	audittest.CrashTest(t, url, &afterHelperStore{Store: s, pool: pool})
}

// crashHelperApp is the application_name of the crash helper's connections.
const crashHelperApp = "quantaseal_crash_helper"

// afterHelperStore waits, before its first read, until every backend of the killed
// crash helper has gone. PostgreSQL completes a statement it has received even when
// the client is killed, and the one-statement append is a whole commit: events the
// helper never acknowledged may still commit just after SIGKILL. Reading before that
// would see a head that then moves.
type afterHelperStore struct {
	*pgstore.Store
	pool *pgxpool.Pool
	once sync.Once
	err  error
}

func (s *afterHelperStore) Chains(ctx context.Context) ([]audit.Head, error) {
	s.once.Do(func() {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var n int
			if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
				crashHelperApp).Scan(&n); err != nil || n == 0 {
				s.err = err
				return
			}
			if time.Now().After(deadline) {
				s.err = fmt.Errorf("%d backends of the killed helper still there", n)
				return
			}
		}
	})
	if s.err != nil {
		return nil, s.err
	}
	return s.Store.Chains(ctx)
}

// TestHelperProcess is the child of TestCrash; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	url := os.Getenv(audittest.HelperEnv)
	if url == "" {
		t.Skip("crash-test helper; run by TestCrash")
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", crashHelperApp)
	u.RawQuery = q.Encode()
	_, s := open(t, u.String())
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

// countingStore counts the build calls of each AppendBatch and records the head seq of
// chain each call was given.
type countingStore struct {
	*pgstore.Store
	chain string
	mu    sync.Mutex
	seqs  []int64 // head seq of chain passed to each build call, in order
}

func (s *countingStore) AppendBatch(ctx context.Context, chains []audit.Chain, build audit.BuildFunc) error {
	return s.Store.AppendBatch(ctx, chains, func(heads map[string]audit.Head) (audit.Batch, error) {
		s.mu.Lock()
		s.seqs = append(s.seqs, heads[s.chain].Seq)
		s.mu.Unlock()
		return build(heads)
	})
}

// takeSeqs returns and clears the recorded build calls.
func (s *countingStore) takeSeqs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.seqs
	s.seqs = nil
	return out
}

// statementCounter counts the statements a pool sends outside pipelined batches
// (BEGIN and COMMIT included): the one-statement append is one, the locking path more.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestTwoStoresAlternate appends to one chain from two stores (two pools, as two
// processes would) in turn, so that the head each store remembers is stale: the
// one-statement append must find the head moved, change nothing and fall back to the
// locking path, which builds again on the locked head.
func TestTwoStoresAlternate(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := t.Context()
	statements := &statementCounter{}
	_, storeA := openTraced(t, url, statements)
	_, storeB := open(t, url)
	const chain = "ten_x/w1"
	a := &countingStore{Store: storeA, chain: chain}
	b := &countingStore{Store: storeB, chain: chain}
	// No checkpoint falls due after a chain's first batch, so every batch may take the
	// one-statement path.
	cfg2 := audit.Config{CheckpointEvery: 1 << 20, CheckpointInterval: time.Hour}
	logA, logB := audittest.NewLog(t, a, cfg2), audittest.NewLog(t, b, cfg2)
	var acked []string
	// appendOne appends one event through l and checks the head seqs its build calls
	// saw; oneStatement says whether it must have taken the one-statement path.
	appendOne := func(l *audit.Log, s *countingStore, oneStatement bool, want ...int64) {
		t.Helper()
		before := statements.n.Load()
		ev, err := l.Append(ctx, audittest.Sample("ten_x", len(acked)))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		acked = append(acked, ev.ID)
		if got := s.takeSeqs(); !slices.Equal(got, want) {
			t.Fatalf("event %d: build saw head seqs %v, want %v", len(acked), got, want)
		}
		if s == a {
			if n := statements.n.Load() - before; (n == 1) != oneStatement {
				t.Errorf("event %d: store A sent %d statements; one-statement append expected: %v", len(acked), n, oneStatement)
			}
		}
	}
	appendOne(logA, a, false, 0) // a new chain: locking path
	appendOne(logA, a, true, 1)  // A's own head: one statement
	appendOne(logA, a, true, 2)
	appendOne(logB, b, false, 3)    // B has not seen the chain: locking path
	appendOne(logB, b, false, 4)    // B's own head: one statement (B's pool is not traced)
	appendOne(logA, a, false, 3, 5) // A's remembered head is stale: falls back, builds again
	appendOne(logB, b, false, 5, 6) // and so is B's
	for range 3 {
		// Each store has found the head moved and now locks at once, building once.
		appendOne(logA, a, false, int64(len(acked)))
		appendOne(logB, b, false, int64(len(acked)))
	}
	// A alone again: the first locked batch still sees B's last event, the second finds
	// the head where A left it, and then A is back to one statement.
	appendOne(logA, a, false, int64(len(acked)))
	appendOne(logA, a, false, int64(len(acked)))
	appendOne(logA, a, true, int64(len(acked)))
	for _, l := range []*audit.Log{logA, logB} {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := audittest.VerifyStore(t, storeB, audit.VerifyOptions{MaxUnsigned: 1 << 20})
	if len(evs) != len(acked) {
		t.Fatalf("%d events stored, %d acknowledged", len(evs), len(acked))
	}
	for i, e := range evs {
		if e.ID != acked[i] || e.Seq != int64(i+1) {
			t.Errorf("event %d: %s seq %d, want %s seq %d", i, e.ID, e.Seq, acked[i], i+1)
		}
	}
}

// TestOneStatementAppendAllOrNothing moves one of two chains of a batch behind the
// back of the store that remembers them: the one-statement append must advance neither
// head and insert nothing, and the locking path then appends on the real heads.
func TestOneStatementAppendAllOrNothing(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := t.Context()
	_, a := open(t, url)
	_, b := open(t, url)
	both := []audit.Chain{{ID: "ten_x/w1", TenantID: "ten_x"}, {ID: "ten_y/w1", TenantID: "ten_y"}}
	var calls []map[string]audit.Head
	for range 2 {
		if err := a.AppendBatch(ctx, both, audittest.OneEventEach(&calls)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendBatch(ctx, both[1:], audittest.OneEventEach(&calls)); err != nil {
		t.Fatal(err)
	}
	calls = nil
	if err := a.AppendBatch(ctx, both, audittest.OneEventEach(&calls)); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[0]["ten_y/w1"].Seq != 2 || calls[1]["ten_y/w1"].Seq != 3 || calls[1]["ten_x/w1"].Seq != 2 {
		t.Fatalf("build calls %+v; want the remembered heads (x 2, y 2), then the locked ones (x 2, y 3)", calls)
	}
	for chain, want := range map[string]int64{"ten_x/w1": 3, "ten_y/w1": 4} {
		h, err := a.Head(ctx, chain)
		if err != nil || h.Seq != want {
			t.Fatalf("head of %s = %+v, %v; want seq %d", chain, h, err, want)
		}
		evs, err := a.ChainEvents(ctx, chain, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		prev := audit.ZeroHash
		for i, e := range evs {
			if e.Seq != int64(i+1) || e.PrevHash != prev || e.Hash != e.ComputeHash() {
				t.Errorf("%s event %d: seq %d, prev_hash %s after %s", chain, i, e.Seq, e.PrevHash, prev)
			}
			prev = e.Hash
		}
		if len(evs) != int(want) || prev != h.Hash {
			t.Errorf("%s: %d events ending at %s, head %d at %s", chain, len(evs), prev, h.Seq, h.Hash)
		}
	}
}

// TestRefusesBatchNotExtendingHead: with UNIQUE (chain_id, prev_hash) gone, the store
// itself refuses events that do not link to the head they advance, on both paths.
func TestRefusesBatchNotExtendingHead(t *testing.T) {
	ctx := t.Context()
	_, s := open(t, testenv.Postgres(t))
	chain := []audit.Chain{{ID: "ten_z/w1", TenantID: "ten_z"}}
	var calls []map[string]audit.Head
	for _, path := range []string{"locking", "one-statement"} {
		misLinked := func(heads map[string]audit.Head) (audit.Batch, error) {
			b, err := audittest.OneEventEach(&calls)(heads)
			b.Events[0].PrevHash = strings.Repeat("f", 64)
			return b, err
		}
		if err := s.AppendBatch(ctx, chain, misLinked); err == nil || errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("%s path: mis-linked batch: err = %v, want a refusal", path, err)
		}
		if err := s.AppendBatch(ctx, chain, audittest.OneEventEach(&calls)); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := s.Head(ctx, chain[0].ID); err != nil || h.Seq != 2 {
		t.Fatalf("head = %+v, %v; want seq 2", h, err)
	}
}

// TestMigrateExistingData writes chains under the first schema, migrates, and goes on:
// the chains continue, verify, and every read (list pages, proofs) finds the old
// events through the new indexes.
func TestMigrateExistingData(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := t.Context()
	oldPool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(oldPool.Close)
	old, err := pgstore.NewAtVersion(ctx, oldPool, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := audit.Config{CheckpointEvery: 7}
	appendSome := func(s audit.Store, n int) {
		l := audittest.NewLog(t, s, cfg)
		for i := range n {
			if _, err := l.Append(ctx, audittest.Sample(fmt.Sprintf("ten_%d", i%2), i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	appendSome(old, 20)
	// The upgraded process has its own pool: statements prepared before the migration
	// that return a column whose collation changed fail once ("cached plan must not
	// change result type") and are prepared again.
	oldPool.Close()
	pool, s := open(t, url)
	appendSome(s, 20)
	evs, _ := audittest.VerifyStore(t, s, audit.VerifyOptions{})
	if len(evs) != 40 {
		t.Fatalf("%d events after the migration, want 40", len(evs))
	}
	var ids []string
	for _, e := range evs {
		if e.TenantID == "ten_0" {
			ids = append(ids, e.ID)
		}
	}
	slices.Sort(ids) // byte order: the order of the cursor
	var listed []string
	for after := ""; ; {
		page, next, err := s.ListEvents(ctx, "ten_0", audit.Query{After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			listed = append(listed, e.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(listed, ids) {
		t.Errorf("ListEvents pages = %v, want %v", listed, ids)
	}
	for _, id := range []string{ids[0], ids[len(ids)-1]} {
		p, err := s.EventProof(ctx, "ten_0", id)
		if err != nil || p.Event.ID != id {
			t.Errorf("EventProof(%s) = %s, %v", id, p.Event.ID, err)
		}
		if _, err := s.EventProof(ctx, "ten_1", id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("EventProof of ten_0's %s as ten_1: %v, want ErrNotFound", id, err)
		}
	}
	var pk string
	if err := pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'audit_events'::regclass AND contype = 'p'`).Scan(&pk); err != nil || pk != "PRIMARY KEY (tenant_id, id)" {
		t.Errorf("audit_events primary key = %q, %v", pk, err)
	}
}

// overlapTracer records how many one-statement appends were in flight at once.
type overlapTracer struct {
	now, peak, total atomic.Int64
}

type overlapKey struct{}

func (o *overlapTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if !strings.HasPrefix(strings.TrimSpace(d.SQL), "WITH remembered") {
		return ctx
	}
	o.total.Add(1)
	n := o.now.Add(1)
	for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
	}
	return context.WithValue(ctx, overlapKey{}, true)
}

func (o *overlapTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(overlapKey{}) != nil {
		o.now.Add(-1)
	}
}

// TestPipelinedBatches keeps two batches in flight (audit.Config.MaxInFlight): the
// second is built on the heads the first claimed and its statement waits on their
// row locks, so the two commit in order. Under load the one-statement appends overlap,
// every acknowledged event is stored once and the chains verify.
func TestPipelinedBatches(t *testing.T) {
	tracer := &overlapTracer{}
	_, store := openTraced(t, testenv.Postgres(t), tracer)
	var batches atomic.Int64
	l := audittest.NewLog(t, store, audit.Config{MaxInFlight: 2, CheckpointEvery: 200, CheckpointInterval: time.Hour,
		Observe: func(audit.BatchStats) { batches.Add(1) }})
	acked := audittest.AppendConcurrently(t, []*audit.Log{l}, 64, 25, 2)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	audittest.CheckAcknowledged(t, store, acked, audit.VerifyOptions{MaxUnsigned: 200})
	t.Logf("%d batches, %d one-statement appends, at most %d in flight at once", batches.Load(), tracer.total.Load(), tracer.peak.Load())
	if 2*tracer.total.Load() < batches.Load() {
		t.Errorf("%d of %d batches in one statement: pipelined batches should mostly build on the heads their predecessors claimed", tracer.total.Load(), batches.Load())
	}
	if tracer.peak.Load() < 2 {
		t.Errorf("one-statement appends never overlapped (peak %d in flight): batches were not pipelined", tracer.peak.Load())
	}
}
