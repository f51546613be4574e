// Package pgstore is the PostgreSQL implementation of [audit.Store] over pgx/v5.
//
// Every audited request waits for its event's commit, so the append path is built to
// cost few round trips and little server CPU per event.
//
// Each chain has a head row in audit_chains, and the head is what serialises writers:
// any number of gateway processes can append to one chain without forking it. The usual
// case is one process appending to its own chains (sharded by writer id), so a store
// remembers, for each chain, the head its last batch committed or will commit (a
// claim: with audit.Config.MaxInFlight > 1 the next batch is built on it before the
// previous one has committed). When it has a remembered head for every chain of a
// batch, it builds the batch on those and sends it as one autocommitted statement that
// locks the head rows — waiting for a previous batch still committing — and only if
// every head is then as remembered advances them and inserts the events: one round
// trip and one commit per batch. A head that another writer moved, or a previous batch
// that failed, makes the statement change nothing; the store then takes the locking
// path: in a transaction, SELECT … FOR UPDATE on the heads in chain-id order (so
// writers cannot deadlock), build on what it read, insert, advance, commit. A chain found moved that way stays on the locking path
// until a batch finds its head where this store left it, so writers that share a chain
// do not pay a failed attempt per batch. Batches that sign checkpoints and chains new
// to the store also take the locking path. Nothing remembered is trusted: it only picks
// the path, and any failure forgets it.
//
// Either path checks that a batch extends the heads it advances (seq and prev_hash);
// UNIQUE (chain_id, seq) backs this up in the schema. Events go in with one
// INSERT … SELECT FROM unnest(…), the bodies as one parameter (see insertEvents). The
// migrations are embedded and applied by [New] through internal/pgmigrate; 0002 says
// why the schema has the indexes it has.
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded schema migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations") // the directory is embedded, Sub cannot fail
	return sub
}

// Store is an audit store in PostgreSQL. The pool is owned by the caller.
type Store struct {
	pool *pgxpool.Pool

	mu     sync.Mutex
	chains map[string]chainState // the chains this store appended to, by id: the heads its last claims leave
}

var _ audit.Store = (*Store)(nil)

// New applies the audit migrations to the database of pool and returns the store.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if err := pgmigrate.Apply(ctx, pool, "audit", Migrations()); err != nil {
		return nil, fmt.Errorf("audit pgstore: %w: %w", audit.ErrUnavailable, err)
	}
	return &Store{pool: pool, chains: map[string]chainState{}}, nil
}

func unavailable(op string, err error) error { return audit.StoreError("audit pgstore", op, err) }

