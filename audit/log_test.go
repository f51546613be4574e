package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
)

// memStore is an in-memory audit.Store with failure injection, for the Log's own
// tests; the real stores are tested by audit/audittest.
type memStore struct {
	mu      sync.Mutex
	heads   map[string]audit.Head
	events  []audit.Event
	cps     []audit.SignedCheckpoint
	fail    int           // fail this many AppendBatch calls
	block   chan struct{} // if set, AppendBatch waits on it
	batches []int
}

func newMemStore() *memStore { return &memStore{heads: map[string]audit.Head{}} }

var errDown = errors.New("database down")

func (m *memStore) AppendBatch(ctx context.Context, chains []audit.Chain, build audit.BuildFunc) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail > 0 {
		m.fail--
		return errDown
	}
	locked := map[string]audit.Head{}
	for _, c := range chains {
		h, ok := m.heads[c.ID]
		if !ok {
			h = audit.Head{Chain: c, Hash: audit.ZeroHash}
		}
		locked[c.ID] = h
	}
	b, err := build(locked)
	if err != nil {
		return err
	}
	// The Log hands every store the events' bodies, made with their hashes; they
	// must be exactly what Canonicalize makes of the completed events.
	if len(b.Bodies) != len(b.Events) {
		return fmt.Errorf("batch of %d events carries %d bodies", len(b.Events), len(b.Bodies))
	}
	for i := range b.Events {
		want, err := audit.Canonicalize(&b.Events[i])
		if err != nil || !bytes.Equal(b.Bodies[i], want) {
			return fmt.Errorf("event %d: body %s, want %s (%v)", i, b.Bodies[i], want, err)
		}
	}
	for _, e := range b.Events {
		h := locked[e.ChainID]
		h.Seq, h.Hash = e.Seq, e.Hash
		locked[e.ChainID] = h
	}
	for _, cp := range b.Checkpoints {
		c, _ := audit.ParseCheckpointNote(cp.Note)
		h := locked[c.ChainID]
		h.CheckpointSeq, h.CheckpointTime = max(h.CheckpointSeq, c.Seq), c.Time
		locked[c.ChainID] = h
	}
	for k, h := range locked {
		m.heads[k] = h
	}
	m.events = append(m.events, b.Events...)
	m.cps = append(m.cps, b.Checkpoints...)
	m.batches = append(m.batches, len(b.Events))
	return nil
}

func (m *memStore) Head(_ context.Context, chainID string) (audit.Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.heads[chainID]
	if !ok {
		return audit.Head{}, audit.ErrNotFound
	}
	return h, nil
}

func (m *memStore) SaveCheckpoint(_ context.Context, cp audit.SignedCheckpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := audit.ParseCheckpointNote(cp.Note)
	if err != nil {
		return err
	}
	h := m.heads[c.ChainID]
	h.CheckpointSeq, h.CheckpointTime = max(h.CheckpointSeq, c.Seq), c.Time
	m.heads[c.ChainID] = h
	m.cps = append(m.cps, cp)
	return nil
}

func (m *memStore) snapshot() ([]audit.Event, []audit.SignedCheckpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Event(nil), m.events...), append([]audit.SignedCheckpoint(nil), m.cps...)
}

func (m *memStore) ListEvents(context.Context, string, audit.Query) ([]audit.Event, string, error) {
	return nil, "", nil
}
func (m *memStore) EventProof(context.Context, string, string) (audit.Proof, error) {
	return audit.Proof{}, audit.ErrNotFound
}
func (m *memStore) LatestCheckpoints(context.Context, string) ([]audit.SignedCheckpoint, error) {
	return nil, nil
}
func (m *memStore) Chains(context.Context) ([]audit.Head, error) { return nil, nil }
func (m *memStore) ChainEvents(context.Context, string, int64, int) ([]audit.Event, error) {
	return nil, nil
}
func (m *memStore) FirstSeqSince(context.Context, string, time.Time) (int64, error) { return 0, nil }
func (m *memStore) Checkpoints(context.Context, string, int64) ([]audit.SignedCheckpoint, error) {
	return nil, nil
}

