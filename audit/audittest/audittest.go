// Package audittest is the contract test suite every [audit.Store] must pass, with the
// tamper cases of docs/spec/audit-v1.md, and the crash test helper the stores use to
// show that SIGKILL loses no acknowledged event.
//
// A store's test calls [Run] with a function that returns a fresh, empty store plus a
// way to run raw SQL on its database (to tamper with it) and to break it (to see
// ErrUnavailable).
package audittest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
)

// Harness is one fresh store under test.
type Harness struct {
	Store audit.Store
	// Exec runs one SQL statement (literals only, no parameters) on the store's
	// database, bypassing the store, to tamper with it.
	Exec func(ctx context.Context, query string) error
	// Break makes the database unusable (closes its pool), so that every later call
	// fails.
	Break func()
}

// Seed is the fixed ML-DSA-65 seed of the test signer: bytes 0x00..0x1f.
func Seed() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

// Signer returns the deterministic test signer and its public keys by key id.
func Signer(t testing.TB) (*audit.SeedSigner, map[string][]byte) {
	t.Helper()
	s, err := audit.NewSeedSigner(secret.FromBytes(Seed()))
	if err != nil {
		t.Fatal(err)
	}
	return s, map[string][]byte{s.KeyID(): s.PublicKey()}
}

// Clock is a fake clock that advances by Step on every call.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	Step time.Duration
}

// NewClock starts a clock at 2026-01-02T03:04:05Z.
func NewClock(step time.Duration) *Clock {
	return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Step: step}
}

// Now returns the current fake time and advances it.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.Step)
	return c.now
}