// insertCheckpoint stores cp and advances its chain's checkpoint head, checking that cp
// signs a stored event. The head row is updated (locked) first, the same order as
// AppendBatch, so the two cannot deadlock.
func insertCheckpoint(ctx context.Context, tx pgx.Tx, cp audit.SignedCheckpoint) error {
	c, err := audit.ParseCheckpointNote(cp.Note)
	if err != nil {
		return err
	}
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit_chains SET checkpoint_seq = $2, checkpoint_time = $3
		WHERE chain_id = $1 AND checkpoint_seq < $2`, c.ChainID, c.Seq, c.Time); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (chain_id, seq, tenant_id, time, body)
		SELECT e.chain_id, e.seq, e.tenant_id, $3, $5 FROM audit_events e
		WHERE e.chain_id = $1 AND e.seq = $2 AND e.hash = $4
		ON CONFLICT (chain_id, seq) DO NOTHING`, c.ChainID, c.Seq, c.Time, c.Hash, string(body))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE chain_id = $1 AND seq = $2 AND hash = $3`, c.ChainID, c.Seq, c.Hash).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("checkpoint %s@%d does not sign a stored event", c.ChainID, c.Seq)
		}
	}
	return nil
}

// SaveCheckpoint implements [audit.Store].
func (s *Store) SaveCheckpoint(ctx context.Context, cp audit.SignedCheckpoint) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return insertCheckpoint(ctx, tx, cp) })
	if c, perr := audit.ParseCheckpointNote(cp.Note); perr == nil {
		s.checkpointed(c, err == nil)
	}
	if err != nil {
		return unavailable("save checkpoint", err)
	}
	return nil
}

// checkpointed keeps the remembered head of c's chain in step with a checkpoint saved
// outside a batch (the one-statement append requires its checkpoint seq to match), or
// forgets it when the save failed.
func (s *Store) checkpointed(c audit.Checkpoint, saved bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.chains[c.ChainID]
	switch {
	case !ok:
	case !saved:
		delete(s.chains, c.ChainID)
	case c.Seq > st.head.CheckpointSeq && c.Seq <= st.head.Seq:
		st.head.CheckpointSeq, st.head.CheckpointTime = c.Seq, storedTime(c.Time)
		s.chains[c.ChainID] = st
	}
}

func scanHeads(rows pgx.Rows) ([]audit.Head, error) {
	defer rows.Close()
	var out []audit.Head
	for rows.Next() {
		var h audit.Head
		var cpTime *time.Time
		if err := rows.Scan(&h.ID, &h.TenantID, &h.Seq, &h.Hash, &h.CheckpointSeq, &cpTime); err != nil {
			return nil, err
		}
		if cpTime != nil {
			h.CheckpointTime = cpTime.UTC()
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

const headCols = `chain_id, tenant_id, head_seq, head_hash, checkpoint_seq, checkpoint_time`

// Head implements [audit.Store].
func (s *Store) Head(ctx context.Context, chainID string) (audit.Head, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+headCols+` FROM audit_chains WHERE chain_id = $1`, chainID)
	if err != nil {
		return audit.Head{}, unavailable("head", err)
	}
	hs, err := scanHeads(rows)
	if err != nil {
		return audit.Head{}, unavailable("head", err)
	}
	if len(hs) == 0 {
		return audit.Head{}, fmt.Errorf("audit pgstore: chain %q: %w", chainID, audit.ErrNotFound)
	}
	return hs[0], nil
}

// Chains implements [audit.Store].
func (s *Store) Chains(ctx context.Context) ([]audit.Head, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+headCols+` FROM audit_chains ORDER BY chain_id`)
	if err != nil {
		return nil, unavailable("chains", err)
	}
	hs, err := scanHeads(rows)
	if err != nil {
		return nil, unavailable("chains", err)
	}
	return hs, nil
}

func scanEvents(rows pgx.Rows) ([]audit.Event, error) {
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var e audit.Event
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, fmt.Errorf("stored event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func scanCheckpoints(rows pgx.Rows) ([]audit.SignedCheckpoint, error) {
	defer rows.Close()
	var out []audit.SignedCheckpoint
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var c audit.SignedCheckpoint
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			return nil, fmt.Errorf("stored checkpoint: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChainEvents implements [audit.Store].
func (s *Store) ChainEvents(ctx context.Context, chainID string, afterSeq int64, limit int) ([]audit.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT body FROM audit_events WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		chainID, afterSeq, limit)
	if err != nil {
		return nil, unavailable("chain events", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, unavailable("chain events", err)
	}
	return evs, nil
}

// FirstSeqSince implements [audit.Store].
func (s *Store) FirstSeqSince(ctx context.Context, chainID string, t time.Time) (int64, error) {
	var seq *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(seq) FROM audit_events WHERE chain_id = $1 AND time >= $2`, chainID, t).Scan(&seq); err != nil {
		return 0, unavailable("first seq", err)
	}
	if seq == nil {
		return 0, nil
	}
	return *seq, nil
}

