package audittest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
)

const tamperChain = "ten_t/w1"

// quote returns s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// rewrite replaces the stored event at seq with e (body and hash column).
func rewrite(ctx context.Context, h Harness, seq int64, e audit.Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return h.Exec(ctx, fmt.Sprintf(`UPDATE audit_events SET body = %s, hash = %s WHERE chain_id = %s AND seq = %d`,
		quote(string(body)), quote(e.Hash), quote(tamperChain), seq))
}

func stored(ctx context.Context, h Harness, seq int64) (audit.Event, error) {
	evs, err := h.Store.ChainEvents(ctx, tamperChain, seq-1, 1)
	if err != nil {
		return audit.Event{}, err
	}
	if len(evs) != 1 {
		return audit.Event{}, fmt.Errorf("no event at seq %d", seq)
	}
	return evs[0], nil
}

func execAll(h Harness, stmts ...string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for _, s := range stmts {
			if err := h.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
}

// testTamper builds the chain ten_t/w1 of 10 events with checkpoints at seq 1, 5, 9
// (every 4) and 10 (Close), tampers with the database and checks that Verify reports
// the first break at the expected seq and member.
func testTamper(t *testing.T, newHarness func(t *testing.T) Harness) {
	const where = `WHERE chain_id = 'ten_t/w1'`
	tests := []struct {
		name   string
		tamper func(h Harness) func(ctx context.Context) error
		seq    int64
		member string
	}{
		{"untouched", func(h Harness) func(context.Context) error { return execAll(h) }, 0, ""},
		{"edit member", func(h Harness) func(context.Context) error {
			return execAll(h, `UPDATE audit_events SET body = replace(body, '"status":200', '"status":201') `+where+` AND seq = 3`)
		}, 3, "hash"},
		{"edit member and its hash", func(h Harness) func(context.Context) error {
			return func(ctx context.Context) error {
				e, err := stored(ctx, h, 3)
				if err != nil {
					return err
				}
				e.Status = 201
				e.Hash = e.ComputeHash()
				return rewrite(ctx, h, 3, e)
			}
		}, 4, "prev_hash"},
		{"edit last event and its hash", func(h Harness) func(context.Context) error {
			return func(ctx context.Context) error {
				e, err := stored(ctx, h, 10)
				if err != nil {
					return err
				}
				e.Decision = "deny"
				e.Hash = e.ComputeHash()
				return rewrite(ctx, h, 10, e)
			}
		}, 10, "checkpoint"},
		{"delete middle event", func(h Harness) func(context.Context) error {
			return execAll(h, `DELETE FROM audit_events `+where+` AND seq = 5`)
		}, 5, "seq"},
		{"delete first event", func(h Harness) func(context.Context) error {
			return execAll(h, `DELETE FROM audit_events `+where+` AND seq = 1`)
		}, 1, "seq"},
		{"reorder", func(h Harness) func(context.Context) error {
			return execAll(h,
				`UPDATE audit_events SET seq = 1000 `+where+` AND seq = 3`,
				`UPDATE audit_events SET seq = 3 `+where+` AND seq = 4`,
				`UPDATE audit_events SET seq = 4 `+where+` AND seq = 1000`)
		}, 3, "seq"},
		{"insert", func(h Harness) func(context.Context) error {
			return func(ctx context.Context) error {
				e2, err := stored(ctx, h, 2)
				if err != nil {
					return err
				}
				forged := Sample("ten_t", 42)
				forged.ID, forged.ChainID, forged.Seq, forged.Time, forged.PrevHash = id.New("aud"), tamperChain, 3, e2.Time, e2.Hash
				forged.Hash = forged.ComputeHash()
				body, _ := json.Marshal(forged)
				return execAll(h,
					`UPDATE audit_events SET seq = seq + 1000 `+where+` AND seq >= 3`,
					`UPDATE audit_events SET seq = seq - 999 `+where+` AND seq > 1000`,
					fmt.Sprintf(`INSERT INTO audit_events (id, chain_id, seq, tenant_id, integration_id, time, prev_hash, hash, body)
						VALUES (%s, %s, 3, 'ten_t', '', %s, 'forged', %s, %s)`,
						quote(forged.ID), quote(tamperChain), quote(forged.Time), quote(forged.Hash), quote(string(body))))(ctx)
			}
		}, 4, "seq"},
		{"truncate below a checkpoint", func(h Harness) func(context.Context) error {
			return execAll(h, `DELETE FROM audit_events `+where+` AND seq > 7`)
		}, 8, "seq"},
		{"truncate with its checkpoints", func(h Harness) func(context.Context) error {
			return execAll(h,
				`DELETE FROM audit_events `+where+` AND seq > 9`,
				`DELETE FROM audit_checkpoints `+where+` AND seq >= 9`)
		}, 9, "checkpoint"},
		{"forge checkpoint note", func(h Harness) func(context.Context) error {
			return execAll(h, `UPDATE audit_checkpoints SET body = replace(body, '\n5\n', '\n6\n') `+where+` AND seq = 5`)
		}, 6, "signature"},
		{"unknown signing key", func(h Harness) func(context.Context) error {
			return execAll(h, `UPDATE audit_checkpoints SET body = replace(body, '"key_id":"', '"key_id":"ff') `+where+` AND seq = 5`)
		}, 5, "key_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ctx := t.Context()
			clock := NewClock(time.Millisecond)
			l := NewLog(t, h.Store, audit.Config{CheckpointEvery: 4, CheckpointInterval: time.Hour, Now: clock.Now})
			for i := range 10 {
				if _, err := l.Append(ctx, Sample("ten_t", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tc.tamper(h)(ctx); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			_, keys := Signer(t)
			evs, cps := Load(t, h.Store)
			err := audit.Verify(evs, cps, keys, audit.VerifyOptions{MaxUnsigned: 4, MaxCheckpointLag: time.Hour})
			if tc.member == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if ve.ChainID != tamperChain || ve.Seq != tc.seq || ve.Member != tc.member {
				t.Errorf("Verify = %v; want seq %d member %s", ve, tc.seq, tc.member)
			}
		})
	}
}