// NewLog starts a Log over store with the test signer and closes it at cleanup.
func NewLog(t testing.TB, store audit.Store, cfg audit.Config) *audit.Log {
	t.Helper()
	s, _ := Signer(t)
	l, err := audit.NewLog(cfg, store, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// Sample returns a plausible event for tenant; n varies its content.
func Sample(tenant string, n int) audit.Event {
	return audit.Event{
		TenantID:       tenant,
		IntegrationID:  fmt.Sprintf("int_%d", n%2),
		Operation:      "list_users",
		Caller:         "key_test",
		Method:         "GET",
		Path:           "/api/v1/users",
		QuerySHA256:    strings.Repeat("a", 64),
		PolicySHA256:   strings.Repeat("b", 64),
		Decision:       "allow",
		Reason:         "",
		Status:         200,
		ResponseSHA256: strings.Repeat("c", 64),
		ResponseBytes:  int64(100 + n),
		Envelope:       n%3 == 0,
	}
}

// Load reads every chain of store as an export would.
func Load(t testing.TB, store audit.Store) ([]audit.Event, []audit.SignedCheckpoint) {
	t.Helper()
	var buf strings.Builder
	if _, _, err := audit.Export(context.Background(), store, audit.NewExportWriter(&buf), audit.ExportOptions{}); err != nil {
		t.Fatalf("export: %v", err)
	}
	evs, cps, err := audit.ReadExport(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("read export: %v", err)
	}
	return evs, cps
}

// VerifyStore exports store and verifies it, failing t on any break.
func VerifyStore(t testing.TB, store audit.Store, opts audit.VerifyOptions) ([]audit.Event, []audit.SignedCheckpoint) {
	t.Helper()
	_, keys := Signer(t)
	evs, cps := Load(t, store)
	if err := audit.Verify(evs, cps, keys, opts); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return evs, cps
}

// Run runs the contract suite; newHarness must return an empty store each call.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("AppendReadVerify", func(t *testing.T) { testAppendRead(t, newHarness(t)) })
	t.Run("ListEvents", func(t *testing.T) { testList(t, newHarness(t)) })
	t.Run("EventProof", func(t *testing.T) { testProof(t, newHarness(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newHarness(t)) })
	t.Run("SaveCheckpoint", func(t *testing.T) { testSaveCheckpoint(t, newHarness(t)) })
	t.Run("Unavailable", func(t *testing.T) { testUnavailable(t, newHarness(t)) })
	t.Run("RefusesMisLinkedBatch", func(t *testing.T) { testMisLinked(t, newHarness(t)) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, newHarness) })
}

func testAppendRead(t *testing.T, h Harness) {
	ctx := t.Context()
	clock := NewClock(time.Millisecond)
	l := NewLog(t, h.Store, audit.Config{CheckpointEvery: 5, CheckpointInterval: time.Hour, Now: clock.Now})
	var got []audit.Event
	for i := range 12 {
		ev, err := l.Append(ctx, Sample("ten_a", i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		got = append(got, ev)
	}
	if _, err := l.Append(ctx, Sample("", 0)); err != nil {
		t.Fatalf("Append without tenant: %v", err)
	}
	prev := audit.ZeroHash
	for i, ev := range got {
		if !id.Valid("aud", ev.ID) || ev.ChainID != "ten_a/w1" || ev.Seq != int64(i+1) || ev.PrevHash != prev || ev.Hash != ev.ComputeHash() {
			t.Fatalf("event %d not completed: %+v", i, ev)
		}
		if _, err := time.Parse(audit.TimeLayout, ev.Time); err != nil {
			t.Errorf("event %d time %q: %v", i, ev.Time, err)
		}
		prev = ev.Hash
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, Sample("ten_a", 0)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	evs, cps := VerifyStore(t, h.Store, audit.VerifyOptions{MaxUnsigned: 5})
	if diff := cmp.Diff(got, evs[len(evs)-12:]); diff != "" {
		t.Errorf("stored events differ from acknowledged ones (-ack +stored):\n%s", diff)
	}
	if len(cps) == 0 {
		t.Fatal("no checkpoints")
	}
	head, err := h.Store.Head(ctx, "ten_a/w1")
	if err != nil {
		t.Fatal(err)
	}
	if head.Seq != 12 || head.Hash != got[11].Hash || head.CheckpointSeq != 12 || head.TenantID != "ten_a" {
		t.Errorf("head = %+v, want seq 12 signed", head)
	}
	if _, err := h.Store.Head(ctx, "ten_nobody/w1"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Head(unknown) = %v, want ErrNotFound", err)
	}
	latest, err := h.Store.LatestCheckpoints(ctx, "ten_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 {
		t.Fatalf("LatestCheckpoints = %d, want 1", len(latest))
	}
	c, err := audit.ParseCheckpointNote(latest[0].Note)
	if err != nil || c.Seq != 12 || c.Hash != got[11].Hash {
		t.Errorf("latest checkpoint = %+v, %v; want seq 12", c, err)
	}

	// A new Log continues the chain where the store says it ends.
	l2 := NewLog(t, h.Store, audit.Config{CheckpointEvery: 5, CheckpointInterval: time.Hour, Now: clock.Now})
	ev, err := l2.Append(ctx, Sample("ten_a", 99))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 13 || ev.PrevHash != got[11].Hash {
		t.Errorf("continued event seq %d prev %s, want 13 after %s", ev.Seq, ev.PrevHash, got[11].Hash)
	}
	if err := l2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	VerifyStore(t, h.Store, audit.VerifyOptions{MaxUnsigned: 5})
}

func testList(t *testing.T, h Harness) {
	ctx := t.Context()
	clock := NewClock(time.Second)
	l := NewLog(t, h.Store, audit.Config{Now: clock.Now})
	var a []audit.Event
	for i := range 12 {
		ev, err := l.Append(ctx, Sample("ten_a", i))
		if err != nil {
			t.Fatal(err)
		}
		a = append(a, ev)
		if _, err := l.Append(ctx, Sample("ten_b", i)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(evs []audit.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	filter := func(keep func(audit.Event) bool) []string {
		var out []string
		for _, e := range a {
			if keep(e) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	since, _ := a[6].Timestamp()
	tests := []struct {
		name string
		q    audit.Query
		want []string
	}{
		{"all", audit.Query{}, ids(a)},
		{"integration", audit.Query{IntegrationID: "int_1"}, filter(func(e audit.Event) bool { return e.IntegrationID == "int_1" })},
		{"since", audit.Query{Since: since}, ids(a[6:])},
		{"paged", audit.Query{Limit: 5}, ids(a)},
		{"paged integration", audit.Query{Limit: 2, IntegrationID: "int_0"}, filter(func(e audit.Event) bool { return e.IntegrationID == "int_0" })},
		{"after", audit.Query{After: a[9].ID}, ids(a[10:])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			q := tc.q
			for pages := 0; ; pages++ {
				evs, next, err := h.Store.ListEvents(ctx, "ten_a", q)
				if err != nil {
					t.Fatal(err)
				}
				if q.Limit > 0 && len(evs) > q.Limit {
					t.Fatalf("page of %d > limit %d", len(evs), q.Limit)
				}
				got = append(got, ids(evs)...)
				if next == "" {
					break
				}
				if pages > 20 {
					t.Fatal("pagination does not end")
				}
				q.After = next
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	for _, q := range []audit.Query{{After: "aud_bogus"}, {Limit: -1}, {Limit: audit.MaxListLimit + 1}} {
		if _, _, err := h.Store.ListEvents(ctx, "ten_a", q); !errors.Is(err, audit.ErrBadQuery) {
			t.Errorf("ListEvents(%+v) = %v, want ErrBadQuery", q, err)
		}
	}
	evs, _, err := h.Store.ListEvents(ctx, "ten_other", audit.Query{})
	if err != nil || len(evs) != 0 {
		t.Errorf("other tenant sees %d events, %v", len(evs), err)
	}
}

func testProof(t *testing.T, h Harness) {
	ctx := t.Context()
	clock := NewClock(time.Millisecond)
	l := NewLog(t, h.Store, audit.Config{CheckpointEvery: 4, CheckpointInterval: time.Hour, Now: clock.Now})
	var evs []audit.Event
	for i := range 10 {
		ev, err := l.Append(ctx, Sample("ten_p", i))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	_, keys := Signer(t)
	// Checkpoints: seq 1 (new chain), 5 and 9 (every 4). Seq 10 is not signed yet.
	tests := []struct {
		seq       int64
		following int
		signed    bool
	}{{1, 0, true}, {2, 3, true}, {6, 3, true}, {9, 0, true}, {10, 0, false}}
	for _, tc := range tests {
		p, err := h.Store.EventProof(ctx, "ten_p", evs[tc.seq-1].ID)
		if err != nil {
			t.Fatalf("EventProof(seq %d): %v", tc.seq, err)
		}
		if p.Event.ID != evs[tc.seq-1].ID || len(p.Following) != tc.following || (p.Checkpoint != nil) != tc.signed {
			t.Errorf("proof of seq %d: following %d, signed %v; want %d, %v", tc.seq, len(p.Following), p.Checkpoint != nil, tc.following, tc.signed)
		}
		err = audit.VerifyProof(p, keys)
		if tc.signed && err != nil {
			t.Errorf("VerifyProof(seq %d) = %v", tc.seq, err)
		}
		if !tc.signed && err == nil {
			t.Errorf("VerifyProof(seq %d) of an unsigned event passed", tc.seq)
		}
		if tc.signed && len(p.Following) > 0 {
			p.Following[0].Status = 500
			if err := audit.VerifyProof(p, keys); err == nil {
				t.Errorf("VerifyProof accepted a tampered following event")
			}
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := h.Store.EventProof(ctx, "ten_p", evs[9].ID)
	if err != nil || audit.VerifyProof(p, keys) != nil {
		t.Errorf("after Flush seq 10 is not provable: %v", err)
	}
	for _, tc := range []struct{ tenant, id string }{{"ten_other", evs[0].ID}, {"ten_p", id.New("aud")}, {"ten_p", "nonsense"}} {
		if _, err := h.Store.EventProof(ctx, tc.tenant, tc.id); !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("EventProof(%s, %s) = %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
	}
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := t.Context()
	var maxBatch atomic.Int64
	cfg := audit.Config{CheckpointEvery: 50, Observe: func(s audit.BatchStats) {
		for {
			m := maxBatch.Load()
			if int64(s.Events) <= m || maxBatch.CompareAndSwap(m, int64(s.Events)) {
				return
			}
		}
	}}
	// Two Logs with the same writer id share every chain: they are serialised on the
	// chain head. A third uses its own shard. One of the sharing Logs and the third
	// keep several batches in flight (Config.MaxInFlight), which every store must
	// allow: each batch still commits on the head its predecessor left.
	pipelined := cfg
	pipelined.MaxInFlight = 3
	logs := []*audit.Log{NewLog(t, h.Store, cfg), NewLog(t, h.Store, pipelined)}
	pipelined.WriterID = "w2"
	logs = append(logs, NewLog(t, h.Store, pipelined))
	acked := AppendConcurrently(t, logs, 48, 15, 2)
	for _, l := range logs {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	CheckAcknowledged(t, h.Store, acked, audit.VerifyOptions{MaxUnsigned: 50})
	if maxBatch.Load() < 2 {
		t.Errorf("largest batch %d: concurrent appends were not group-committed", maxBatch.Load())
	}
	chains, err := h.Store.Chains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chains {
		names = append(names, c.ID)
	}
	if want := []string{"ten_0/w1", "ten_0/w2", "ten_1/w1", "ten_1/w2"}; !slices.Equal(names, want) {
		t.Errorf("chains %v, want %v", names, want)
	}
}

// AppendConcurrently appends goroutines × each sample events through logs (goroutine
// g uses logs[g%len(logs)] and tenant "ten_<g%tenants>") and returns the ids of the
// acknowledged ones. A failed append is a test error.
func AppendConcurrently(t testing.TB, logs []*audit.Log, goroutines, each, tenants int) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				ev, err := logs[g%len(logs)].Append(t.Context(), Sample(fmt.Sprintf("ten_%d", g%tenants), i))
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
	return acked
}

// CheckAcknowledged verifies store and checks that it holds exactly the acknowledged
// events, each once.
func CheckAcknowledged(t testing.TB, store audit.Store, acked map[string]bool, opts audit.VerifyOptions) {
	t.Helper()
	evs, _ := VerifyStore(t, store, opts)
	if len(evs) != len(acked) {
		t.Errorf("store has %d events, %d acknowledged", len(evs), len(acked))
	}
	missing := maps.Clone(acked)
	for _, e := range evs {
		delete(missing, e.ID)
	}
	if len(missing) != 0 {
		t.Errorf("%d acknowledged events missing", len(missing))
	}
}

// OneEventEach returns a BuildFunc that appends one event to every chain it is given
// and records the heads of each call in calls.
func OneEventEach(calls *[]map[string]audit.Head) audit.BuildFunc {
	return func(heads map[string]audit.Head) (audit.Batch, error) {
		*calls = append(*calls, heads)
		var b audit.Batch
		for _, id := range slices.Sorted(maps.Keys(heads)) {
			h := heads[id]
			e := Sample(h.TenantID, int(h.Seq))
			e.ID, e.ChainID, e.Seq, e.PrevHash = fmt.Sprintf("aud_%s_%d", id, h.Seq+1), id, h.Seq+1, h.Hash
			e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Format(audit.TimeLayout)
			e.Hash = e.ComputeHash()
			b.Events = append(b.Events, e)
		}
		return b, nil
	}
}

// testMisLinked: a store refuses, before writing anything, a batch whose event does not
// link to the head it extends (audit.CheckLinks) — the schema alone would accept a
// wrong prev_hash at the right seq — and the chain goes on from its real head.
func testMisLinked(t *testing.T, h Harness) {
	ctx := t.Context()
	chain := []audit.Chain{{ID: "ten_m/w1", TenantID: "ten_m"}}
	var calls []map[string]audit.Head
	if err := h.Store.AppendBatch(ctx, chain, OneEventEach(&calls)); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*audit.Event){
		"prev_hash": func(e *audit.Event) { e.PrevHash = strings.Repeat("f", 64) },
		"seq gap":   func(e *audit.Event) { e.Seq++ },
	} {
		misLinked := func(heads map[string]audit.Head) (audit.Batch, error) {
			b, err := OneEventEach(&calls)(heads)
			spoil(&b.Events[0])
			b.Events[0].Hash = b.Events[0].ComputeHash()
			return b, err
		}
		if err := h.Store.AppendBatch(ctx, chain, misLinked); err == nil || errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("%s: err = %v, want a refusal that is not ErrUnavailable", name, err)
		}
		if head, err := h.Store.Head(ctx, chain[0].ID); err != nil || head.Seq != 1 {
			t.Fatalf("%s: head = %+v, %v; want seq 1 (nothing written)", name, head, err)
		}
	}
	if err := h.Store.AppendBatch(ctx, chain, OneEventEach(&calls)); err != nil {
		t.Fatal(err)
	}
	VerifyStore(t, h.Store, audit.VerifyOptions{MaxUnsigned: 10})
}

func testSaveCheckpoint(t *testing.T, h Harness) {
	ctx := t.Context()
	l := NewLog(t, h.Store, audit.Config{CheckpointInterval: time.Hour})
	ev, err := l.Append(ctx, Sample("ten_c", 1))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Signer(t)
	good, err := audit.SignCheckpoint(s, audit.Checkpoint{ChainID: ev.ChainID, Seq: 1, Hash: ev.Hash, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.SaveCheckpoint(ctx, good); err != nil {
		t.Errorf("SaveCheckpoint (again) = %v, want nil", err)
	}
	for name, c := range map[string]audit.Checkpoint{
		"wrong hash":    {ChainID: ev.ChainID, Seq: 1, Hash: strings.Repeat("0", 64), Time: time.Now()},
		"future seq":    {ChainID: ev.ChainID, Seq: 2, Hash: ev.Hash, Time: time.Now()},
		"unknown chain": {ChainID: "ten_x/w1", Seq: 1, Hash: ev.Hash, Time: time.Now()},
	} {
		cp, err := audit.SignCheckpoint(s, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Store.SaveCheckpoint(ctx, cp); err == nil {
			t.Errorf("%s: SaveCheckpoint accepted a checkpoint over no stored event", name)
		}
	}
	if err := h.Store.SaveCheckpoint(ctx, audit.SignedCheckpoint{Note: "garbage"}); err == nil {
		t.Error("SaveCheckpoint accepted a malformed note")
	}
}

func testUnavailable(t *testing.T, h Harness) {
	ctx := t.Context()
	l := NewLog(t, h.Store, audit.Config{AppendTimeout: 5 * time.Second})
	if _, err := l.Append(ctx, Sample("ten_u", 1)); err != nil {
		t.Fatal(err)
	}
	h.Break()
	if _, err := l.Append(ctx, Sample("ten_u", 2)); !errors.Is(err, audit.ErrUnavailable) {
		t.Errorf("Append on a broken store = %v, want ErrUnavailable", err)
	}
	for name, err := range map[string]error{
		"Head":              second(h.Store.Head(ctx, "ten_u/w1")),
		"Chains":            second(h.Store.Chains(ctx)),
		"LatestCheckpoints": second(h.Store.LatestCheckpoints(ctx, "ten_u")),
		"ListEvents":        third(h.Store.ListEvents(ctx, "ten_u", audit.Query{})),
	} {
		if !errors.Is(err, audit.ErrUnavailable) {
			t.Errorf("%s on a broken store = %v, want ErrUnavailable", name, err)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }
