package pgstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantaseal/gateway/audit"
)

// Statements of the append path. pgx's default statement cache prepares each once per
// connection; the arrays make one statement serve a whole batch.
var (
	insertChainsSQL = `INSERT INTO audit_chains (chain_id, tenant_id)
		SELECT c, t FROM unnest($1::text[], $2::text[]) AS u(c, t) ORDER BY c COLLATE "C"
		ON CONFLICT (chain_id) DO NOTHING`
	lockHeadsSQL    = `SELECT ` + headCols + ` FROM audit_chains WHERE chain_id = ANY($1) ORDER BY chain_id FOR UPDATE`
	advanceHeadsSQL = `UPDATE audit_chains c SET head_seq = u.seq, head_hash = u.hash
		FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(chain_id, seq, hash)
		WHERE c.chain_id = u.chain_id`
	insertEventsSQL = insertEvents(1)

	// appendIfUnmovedSQL is the whole append in one autocommitted statement, for a
	// batch built on heads this store committed itself. It locks the heads that are
	// still exactly as remembered ($1–$4: chain, seq, hash, checkpoint seq), in chain
	// order like the locking path; a head that another writer moved is re-read under
	// READ COMMITTED and drops out. Only if every head is still as remembered does it
	// advance them ($5, $6) and insert the events; otherwise it changes nothing and
	// reports no rows. An UPDATE … WHERE head = old alone would not do: with several
	// chains it could advance some heads and insert no events.
	appendIfUnmovedSQL = `WITH remembered AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
				AS r(chain_id, seq, hash, checkpoint_seq, new_seq, new_hash)
		), unmoved AS MATERIALIZED (
			SELECT c.chain_id FROM audit_chains c JOIN remembered r ON c.chain_id = r.chain_id
			WHERE c.head_seq = r.seq AND c.head_hash = r.hash AND c.checkpoint_seq = r.checkpoint_seq
			ORDER BY c.chain_id FOR UPDATE OF c
		), verdict AS (
			SELECT count(*) = cardinality($1::text[]) AS ok FROM unmoved
		), advanced AS (
			UPDATE audit_chains c SET head_seq = r.new_seq, head_hash = r.new_hash
			FROM remembered r WHERE c.chain_id = r.chain_id AND (SELECT ok FROM verdict)
		)
		` + insertEvents(7) + ` WHERE (SELECT ok FROM verdict)`
)

// insertEvents returns the INSERT of a batch's events from the nine parameters
// $first… of [eventColumns.args]. The bodies travel as one text of lines, not as a
// text[]: pgx encodes an array element by element into a buffer that starts small and
// doubles, twice over (parameter, then message), while one large parameter placed last
// costs one copy at each step. Canonical JSON never holds a raw line feed.
func insertEvents(first int) string {
	p := func(i int) string { return fmt.Sprintf("$%d", first+i) }
	return `INSERT INTO audit_events (id, chain_id, seq, tenant_id, integration_id, time, prev_hash, hash, body)
		SELECT * FROM unnest(` + p(0) + `::text[], ` + p(1) + `::text[], ` + p(2) + `::bigint[], ` + p(3) + `::text[], ` +
		p(4) + `::text[], ` + p(5) + `::timestamptz[], ` + p(6) + `::text[], ` + p(7) + `::text[], string_to_array(` +
		p(8) + `::text, E'\n'))`
}

// chainState is what a store knows of a chain it appended to.
type chainState struct {
	head audit.Head // as this store last committed it
	// moved is set when the locking path found the head elsewhere than remembered:
	// another writer shares the chain, so a compare-and-set would mostly fail.
	moved bool
}

// AppendBatch implements [audit.Store].
//
// When this store committed the last batch of every chain in chains (its own head is
// remembered and nothing moved it since), build runs on the remembered heads and the
// batch goes in as one autocommitted statement: one round trip, one commit. Otherwise,
// and for batches with checkpoints, the heads are locked in a transaction: BEGIN, one
// pipelined round trip to create missing chains and lock the heads, one to insert the
// events and advance the heads, COMMIT (each checkpoint adds its own statements).
func (s *Store) AppendBatch(ctx context.Context, chains []audit.Chain, build audit.BuildFunc) error {
	known, fast := s.knownHeads(chains)
	var prebuilt *audit.Batch
	if fast {
		b, err := build(known)
		if err != nil {
			return fmt.Errorf("audit pgstore: append: %w", err)
		}
		prebuilt = &b
		if len(b.Checkpoints) == 0 {
			next, appended, err := s.appendIfUnmoved(ctx, known, b)
			if err != nil {
				s.forget(chains)
				return appendError(err)
			}
			if appended {
				s.remember(next, nil)
				return nil
			}
		}
	}
	if err := s.appendLocked(ctx, chains, known, prebuilt, build); err != nil {
		s.forget(chains)
		return appendError(err)
	}
	return nil
}

