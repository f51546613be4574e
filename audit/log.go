package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quantaseal/gateway/internal/id"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// NoTenant is the tenant part of the chain id of events recorded before a tenant was
// known (for example a call with an invalid API key).
const NoTenant = "none"

// Config configures a [Log]. The zero value of each field selects its default.
type Config struct {
	// WriterID names this writer's shard of each tenant's log: chain ids are
	// "<tenant_id>/<WriterID>". Writers that share an id append to the same chains,
	// serialised on the chain head; distinct ids append in parallel. Default "w1".
	WriterID string
	// MaxBatch is the most events one transaction commits. Default 256.
	MaxBatch int
	// MaxInFlight is how many batches may be committing at once. Default 1: each
	// batch is built on the heads the previous one committed. A store whose AppendBatch
	// may run concurrently and orders the commits of a chain itself — the PostgreSQL
	// store: each batch claims the heads its predecessor will leave and commits with a
	// compare-and-set, waiting on the head rows' locks — can take 2 or more: a batch's
	// round trip and fsync then overlap the next batch's collection and building. The
	// next batch is dispatched only once the previous one has been built.
	MaxInFlight int
	// MaxDelay is how long the committer waits for more events when the previous batch
	// had more than one event (there is load) and the current one is not full. When the
	// log is idle an event is committed at once. Default 0: batches form only from the
	// events that arrive while the previous commit runs.
	MaxDelay time.Duration
	// AppendTimeout bounds Append, measured from the call (it is not cut short by the
	// caller's cancellation). Default 5 s.
	AppendTimeout time.Duration
	// CheckpointEvery signs a chain's head at the latest every this many events.
	// Default DefaultCheckpointEvery.
	CheckpointEvery int64
	// CheckpointInterval signs a chain's head at the latest this long after an event
	// was appended. Default DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives checkpoint failures (nil: discard).
	Logger *slog.Logger
	// Observe, if set, is called after every commit attempt (for metrics).
	Observe func(BatchStats)
}

// BatchStats describes one group commit.
type BatchStats struct {
	Events      int
	Checkpoints int
	Duration    time.Duration
	Err         error
}

func (c *Config) defaults() error {
	if c.WriterID == "" {
		c.WriterID = "w1"
	}
	if strings.ContainsAny(c.WriterID, "/\n\r") {
		return fmt.Errorf("audit: writer id %q must not contain '/' or a line break", c.WriterID)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1
	}
	if c.AppendTimeout <= 0 {
		c.AppendTimeout = 5 * time.Second
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

type result struct {
	ev  Event
	err error
}

type request struct {
	ev   Event
	done chan result
}

// Log is the append path: it assigns each event its chain position, commits events in
// groups and signs checkpoints. It is safe for concurrent use; see the package doc.
type Log struct {
	cfg    Config
	store  Store
	signer Signer

	mu     sync.RWMutex // guards closed and sends on reqs against Close
	closed bool
	reqs   chan *request
	flush  chan chan error
	done   chan struct{}

	// uncovered is owned by the committer goroutine: for each chain this Log appended
	// to, the time of the first event not yet known to be covered by a checkpoint.
	uncovered map[string]time.Time
}

// NewLog starts a Log over store, signing checkpoints with signer. Close stops it.
func NewLog(cfg Config, store Store, signer Signer) (*Log, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if store == nil || signer == nil {
		return nil, errors.New("audit: NewLog needs a store and a signer")
	}
	l := &Log{
		cfg: cfg, store: store, signer: signer,
		reqs:      make(chan *request, 4*cfg.MaxBatch),
		flush:     make(chan chan error),
		done:      make(chan struct{}),
		uncovered: map[string]time.Time{},
	}
	go l.run()
	return l, nil
}

// ChainID returns the chain an event of tenantID is appended to by this Log.
func (l *Log) ChainID(tenantID string) string {
	if tenantID == "" {
		tenantID = NoTenant
	}
	return tenantID + "/" + l.cfg.WriterID
}

// Append records ev and returns it completed (id, chain_id, seq, time, prev_hash,
// hash) once the transaction that holds it has committed. Values the caller set in
// those members are replaced. The wait is bounded by Config.AppendTimeout and is not
// cut short by the caller's cancellation (ctx is not consulted), so a caller that goes
// away cannot skip its record.
//
// On any failure the error wraps ErrUnavailable (or is ErrClosed) and the event may or
// may not have been committed: the caller must fail closed.
func (l *Log) Append(_ context.Context, ev Event) (Event, error) {
	// One timer, not a context.WithTimeout: this runs twice per forwarded call and a
	// timer context costs several allocations and a cancellation tree it never needs.
	deadline := time.NewTimer(l.cfg.AppendTimeout)
	defer deadline.Stop()
	ev.ID = id.New("aud")
	ev.ChainID = l.ChainID(ev.TenantID)
	ev.Seq, ev.Time, ev.PrevHash, ev.Hash = 0, "", "", ""
	ev.sanitize()
	r := &request{ev: ev, done: make(chan result, 1)}

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Event{}, ErrClosed
	}
	select {
	case l.reqs <- r:
		l.mu.RUnlock()
	case <-deadline.C:
		l.mu.RUnlock()
		return Event{}, fmt.Errorf("audit append: %w: queue full: %w", ErrUnavailable, context.DeadlineExceeded)
	}
	select {
	case res := <-r.done:
		return res.ev, res.err
	case <-deadline.C:
		return Event{}, fmt.Errorf("audit append: %w: %w", ErrUnavailable, context.DeadlineExceeded)
	}
}

// Flush commits every event appended before the call and signs a checkpoint over each
// chain this Log appended to that has unsigned events.
func (l *Log) Flush(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case l.flush <- ch:
	case <-l.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, commits the queued ones, signs the final checkpoints
// and waits for the committer to stop (or ctx to end).
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the committer goroutine. Batches form from whatever is queued when the
// previous commit ends ("group commit"), so one caller is never delayed and N callers
// share one transaction. With MaxInFlight > 1 the next batch is dispatched as soon as
// the previous one has been built (its chain positions are claimed), so its round trip
// and fsync overlap the next batch's collection, building and sending.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.CheckpointInterval / 4)
	defer tick.Stop()
	p := pipeline{l: l, done: make(chan committed, l.cfg.MaxInFlight)}
	last := 0
	for {
		reqs := l.reqs
		if p.inFlight >= l.cfg.MaxInFlight {
			reqs = nil // wait for a commit to finish first
		}
		select {
		case r, ok := <-reqs:
			if !ok {
				p.wait()
				if err := l.checkpoint(true); err != nil {
					l.cfg.Logger.Error("audit final checkpoint failed", slog.Any("error", err))
				}
				return
			}
			batch := l.collect(r, last > 1)
			last = len(batch)
			p.dispatch(batch)
		case c := <-p.done:
			p.finish(c)
		case <-tick.C:
			if err := l.checkpoint(false); err != nil {
				l.cfg.Logger.Warn("audit checkpoint failed", slog.Any("error", err))
			}
		case ch := <-l.flush:
			l.drain(&p)
			ch <- l.checkpoint(true)
		}
	}
}

// pipeline tracks the batches being committed. It is owned by the committer goroutine.
type pipeline struct {
	l        *Log
	done     chan committed
	inFlight int
}

// committed is a finished commit: the heads it left, for the checkpoint bookkeeping,
// which only the committer goroutine touches.
type committed struct {
	heads map[string]Head
	err   error
}

// dispatch commits batch on its own goroutine and returns once the batch has been
// built — its events have their chain positions, so the next batch builds on them —
// or has finished. Commits that finish meanwhile are accounted for.
func (p *pipeline) dispatch(batch []*request) {
	p.inFlight++
	built := make(chan struct{})
	go func() { p.done <- p.l.commit(batch, built) }()
	for {
		select {
		case <-built:
			return
		case c := <-p.done:
			p.finish(c) // a batch finished; this one may still be building
		}
	}
}

func (p *pipeline) finish(c committed) {
	p.inFlight--
	if c.err != nil {
		return
	}
	for id, h := range c.heads {
		if h.CheckpointSeq >= h.Seq {
			delete(p.l.uncovered, id)
		} else if _, ok := p.l.uncovered[id]; !ok {
			p.l.uncovered[id] = p.l.cfg.Now()
		}
	}
}

// wait returns once every dispatched batch has finished.
func (p *pipeline) wait() {
	for p.inFlight > 0 {
		p.finish(<-p.done)
	}
}

// drain commits everything queued now and waits for every commit to finish.
func (l *Log) drain(p *pipeline) {
	for {
		if p.inFlight >= l.cfg.MaxInFlight {
			p.finish(<-p.done)
			continue
		}
		select {
		case r, ok := <-l.reqs:
			if !ok {
				p.wait()
				return
			}
			p.dispatch(l.collect(r, false))
		default:
			p.wait()
			return
		}
	}
}

// collect gathers up to MaxBatch queued requests after first; under load (the previous
// batch had more than one event) it lingers up to MaxDelay for more.
func (l *Log) collect(first *request, busy bool) []*request {
	batch := []*request{first}
	var timer <-chan time.Time
	if busy && l.cfg.MaxDelay > 0 {
		t := time.NewTimer(l.cfg.MaxDelay)
		defer t.Stop()
		timer = t.C
	}
	for len(batch) < l.cfg.MaxBatch {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
			continue
		default:
		}
		if timer == nil {
			return batch
		}
		select {
		case r, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-timer:
			return batch
		}
	}
	return batch
}

// commit writes one batch and answers its callers. It closes built once the store has
// called build (or has failed without calling it).
func (l *Log) commit(batch []*request, built chan struct{}) committed {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.AppendTimeout)
	defer cancel()
	var signal sync.Once
	signalBuilt := func() { signal.Do(func() { close(built) }) }
	defer signalBuilt()

	seen := map[string]bool{}
	var chains []Chain
	for _, r := range batch {
		if !seen[r.ev.ChainID] {
			seen[r.ev.ChainID] = true
			chains = append(chains, Chain{ID: r.ev.ChainID, TenantID: r.ev.TenantID})
		}
	}
	slices.SortFunc(chains, func(a, b Chain) int { return cmp.Compare(a.ID, b.ID) })

	var out Batch
	var heads map[string]Head
	err := l.store.AppendBatch(ctx, chains, func(locked map[string]Head) (Batch, error) {
		// The store calls build once per attempt; the batch's positions are claimed
		// by the first, which is what the next batch waits for.
		defer signalBuilt()
		b, h, err := l.build(batch, locked)
		out, heads = b, h
		return b, err
	})
	if l.cfg.Observe != nil {
		l.cfg.Observe(BatchStats{Events: len(batch), Checkpoints: len(out.Checkpoints), Duration: time.Since(start), Err: err})
	}
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		err = fmt.Errorf("audit append: %w", err)
		for _, r := range batch {
			r.done <- result{err: err}
		}
		return committed{err: err}
	}
	for i, r := range batch {
		r.done <- result{ev: out.Events[i]}
	}
	return committed{heads: heads}
}