func newTestLog(t *testing.T, store audit.Store, cfg audit.Config) (*audit.Log, map[string][]byte) {
	t.Helper()
	s := vectorSigner(t)
	l, err := audit.NewLog(cfg, store, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l, map[string][]byte{s.KeyID(): s.PublicKey()}
}

// A failed batch fails every caller in it with ErrUnavailable and does not advance the
// chain: the next append still gets seq 1.
func TestLogStoreFailure(t *testing.T) {
	m := newMemStore()
	m.fail = 1
	m.block = make(chan struct{})
	l, keys := newTestLog(t, m, audit.Config{})
	ctx := t.Context()
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := l.Append(ctx, audit.Event{TenantID: "ten_f"})
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond) // let the callers queue behind the blocked commit
	close(m.block)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, errDown) {
				t.Errorf("error %v does not wrap ErrUnavailable and the cause", err)
			}
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no caller saw the failed batch")
	}
	ev, err := l.Append(ctx, audit.Event{TenantID: "ten_f"})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(8 - failed + 1); ev.Seq != want {
		t.Errorf("seq after a failed batch = %d, want %d", ev.Seq, want)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	evs, cps := m.snapshot()
	if err := audit.Verify(evs, cps, keys, audit.VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

// The caller's cancellation does not skip the record; the timeout from config bounds
// the wait.
func TestLogContext(t *testing.T) {
	m := newMemStore()
	l, _ := newTestLog(t, m, audit.Config{AppendTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ev, err := l.Append(ctx, audit.Event{TenantID: "ten_c"})
	if err != nil || ev.Seq != 1 {
		t.Fatalf("Append with a cancelled context = %+v, %v; want it recorded", ev, err)
	}
	m.block = make(chan struct{})
	defer close(m.block)
	start := time.Now()
	if _, err := l.Append(t.Context(), audit.Event{TenantID: "ten_c"}); !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append on a hung store = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Append took %v, AppendTimeout is 200ms", d)
	}
}

func TestLogCompletesEvents(t *testing.T) {
	m := newMemStore()
	now := time.Date(2026, 5, 6, 7, 8, 9, 123, time.FixedZone("x", 3600))
	l, _ := newTestLog(t, m, audit.Config{WriterID: "gw-a", Now: func() time.Time { return now }})
	in := audit.Event{ID: "aud_caller", ChainID: "x", Seq: 99, Time: "t", PrevHash: "p", Hash: "h", Path: "/a\xffb", Status: 200}
	ev, err := l.Append(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID == in.ID || ev.ChainID != "none/gw-a" || ev.Seq != 1 || ev.PrevHash != audit.ZeroHash ||
		ev.Time != "2026-05-06T06:08:09.000000123Z" || ev.Hash != ev.ComputeHash() || ev.Path != "/a\uFFFDb" {
		t.Errorf("completed event = %+v", ev)
	}
	if got := l.ChainID("ten_a"); got != "ten_a/gw-a" {
		t.Errorf("ChainID = %q", got)
	}
	if _, err := audit.NewLog(audit.Config{WriterID: "a/b"}, m, vectorSigner(t)); err == nil {
		t.Error("a writer id with '/' was accepted")
	}
	if _, err := audit.NewLog(audit.Config{}, nil, vectorSigner(t)); err == nil {
		t.Error("NewLog without a store succeeded")
	}
}

// Checkpoints: every CheckpointEvery events inside the batch, and by the ticker once an
// event has been unsigned for half the interval.
func TestLogCheckpoints(t *testing.T) {
	m := newMemStore()
	l, keys := newTestLog(t, m, audit.Config{CheckpointEvery: 3, CheckpointInterval: 80 * time.Millisecond})
	ctx := t.Context()
	for range 7 {
		if _, err := l.Append(ctx, audit.Event{TenantID: "ten_k"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		h, _ := m.Head(ctx, "ten_k/w1")
		if h.CheckpointSeq == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("head %+v not signed by the ticker", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	evs, cps := m.snapshot()
	if err := audit.Verify(evs, cps, keys, audit.VerifyOptions{MaxUnsigned: 3}); err != nil {
		t.Error(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Error(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Error(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := l.Flush(ctx); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Flush after Close = %v", err)
	}
}

// Under load, callers share batches; MaxDelay lets batches grow further.
func TestLogGroupCommit(t *testing.T) {
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		m := newMemStore()
		m.block = make(chan struct{})
		l, keys := newTestLog(t, m, audit.Config{MaxBatch: 16, MaxDelay: delay})
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if _, err := l.Append(t.Context(), audit.Event{TenantID: "ten_g"}); err != nil {
					t.Error(err)
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		close(m.block)
		wg.Wait()
		_ = l.Close(t.Context())
		evs, cps := m.snapshot()
		if err := audit.Verify(evs, cps, keys, audit.VerifyOptions{}); err != nil {
			t.Error(err)
		}
		if len(m.batches) >= 64 || slicesMax(m.batches) > 16 {
			t.Errorf("delay %v: batches %v: want fewer than 64, none above MaxBatch", delay, m.batches)
		}
	}
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// One idle caller is committed at once: no batching delay is added.
func BenchmarkAppendIdle(b *testing.B) {
	m := newMemStore()
	s := vectorSigner(b)
	l, err := audit.NewLog(audit.Config{MaxDelay: 10 * time.Millisecond}, m, s)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	for b.Loop() {
		if _, err := l.Append(context.Background(), audit.Event{TenantID: "ten_b"}); err != nil {
			b.Fatal(err)
		}
	}
}