func appendError(err error) error {
	var be *buildError
	if errors.As(err, &be) {
		return fmt.Errorf("audit pgstore: append: %w", be.err)
	}
	return unavailable("append", err)
}

// appendIfUnmoved runs appendIfUnmovedSQL for b, built on the remembered heads known.
// appended is false when another writer moved one of the heads.
func (s *Store) appendIfUnmoved(ctx context.Context, known map[string]audit.Head, b audit.Batch) (next map[string]audit.Head, appended bool, err error) {
	next, err = advance(known, b)
	if err != nil {
		return nil, false, &buildError{err}
	}
	ev, err := encodeEvents(b.Events)
	if err != nil {
		return nil, false, &buildError{err}
	}
	defer ev.release()
	n := len(known)
	ids, seqs, hashes, cpSeqs := make([]string, 0, n), make([]int64, 0, n), make([]string, 0, n), make([]int64, 0, n)
	newSeqs, newHashes := make([]int64, 0, n), make([]string, 0, n)
	for _, id := range slices.Sorted(maps.Keys(known)) {
		h, nh := known[id], next[id]
		ids, seqs, hashes, cpSeqs = append(ids, id), append(seqs, h.Seq), append(hashes, h.Hash), append(cpSeqs, h.CheckpointSeq)
		newSeqs, newHashes = append(newSeqs, nh.Seq), append(newHashes, nh.Hash)
	}
	args := append([]any{ids, seqs, hashes, cpSeqs, newSeqs, newHashes}, ev.args()...)
	tag, err := s.pool.Exec(ctx, appendIfUnmovedSQL, args...)
	if err != nil {
		return nil, false, err
	}
	switch tag.RowsAffected() {
	case int64(len(b.Events)):
		return next, true, nil
	case 0:
		return nil, false, nil
	default: // the verdict gates every row: all or none
		return nil, false, fmt.Errorf("one-statement append inserted %d of %d events", tag.RowsAffected(), len(b.Events))
	}
}

// appendLocked is the locking path. known are the heads this store remembers for some
// of the chains and prebuilt, if not nil, the batch built on them: when the locked heads
// turn out to be those, it is used as is (build is pure) rather than signing its
// checkpoints again.
func (s *Store) appendLocked(ctx context.Context, chains []audit.Chain, known map[string]audit.Head, prebuilt *audit.Batch, build audit.BuildFunc) error {
	ids := make([]string, len(chains))
	tenants := make([]string, len(chains))
	for i, c := range chains {
		ids[i], tenants[i] = c.ID, c.TenantID
	}
	var next map[string]audit.Head
	var moved map[string]bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var heads []audit.Head
		var lock pgx.Batch
		lock.Queue(insertChainsSQL, ids, tenants)
		lock.Queue(lockHeadsSQL, ids).Query(func(rows pgx.Rows) error {
			var err error
			heads, err = scanHeads(rows)
			return err
		})
		if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
			return err
		}
		locked := make(map[string]audit.Head, len(heads))
		moved = make(map[string]bool, len(heads))
		for _, h := range heads {
			locked[h.ID] = h
			if k, ok := known[h.ID]; ok && !sameHead(k, h) {
				moved[h.ID] = true
			}
		}
		var b audit.Batch
		if prebuilt != nil && len(moved) == 0 && len(locked) == len(known) {
			b = *prebuilt
		} else {
			var err error
			if b, err = build(locked); err != nil {
				return &buildError{err}
			}
		}
		var err error
		if next, err = advance(locked, b); err != nil {
			return &buildError{err}
		}
		ev, err := encodeEvents(b.Events)
		if err != nil {
			return &buildError{err}
		}
		defer ev.release()
		headIDs := slices.Sorted(maps.Keys(next))
		headSeqs := make([]int64, len(headIDs))
		headHashes := make([]string, len(headIDs))
		for i, id := range headIDs {
			headSeqs[i], headHashes[i] = next[id].Seq, next[id].Hash
		}
		var write pgx.Batch
		write.Queue(insertEventsSQL, ev.args()...)
		write.Queue(advanceHeadsSQL, headIDs, headSeqs, headHashes)
		if err := tx.SendBatch(ctx, &write).Close(); err != nil {
			return err
		}
		for _, cp := range b.Checkpoints {
			if err := insertCheckpoint(ctx, tx, cp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.remember(next, moved)
	return nil
}

// sameHead reports whether two heads of a chain are the same committed state. The
// checkpoint time is left out: it changes only with the checkpoint seq.
func sameHead(a, b audit.Head) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.CheckpointSeq == b.CheckpointSeq
}