// build assigns seq, time, prev_hash and hash to the batch on top of the locked heads
// and signs the checkpoints that fall due: over an unsigned head found older than
// CheckpointInterval, at every CheckpointEvery-th event after the chain's newest
// checkpoint, and at the end of the batch for a chain whose newest checkpoint is older
// than CheckpointInterval (a new chain's first batch is signed at once). It is pure in its inputs, so a store may
// call it again when it retries a transaction.
func (l *Log) build(batch []*request, locked map[string]Head) (Batch, map[string]Head, error) {
	now := l.cfg.Now().UTC()
	ts := now.Format(TimeLayout)
	heads := make(map[string]Head, len(locked))
	for k, h := range locked {
		heads[k] = h
	}
	sign := func(h *Head) (SignedCheckpoint, error) {
		cp, err := SignCheckpoint(l.signer, Checkpoint{ChainID: h.ID, Seq: h.Seq, Hash: h.Hash, Time: now})
		h.CheckpointSeq, h.CheckpointTime = h.Seq, now
		return cp, err
	}
	ids := make([]string, 0, len(heads))
	for k := range heads {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	out := Batch{Events: make([]Event, len(batch)), Bodies: make([][]byte, len(batch))}
	// signStale signs every chain (in id order) whose head is unsigned and whose newest
	// checkpoint is older than CheckpointInterval.
	signStale := func() error {
		for _, k := range ids {
			h := heads[k]
			if h.Seq > h.CheckpointSeq && now.Sub(h.CheckpointTime) >= l.cfg.CheckpointInterval {
				cp, err := sign(&h)
				if err != nil {
					return err
				}
				out.Checkpoints = append(out.Checkpoints, cp)
				heads[k] = h
			}
		}
		return nil
	}
	// A head left unsigned for longer than the interval — by a writer that crashed, or
	// by another replica — is signed as found, before new events bury it, so that the
	// tail written before a crash is covered by a checkpoint near its own time.
	if err := signStale(); err != nil {
		return Batch{}, nil, err
	}
	for i, r := range batch {
		e := r.ev
		h, ok := heads[e.ChainID]
		if !ok {
			return Batch{}, nil, fmt.Errorf("audit: store did not lock chain %q", e.ChainID)
		}
		e.Seq, e.PrevHash, e.Time = h.Seq+1, h.Hash, ts
		e.Hash, out.Bodies[i] = e.hashAndBody()
		h.Seq, h.Hash = e.Seq, e.Hash
		if h.Seq-h.CheckpointSeq >= l.cfg.CheckpointEvery {
			cp, err := sign(&h)
			if err != nil {
				return Batch{}, nil, err
			}
			out.Checkpoints = append(out.Checkpoints, cp)
		}
		heads[e.ChainID] = h
		out.Events[i] = e
	}
	// And once more after the batch: a chain whose newest checkpoint is older than the
	// interval (a new chain's first batch, say) is signed at its new head.
	if err := signStale(); err != nil {
		return Batch{}, nil, err
	}
	return out, heads, nil
}

// checkpoint signs the committed head of every chain with events unsigned for half the
// interval (all of them when force is set). Writers sharing a chain may both sign its
// head; the store keeps one checkpoint per (chain, seq).
func (l *Log) checkpoint(force bool) error {
	now := l.cfg.Now()
	var errs []error
	for chainID, since := range l.uncovered {
		if !force && now.Sub(since) < l.cfg.CheckpointInterval/2 {
			continue
		}
		if err := l.checkpointChain(chainID); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(l.uncovered, chainID)
	}
	return errors.Join(errs...)
}

func (l *Log) checkpointChain(chainID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.AppendTimeout)
	defer cancel()
	h, err := l.store.Head(ctx, chainID)
	if err != nil {
		return fmt.Errorf("audit checkpoint %q: %w", chainID, err)
	}
	if h.Seq == 0 || h.CheckpointSeq >= h.Seq {
		return nil
	}
	cp, err := SignCheckpoint(l.signer, Checkpoint{ChainID: chainID, Seq: h.Seq, Hash: h.Hash, Time: l.cfg.Now()})
	if err != nil {
		return fmt.Errorf("audit checkpoint %q: %w", chainID, err)
	}
	if err := l.store.SaveCheckpoint(ctx, cp); err != nil {
		return fmt.Errorf("audit checkpoint %q: %w", chainID, err)
	}
	return nil
}
