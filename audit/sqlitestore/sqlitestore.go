// Package sqlitestore is the embedded (SQLite, via internal/sqlitedb) implementation of
// [audit.Store], for a gateway on one machine.
//
// SQLite admits one writer at a time and internal/sqlitedb begins every transaction
// IMMEDIATE, so [Store.AppendBatch] reads and advances a chain head without any other
// writer in between — also a second process opening the same file. The group commit in
// [audit.Log] is what makes this fast: one fsync serves a whole batch. The database file
// is the caller's (the gateway uses <data-dir>/quantaseal.db).
//
// The audit committer runs inside the gateway, so every B-tree an event touches and
// every page a commit writes to the WAL (each one a write and part of the fsync) is
// gateway CPU. audit_events therefore carries only what a query or the fork backstop
// needs (migrations/0002): the rowid table, UNIQUE (chain_id, seq) (reads by chain and
// the backstop), UNIQUE (tenant_id, id) (listing and proofs) and (chain_id, time)
// (export --since). Keys that follow the chain's order stay on a few hot pages; a key
// on a random hash would touch a new page per event.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded schema migrations.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations") // the directory is embedded, Sub cannot fail
	return sub
}

// Store is an audit store in an SQLite database. The *sql.DB is owned by the caller.
type Store struct {
	db *sql.DB
	// The append path's statements, prepared once by New. database/sql re-prepares a
	// Stmt lazily on each pooled connection it runs on and keeps it there, so a commit
	// never parses SQL (re-parsing was ~10% of the append path's CPU).
	createChain, updateHead, head *sql.Stmt
	insCheckpoint, setCheckpoint  *sql.Stmt
	// insEvents[i] inserts insertRows[i] events in one statement.
	insEvents [len(insertRows)]*sql.Stmt
}

// insertRows are the row counts of the multi-row event INSERTs, largest first. A batch
// is written greedily in chunks of these sizes (256 events: 4 statements; any remainder
// below 64: at most 9), so the per-statement costs — argument conversion, the driver's
// context-watcher goroutine, a VM reset — are paid per chunk, not per event. 64 rows of
// 9 columns stay far below SQLite's limit of 32766 bound parameters.
var insertRows = [...]int{64, 16, 4, 1}

const eventCols = 9

var _ audit.Store = (*Store)(nil)

// New applies the audit migrations to db and returns the store. Close releases the
// statements it prepares.
func New(ctx context.Context, db *sql.DB) (*Store, error) {
	if err := sqlitedb.Migrate(ctx, db, "audit", Migrations()); err != nil {
		return nil, fmt.Errorf("audit sqlitestore: %w: %w", audit.ErrUnavailable, err)
	}
	s := &Store{db: db}
	queries := []struct {
		dst   **sql.Stmt
		query string
	}{
		// Only run for a chain the head query did not find: the write lock is held, so
		// no other writer can have created it in between.
		{&s.createChain, `INSERT INTO audit_chains (chain_id, tenant_id) VALUES (?, ?)`},
		{&s.updateHead, `UPDATE audit_chains SET head_seq = ?, head_hash = ? WHERE chain_id = ?`},
		{&s.head, `SELECT ` + headCols + ` FROM audit_chains WHERE chain_id = ?`},
		{&s.insCheckpoint, `INSERT INTO audit_checkpoints (chain_id, seq, tenant_id, time, body)
			SELECT e.chain_id, e.seq, e.tenant_id, ?, ? FROM audit_events e
			WHERE e.chain_id = ? AND e.seq = ? AND e.hash = ?
			ON CONFLICT (chain_id, seq) DO NOTHING`},
		{&s.setCheckpoint, `UPDATE audit_chains SET checkpoint_seq = ?, checkpoint_time = ?
			WHERE chain_id = ? AND checkpoint_seq < ?`},
	}
	for i, n := range insertRows {
		queries = append(queries, struct {
			dst   **sql.Stmt
			query string
		}{&s.insEvents[i], insertEventsSQL(n)})
	}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q.query)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("audit sqlitestore: prepare: %w: %w", audit.ErrUnavailable, err)
		}
		*q.dst = st
	}
	return s, nil
}

