package pgstore

import (
	"context"
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
	// batch built on heads this store committed or claimed itself. It locks the batch's
	// head rows ($1: chain ids) in chain order, like the locking path: a row being
	// advanced by an earlier batch still in flight (audit.Config.MaxInFlight) makes it
	// wait for that commit and read the row as committed (READ COMMITTED re-reads a
	// row it had to wait for). Only if every head is then exactly as expected ($2–$4:
	// seq, hash, checkpoint seq) does it advance them ($5, $6) and insert the events;
	// otherwise it changes nothing and reports no rows. An UPDATE … WHERE head = old
	// alone would not do: with several chains it could advance some heads and insert no
	// events. Nor would putting the comparison in the locking SELECT's WHERE: a row
	// that does not match its snapshot is skipped without waiting, so a batch that
	// arrives before its predecessor commits would fail instead of queueing behind it.
	appendIfUnmovedSQL = `WITH remembered AS (
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
				AS r(chain_id, seq, hash, checkpoint_seq, new_seq, new_hash)
		), locked AS MATERIALIZED (
			SELECT c.chain_id, c.head_seq, c.head_hash, c.checkpoint_seq
			FROM audit_chains c JOIN remembered r ON c.chain_id = r.chain_id
			ORDER BY c.chain_id FOR UPDATE OF c
		), verdict AS (
			SELECT count(*) = cardinality($1::text[]) AS ok
			FROM locked l JOIN remembered r ON l.chain_id = r.chain_id
			WHERE l.head_seq = r.seq AND l.head_hash = r.hash AND l.checkpoint_seq = r.checkpoint_seq
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
	head audit.Head // as this store last committed or claimed it
	// moved is set when the locking path found the head elsewhere than remembered:
	// another writer shares the chain, so a compare-and-set would mostly fail.
	moved bool
}

// AppendBatch implements [audit.Store]. It may be called concurrently (audit.Config
// MaxInFlight); calls claim their heads one at a time, in call order.
//
// When this store knows the head of every chain in chains (it committed or claimed
// each last, and nothing moved it since), build runs on those heads and the batch goes
// in as one autocommitted statement: one round trip, one commit. The heads the batch
// will leave are claimed at once, so a batch started while this one is still
// committing builds on them; its statement waits on the head rows' locks and commits
// after this one. Otherwise, and for batches with checkpoints, the heads are locked in
// a transaction: BEGIN, one pipelined round trip to create missing chains and lock the
// heads, one to insert the events and advance the heads, COMMIT (each checkpoint adds
// its own statements).
func (s *Store) AppendBatch(ctx context.Context, chains []audit.Chain, build audit.BuildFunc) error {
	c, err := s.claim(chains, build)
	if err != nil {
		return fmt.Errorf("audit pgstore: append: %w", err)
	}
	if c.next != nil {
		appended, err := s.appendIfUnmoved(ctx, c.known, c.next, *c.batch)
		if err != nil {
			s.forget(chains)
			return unavailable("append", err)
		}
		if appended {
			return nil
		}
		// A head moved: another writer, or a batch claimed before this one failed.
		// Batches claimed after this one will find out the same way.
		s.forget(chains)
	}
	if err := s.appendLocked(ctx, chains, c.known, c.batch, build); err != nil {
		s.forget(chains)
		return unavailable("append", err)
	}
	return nil
}

// claimed is what claim decided for a batch.
type claimed struct {
	known map[string]audit.Head // the heads remembered for the batch's chains (some or all)
	batch *audit.Batch          // built on known, when every head was known; else nil
	next  map[string]audit.Head // set for the one-statement path: the heads batch leaves
}

// claim builds the batch on the remembered heads when the one-statement path may be
// tried, and records the heads it will leave as the chains' heads, so the next claim
// builds on them. It holds s.mu through build so that claims are made one at a time.
// A batch that must take the locking path (a chain not known or found moved, or
// checkpoints to sign) makes its chains unknown, so that batches claimed after it lock
// too and build on what it commits.
func (s *Store) claim(chains []audit.Chain, build audit.BuildFunc) (claimed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := claimed{known: make(map[string]audit.Head, len(chains))}
	fast := true
	for _, ch := range chains {
		st, ok := s.chains[ch.ID]
		if ok {
			c.known[ch.ID] = st.head
		}
		fast = fast && ok && !st.moved
	}
	if fast {
		b, err := build(c.known)
		if err != nil {
			return claimed{}, err
		}
		c.batch = &b
		if len(b.Checkpoints) == 0 {
			if c.next, err = advance(c.known, b); err != nil {
				return claimed{}, err
			}
			for id, h := range c.next {
				s.chains[id] = chainState{head: h}
			}
			return c, nil
		}
	}
	for _, ch := range chains {
		delete(s.chains, ch.ID) // known again once the locking path has built on the locked heads
	}
	return c, nil
}

// appendIfUnmoved runs appendIfUnmovedSQL for b, built on the heads known and leaving
// next. appended is false when a head was not found as known.
func (s *Store) appendIfUnmoved(ctx context.Context, known, next map[string]audit.Head, b audit.Batch) (appended bool, err error) {
	ev, err := encodeEvents(&b)
	if err != nil {
		return false, &audit.BuildError{Err: err}
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
		return false, err
	}
	switch tag.RowsAffected() {
	case int64(len(b.Events)):
		return true, nil
	case 0:
		return false, nil
	default: // the verdict gates every row: all or none
		return false, fmt.Errorf("one-statement append inserted %d of %d events", tag.RowsAffected(), len(b.Events))
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
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
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
		b, next, err := s.buildLocked(heads, known, prebuilt, build)
		if err != nil {
			return &audit.BuildError{Err: err}
		}
		ev, err := encodeEvents(&b)
		if err != nil {
			return &audit.BuildError{Err: err}
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
}

// buildLocked builds the batch on the heads the locking path has locked — or takes
// prebuilt, built on known, when those are the locked heads (build is pure; this
// spares signing its checkpoints twice) — and claims the heads it will leave, as
// claim does, so that a batch started while this transaction commits builds on
// them. It holds s.mu throughout, like claim. A chain whose head was found elsewhere
// than remembered (another writer shares it) is marked moved.
func (s *Store) buildLocked(heads []audit.Head, known map[string]audit.Head, prebuilt *audit.Batch, build audit.BuildFunc) (audit.Batch, map[string]audit.Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	locked := make(map[string]audit.Head, len(heads))
	moved := make(map[string]bool, len(heads))
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
			return audit.Batch{}, nil, err
		}
	}
	next, err := advance(locked, b)
	if err != nil {
		return audit.Batch{}, nil, err
	}
	for id, h := range next {
		s.chains[id] = chainState{head: h, moved: moved[id]}
	}
	return b, next, nil
}

// sameHead reports whether two heads of a chain are the same committed state. The
// checkpoint time is left out: it changes only with the checkpoint seq.
func sameHead(a, b audit.Head) bool {
	return a.Seq == b.Seq && a.Hash == b.Hash && a.CheckpointSeq == b.CheckpointSeq
}

// advance returns heads moved on by b, after refusing a batch that does not extend
// them ([audit.CheckLinks]).
func advance(heads map[string]audit.Head, b audit.Batch) (map[string]audit.Head, error) {
	if err := audit.CheckLinks(heads, b); err != nil {
		return nil, err
	}
	next := maps.Clone(heads)
	for i := range b.Events {
		e := &b.Events[i]
		h := next[e.ChainID]
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

func encodeEvents(b *audit.Batch) (*eventColumns, error) {
	evs := b.Events
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
		body, err := b.Body(i)
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