// advance returns heads moved on by b, and refuses a batch that does not extend them:
// each chain's events must continue its seq and link prev_hash to the previous hash.
// Together with the serialised head this is what keeps a chain unforked; the schema's
// UNIQUE (chain_id, seq) is the backstop.
func advance(heads map[string]audit.Head, b audit.Batch) (map[string]audit.Head, error) {
	next := maps.Clone(heads)
	for i := range b.Events {
		e := &b.Events[i]
		h, ok := next[e.ChainID]
		switch {
		case !ok:
			return nil, fmt.Errorf("event %s: chain %q is not locked", e.ID, e.ChainID)
		case e.Seq != h.Seq+1 || e.PrevHash != h.Hash:
			return nil, fmt.Errorf("event %s: seq %d after %q does not extend head %d %q of chain %q",
				e.ID, e.Seq, e.PrevHash, h.Seq, h.Hash, e.ChainID)
		}
		h.Seq, h.Hash = e.Seq, e.Hash
		next[e.ChainID] = h
	}
	for _, cp := range b.Checkpoints {
		c, err := audit.ParseCheckpointNote(cp.Note)
		if err != nil {
			return nil, err
		}
		if h, ok := next[c.ChainID]; ok && c.Seq > h.CheckpointSeq {
			h.CheckpointSeq, h.CheckpointTime = c.Seq, storedTime(c.Time)
			next[c.ChainID] = h
		}
	}
	return next, nil
}

// storedTime is t as a timestamptz column holds it and scanHeads returns it: pgx sends
// whole microseconds, truncated.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// knownHeads returns the remembered heads of chains and whether the one-statement
// append may be tried: every chain's head is remembered and none was found moved.
func (s *Store) knownHeads(chains []audit.Chain) (map[string]audit.Head, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	known := make(map[string]audit.Head, len(chains))
	fast := true
	for _, c := range chains {
		st, ok := s.chains[c.ID]
		if ok {
			known[c.ID] = st.head
		}
		fast = fast && ok && !st.moved
	}
	return known, fast
}

// remember records heads this store has just committed. Should two batches of one
// store finish out of order, the older head costs one failed one-statement attempt.
func (s *Store) remember(heads map[string]audit.Head, moved map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, h := range heads {
		s.chains[id] = chainState{head: h, moved: moved[id]}
	}
}

// forget drops what is remembered of chains, after a failure that may or may not have
// committed: the next batch reads the heads under lock.
func (s *Store) forget(chains []audit.Chain) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range chains {
		delete(s.chains, c.ID)
	}
}

// eventColumns holds a batch's events as the parameters of insertEvents.
type eventColumns struct {
	id, chainID, tenantID, integrationID, prevHash, hash []string
	seq                                                  []int64
	time                                                 []time.Time
	bodies                                               *[]byte // from bodyBuffers
}

// bodyBuffers recycles the bodies parameter, which for a full batch is a few hundred
// KiB; pgx has copied it by the time the statement returns.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds what a recycled buffer keeps.
const maxPooledBody = 1 << 20

func encodeEvents(evs []audit.Event) (*eventColumns, error) {
	n := len(evs)
	c := &eventColumns{
		id: make([]string, n), chainID: make([]string, n), tenantID: make([]string, n),
		integrationID: make([]string, n), prevHash: make([]string, n), hash: make([]string, n),
		seq: make([]int64, n), time: make([]time.Time, n),
		bodies: bodyBuffers.Get().(*[]byte),
	}
	bodies := (*c.bodies)[:0]
	var lastTime string // the events of one batch share their time: parse it once
	var t time.Time
	for i := range evs {
		e := &evs[i]
		if i == 0 || e.Time != lastTime {
			var err error
			if t, err = e.Timestamp(); err != nil {
				c.release()
				return nil, fmt.Errorf("event %s: %w", e.ID, err)
			}
			lastTime = e.Time
		}
		// The stored body is the event's canonical (JCS) JSON with every member: plain
		// JSON that reads back as the same Event, written without reflection.
		body, err := audit.Canonicalize(e)
		if err != nil {
			c.release()
			return nil, err
		}
		if i > 0 {
			bodies = append(bodies, '\n')
		}
		bodies = append(bodies, body...)
		c.id[i], c.chainID[i], c.seq[i], c.tenantID[i], c.integrationID[i] = e.ID, e.ChainID, e.Seq, e.TenantID, e.IntegrationID
		c.time[i], c.prevHash[i], c.hash[i] = t, e.PrevHash, e.Hash
	}
	*c.bodies = bodies
	return c, nil
}

// args returns the nine parameters of insertEvents, the bodies last.
func (c *eventColumns) args() []any {
	return []any{c.id, c.chainID, c.seq, c.tenantID, c.integrationID, c.time, c.prevHash, c.hash, *c.bodies}
}

// release returns the bodies buffer; c must not be used after.
func (c *eventColumns) release() {
	if cap(*c.bodies) <= maxPooledBody {
		bodyBuffers.Put(c.bodies)
	}
	c.bodies = nil
}