// insertEventsSQL is the INSERT of rows events. OR ROLLBACK: a failed insert fails the
// whole batch anyway, and with the transaction, not the statement, as the unit of undo
// SQLite keeps no statement journal (a copy of every page a multi-row statement first
// touches; ~3% of the append path's CPU). The caller's Rollback then finds no
// transaction, which it ignores.
func insertEventsSQL(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR ROLLBACK INTO audit_events
		(id, chain_id, seq, tenant_id, integration_id, time, prev_hash, hash, body) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

// Close releases the store's prepared statements; it does not close the database.
func (s *Store) Close() error {
	var errs []error
	for _, st := range append([]*sql.Stmt{s.createChain, s.updateHead, s.head, s.insCheckpoint, s.setCheckpoint}, s.insEvents[:]...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

func unavailable(op string, err error) error { return audit.StoreError("audit sqlitestore", op, err) }

func fmtTime(t time.Time) string { return t.UTC().Format(audit.TimeLayout) }

func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// AppendBatch implements [audit.Store].
func (s *Store) AppendBatch(ctx context.Context, chains []audit.Chain, build audit.BuildFunc) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		heads, err := s.lockedHeads(ctx, tx, chains)
		if err != nil {
			return err
		}
		b, err := build(heads)
		if err != nil {
			return &audit.BuildError{Err: err}
		}
		if err := audit.CheckLinks(heads, b); err != nil {
			return &audit.BuildError{Err: err}
		}
		if err := s.appendEvents(ctx, tx, &b); err != nil {
			return err
		}
		// Advance every head to its last event in the batch, in chain-id order.
		last := make(map[string]int, len(chains))
		for i, e := range b.Events {
			last[e.ChainID] = i
		}
		update := tx.StmtContext(ctx, s.updateHead)
		for _, id := range slices.Sorted(maps.Keys(last)) {
			e := &b.Events[last[id]]
			if _, err := update.ExecContext(ctx, e.Seq, e.Hash, e.ChainID); err != nil {
				return err
			}
		}
		for _, cp := range b.Checkpoints {
			if err := s.insertCheckpoint(ctx, tx, cp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return unavailable("append", err)
	}
	return nil
}

// lockedHeads reads the head of every chain in chains, creating the chains that do not
// exist yet. The caller's transaction holds the write lock (BEGIN IMMEDIATE), so the
// heads cannot move until it ends. Chains almost always exist: reading first costs one
// statement per chain, where an INSERT … ON CONFLICT DO NOTHING before every read cost two.
func (s *Store) lockedHeads(ctx context.Context, tx *sql.Tx, chains []audit.Chain) (map[string]audit.Head, error) {
	heads := make(map[string]audit.Head, len(chains))
	head := tx.StmtContext(ctx, s.head)
	for _, c := range chains {
		h, err := scanHead(head.QueryRowContext(ctx, c.ID))
		if errors.Is(err, sql.ErrNoRows) {
			if _, err = tx.StmtContext(ctx, s.createChain).ExecContext(ctx, c.ID, c.TenantID); err != nil {
				return nil, err
			}
			h, err = scanHead(head.QueryRowContext(ctx, c.ID))
		}
		if err != nil {
			return nil, err
		}
		heads[c.ID] = h
	}
	return heads, nil
}

// appendEvents inserts b's events with the multi-row statements of insertRows, largest
// first.
func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, b *audit.Batch) error {
	evs := b.Events
	next := 0 // the index in b.Events of evs[0]
	var args []any
	var lastTime, lastFmt string // the events of one batch share their time
	for i, rows := range insertRows {
		var ins *sql.Stmt
		for len(evs) >= rows {
			if ins == nil {
				ins = tx.StmtContext(ctx, s.insEvents[i])
				if cap(args) < rows*eventCols {
					args = make([]any, 0, rows*eventCols)
				}
			}
			args = args[:0]
			for j, e := range evs[:rows] {
				if e.Time != lastTime {
					t, err := e.Timestamp()
					if err != nil {
						return &audit.BuildError{Err: fmt.Errorf("event %s: %w", e.ID, err)}
					}
					lastTime, lastFmt = e.Time, fmtTime(t)
				}
				// The stored body is the event's canonical (JCS) JSON with every member:
				// plain JSON that reads back as the same Event, written without reflection.
				body, err := b.Body(next + j)
				if err != nil {
					return &audit.BuildError{Err: err}
				}
				args = append(args, e.ID, e.ChainID, e.Seq, e.TenantID, e.IntegrationID, lastFmt,
					e.PrevHash, e.Hash, string(body))
			}
			if _, err := ins.ExecContext(ctx, args...); err != nil {
				return err
			}
			evs, next = evs[rows:], next+rows
		}
	}
	return nil
}

func (s *Store) insertCheckpoint(ctx context.Context, tx *sql.Tx, cp audit.SignedCheckpoint) error {
	c, err := audit.ParseCheckpointNote(cp.Note)
	if err != nil {
		return err
	}
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	res, err := tx.StmtContext(ctx, s.insCheckpoint).ExecContext(ctx, fmtTime(c.Time), string(body), c.ChainID, c.Seq, c.Hash)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var k int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE chain_id = ? AND seq = ? AND hash = ?`, c.ChainID, c.Seq, c.Hash).Scan(&k); err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("checkpoint %s@%d does not sign a stored event", c.ChainID, c.Seq)
		}
	}
	_, err = tx.StmtContext(ctx, s.setCheckpoint).ExecContext(ctx, c.Seq, fmtTime(c.Time), c.ChainID, c.Seq)
	return err
}

// SaveCheckpoint implements [audit.Store].
func (s *Store) SaveCheckpoint(ctx context.Context, cp audit.SignedCheckpoint) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.insertCheckpoint(ctx, tx, cp) }); err != nil {
		return unavailable("save checkpoint", err)
	}
	return nil
}

const headCols = `chain_id, tenant_id, head_seq, head_hash, checkpoint_seq, checkpoint_time`

type scanner interface{ Scan(dest ...any) error }

func scanHead(r scanner) (audit.Head, error) {
	var h audit.Head
	var cpTime string
	if err := r.Scan(&h.ID, &h.TenantID, &h.Seq, &h.Hash, &h.CheckpointSeq, &cpTime); err != nil {
		return audit.Head{}, err
	}
	if cpTime != "" {
		t, err := time.Parse(time.RFC3339Nano, cpTime)
		if err != nil {
			return audit.Head{}, fmt.Errorf("chain %q: checkpoint time %q: %w", h.ID, cpTime, err)
		}
		h.CheckpointTime = t
	}
	return h, nil
}

// Head implements [audit.Store].
func (s *Store) Head(ctx context.Context, chainID string) (audit.Head, error) {
	h, err := scanHead(s.head.QueryRowContext(ctx, chainID))
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Head{}, fmt.Errorf("audit sqlitestore: chain %q: %w", chainID, audit.ErrNotFound)
	}
	if err != nil {
		return audit.Head{}, unavailable("head", err)
	}
	return h, nil
}

// Chains implements [audit.Store].
func (s *Store) Chains(ctx context.Context) ([]audit.Head, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+headCols+` FROM audit_chains ORDER BY chain_id`)
	if err != nil {
		return nil, unavailable("chains", err)
	}
	defer rows.Close()
	var out []audit.Head
	for rows.Next() {
		h, err := scanHead(rows)
		if err != nil {
			return nil, unavailable("chains", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("chains", err)
	}
	return out, nil
}

func queryBodies[T any](ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return nil, fmt.Errorf("stored record: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ChainEvents implements [audit.Store].
func (s *Store) ChainEvents(ctx context.Context, chainID string, afterSeq int64, limit int) ([]audit.Event, error) {
	evs, err := queryBodies[audit.Event](ctx, s.db, `SELECT body FROM audit_events WHERE chain_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		chainID, afterSeq, limit)
	if err != nil {
		return nil, unavailable("chain events", err)
	}
	return evs, nil
}

// FirstSeqSince implements [audit.Store].
func (s *Store) FirstSeqSince(ctx context.Context, chainID string, t time.Time) (int64, error) {
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT min(seq) FROM audit_events WHERE chain_id = ? AND time >= ?`,
		chainID, fmtTime(t)).Scan(&seq); err != nil {
		return 0, unavailable("first seq", err)
	}
	return seq.Int64, nil
}

// Checkpoints implements [audit.Store].
func (s *Store) Checkpoints(ctx context.Context, chainID string, fromSeq int64) ([]audit.SignedCheckpoint, error) {
	cps, err := queryBodies[audit.SignedCheckpoint](ctx, s.db, `SELECT body FROM audit_checkpoints WHERE chain_id = ? AND seq >= ? ORDER BY seq`,
		chainID, fromSeq)
	if err != nil {
		return nil, unavailable("checkpoints", err)
	}
	return cps, nil
}

// ListEvents implements [audit.Store].
func (s *Store) ListEvents(ctx context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error) {
	limit, err := q.Normalize()
	if err != nil {
		return nil, "", fmt.Errorf("audit sqlitestore: list: %w", err)
	}
	since := ""
	if !q.Since.IsZero() {
		since = fmtTime(q.Since)
	}
	evs, err := queryBodies[audit.Event](ctx, s.db, `SELECT body FROM audit_events
		WHERE tenant_id = ? AND (? = '' OR integration_id = ?) AND time >= ? AND id > ?
		ORDER BY id LIMIT ?`, tenantID, q.IntegrationID, q.IntegrationID, since, q.After, limit+1)
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
		return audit.Proof{}, fmt.Errorf("audit sqlitestore: event %q: %w", eventID, audit.ErrNotFound)
	}
	var p audit.Proof
	// A read transaction gives one WAL snapshot for the three reads.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return audit.Proof{}, unavailable("proof", err)
	}
	defer tx.Rollback()
	evs, err := queryBodies[audit.Event](ctx, tx, `SELECT body FROM audit_events WHERE tenant_id = ? AND id = ?`, tenantID, eventID)
	if err != nil {
		return audit.Proof{}, unavailable("proof", err)
	}
	if len(evs) == 0 {
		return audit.Proof{}, fmt.Errorf("audit sqlitestore: event %q: %w", eventID, audit.ErrNotFound)
	}
	p.Event = evs[0]
	cps, err := queryBodies[audit.SignedCheckpoint](ctx, tx, `SELECT body FROM audit_checkpoints WHERE chain_id = ? AND seq >= ? ORDER BY seq LIMIT 1`,
		p.Event.ChainID, p.Event.Seq)
	if err != nil {
		return audit.Proof{}, unavailable("proof", err)
	}
	upTo := p.Event.Seq + audit.MaxProofEvents
	if len(cps) == 1 {
		p.Checkpoint = &cps[0]
		c, err := audit.ParseCheckpointNote(cps[0].Note)
		if err != nil {
			return audit.Proof{}, unavailable("proof", err)
		}
		upTo = c.Seq
	}
	p.Following, err = queryBodies[audit.Event](ctx, tx, `SELECT body FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq`,
		p.Event.ChainID, p.Event.Seq, upTo)
	if err != nil {
		return audit.Proof{}, unavailable("proof", err)
	}
	return p, nil
}

// LatestCheckpoints implements [audit.Store].
func (s *Store) LatestCheckpoints(ctx context.Context, tenantID string) ([]audit.SignedCheckpoint, error) {
	cps, err := queryBodies[audit.SignedCheckpoint](ctx, s.db, `SELECT k.body FROM audit_checkpoints k
		WHERE k.tenant_id = ? AND k.seq = (SELECT max(seq) FROM audit_checkpoints WHERE chain_id = k.chain_id)
		ORDER BY k.chain_id`, tenantID)
	if err != nil {
		return nil, unavailable("latest checkpoints", err)
	}
	return cps, nil
}