// Checkpoints implements [audit.Store].
func (s *Store) Checkpoints(ctx context.Context, chainID string, fromSeq int64) ([]audit.SignedCheckpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT body FROM audit_checkpoints WHERE chain_id = $1 AND seq >= $2 ORDER BY seq`, chainID, fromSeq)
	if err != nil {
		return nil, unavailable("checkpoints", err)
	}
	cps, err := scanCheckpoints(rows)
	if err != nil {
		return nil, unavailable("checkpoints", err)
	}
	return cps, nil
}

const (
	listAllSQL = `SELECT body FROM audit_events
		WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR time >= $2) AND id > $3
		ORDER BY id LIMIT $4`
	listIntegrationSQL = `SELECT body FROM audit_events
		WHERE tenant_id = $1 AND integration_id = $5 AND ($2::timestamptz IS NULL OR time >= $2) AND id > $3
		ORDER BY id LIMIT $4`
)

// ListEvents implements [audit.Store].
func (s *Store) ListEvents(ctx context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error) {
	limit, err := q.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("audit pgstore: list: %w", err)
	}
	var since *time.Time
	if !q.Since.IsZero() {
		since = &q.Since
	}
	// Two statements rather than one with "($2 = '' OR integration_id = $2)": pgx
	// prepares each statement, and a generic plan of the OR cannot use the
	// (tenant_id, integration_id, id) index, so listing a rare integration could walk
	// every event of the tenant.
	sql, args := listAllSQL, []any{tenantID, since, q.After, limit + 1}
	if q.IntegrationID != "" {
		sql, args = listIntegrationSQL, append(args, q.IntegrationID)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", unavailable("list", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, "", unavailable("list", err)
	}
	next := ""
	if len(evs) > limit {
		evs = evs[:limit]
		next = evs[limit-1].ID
	}
	return evs, next, nil
}

// EventProof implements [audit.Store].
func (s *Store) EventProof(ctx context.Context, tenantID, eventID string) (audit.Proof, error) {
	if !id.Valid("aud", eventID) {
		return audit.Proof{}, fmt.Errorf("audit pgstore: event %q: %w", eventID, audit.ErrNotFound)
	}
	var p audit.Proof
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT body FROM audit_events WHERE tenant_id = $1 AND id = $2`, tenantID, eventID)
		if err != nil {
			return err
		}
		evs, err := scanEvents(rows)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return fmt.Errorf("event %q: %w", eventID, audit.ErrNotFound)
		}
		p.Event = evs[0]
		var cpSeq int64
		var body string
		err = tx.QueryRow(ctx, `SELECT seq, body FROM audit_checkpoints WHERE chain_id = $1 AND seq >= $2 ORDER BY seq LIMIT 1`,
			p.Event.ChainID, p.Event.Seq).Scan(&cpSeq, &body)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			cpSeq = p.Event.Seq + audit.MaxProofEvents
		case err != nil:
			return err
		default:
			var cp audit.SignedCheckpoint
			if err := json.Unmarshal([]byte(body), &cp); err != nil {
				return fmt.Errorf("stored checkpoint: %w", err)
			}
			p.Checkpoint = &cp
		}
		rows, err = tx.Query(ctx, `SELECT body FROM audit_events WHERE chain_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
			p.Event.ChainID, p.Event.Seq, cpSeq)
		if err != nil {
			return err
		}
		p.Following, err = scanEvents(rows)
		return err
	})
	if err != nil {
		return audit.Proof{}, unavailable("proof", err)
	}
	return p, nil
}

// LatestCheckpoints implements [audit.Store].
func (s *Store) LatestCheckpoints(ctx context.Context, tenantID string) ([]audit.SignedCheckpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (chain_id) body FROM audit_checkpoints
		WHERE tenant_id = $1 ORDER BY chain_id, seq DESC`, tenantID)
	if err != nil {
		return nil, unavailable("latest checkpoints", err)
	}
	cps, err := scanCheckpoints(rows)
	if err != nil {
		return nil, unavailable("latest checkpoints", err)
	}
	return cps, nil
}
