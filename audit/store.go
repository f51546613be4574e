package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quantaseal/gateway/internal/id"
)

var (
	// ErrUnavailable wraps every failure of the store: the caller must not release a
	// response whose audit event is not committed (HTTP 503).
	ErrUnavailable = errors.New("audit store unavailable")
	// ErrNotFound is returned by reads for an event or chain that does not exist (or
	// belongs to another tenant).
	ErrNotFound = errors.New("audit record not found")
	// ErrBadQuery is returned by ListEvents for a malformed cursor or limit.
	ErrBadQuery = errors.New("invalid audit query")
)

// StoreError is how a store reports a failure of its operation op; prefix names the
// store ("audit pgstore"). An error of the caller's [BuildFunc], marked with
// [BuildError], comes back as the caller's own; one that already carries
// ErrUnavailable, ErrNotFound or ErrBadQuery keeps that meaning; anything else — a
// driver, network or constraint error — is ErrUnavailable.
func StoreError(prefix, op string, err error) error {
	if be, ok := errors.AsType[*BuildError](err); ok {
		return fmt.Errorf("%s: %s: %w", prefix, op, be.Err)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadQuery) {
		return fmt.Errorf("%s: %s: %w", prefix, op, err)
	}
	return fmt.Errorf("%s: %s: %w: %w", prefix, op, ErrUnavailable, err)
}

// BuildError marks an error returned by a [BuildFunc] as it travels out of a store's
// transaction, so that [StoreError] can tell it from the store's own failures.
type BuildError struct{ Err error }

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// Chain names a chain and the tenant it belongs to.
type Chain struct {
	ID       string
	TenantID string
}

// Head is the committed state of a chain: its last event and its newest checkpoint.
// A chain without events has Seq 0 and Hash ZeroHash.
type Head struct {
	Chain
	Seq            int64
	Hash           string
	CheckpointSeq  int64     // 0 when none
	CheckpointTime time.Time // zero when none
}

// Batch is what one group commit writes: events (in chain order) and the checkpoints
// signed over them.
type Batch struct {
	Events      []Event
	Checkpoints []SignedCheckpoint
	// Bodies, when not nil, holds each event's stored body: Bodies[i] is
	// Canonicalize(Events[i]), made by [Log] together with the event's hash so that a
	// store need not serialise the event a second time. A store uses [Batch.Body].
	Bodies [][]byte
}

// Body returns the canonical JSON of b.Events[i]: Bodies[i] when the batch carries
// bodies, else a fresh serialisation (a batch built by hand, in a test or a tool).
func (b *Batch) Body(i int) ([]byte, error) {
	if len(b.Bodies) == len(b.Events) {
		return b.Bodies[i], nil
	}
	return Canonicalize(&b.Events[i])
}

// CheckLinks reports whether b extends heads: every event belongs to one of the
// chains and continues it — seq one past the previous event's, prev_hash its hash.
// Stores call it before writing a batch. With the serialised head this is what keeps a
// chain unforked and linked; the schemas' UNIQUE (chain_id, seq) catches only the
// first half, and the verifier would find a mis-link only after it was committed.
func CheckLinks(heads map[string]Head, b Batch) error {
	last := make(map[string]Head, len(heads))
	for i := range b.Events {
		e := &b.Events[i]
		h, ok := last[e.ChainID]
		if !ok {
			if h, ok = heads[e.ChainID]; !ok {
				return fmt.Errorf("event %s: chain %q is not locked", e.ID, e.ChainID)
			}
		}
		if e.Seq != h.Seq+1 || e.PrevHash != h.Hash {
			return fmt.Errorf("event %s: seq %d after %q does not extend head %d %q of chain %q",
				e.ID, e.Seq, e.PrevHash, h.Seq, h.Hash, e.ChainID)
		}
		h.Seq, h.Hash = e.Seq, e.Hash
		last[e.ChainID] = h
	}
	return nil
}

// BuildFunc turns the locked heads of the chains of a batch into the batch to insert.
// It may be called more than once if the store retries the transaction.
type BuildFunc func(heads map[string]Head) (Batch, error)

// Query selects events for [Store.ListEvents]. Results are ordered by id (creation
// order); After is the opaque cursor returned as next by the previous page.
type Query struct {
	IntegrationID string
	Since         time.Time
	After         string
	Limit         int
}

// Query limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// MaxProofEvents bounds Proof.Following when the event is not signed yet.
	MaxProofEvents = DefaultCheckpointEvery
)

// Normalize checks q and returns the page size to use: Limit 0 means
// DefaultListLimit; a negative Limit, one above MaxListLimit or an After that is not an
// event id is ErrBadQuery.
func (q Query) Normalize() (int, error) {
	if q.After != "" && !id.Valid("aud", q.After) {
		return 0, fmt.Errorf("%w: cursor %q is not an event id", ErrBadQuery, q.After)
	}
	switch {
	case q.Limit == 0:
		return DefaultListLimit, nil
	case q.Limit < 0 || q.Limit > MaxListLimit:
		return 0, fmt.Errorf("%w: limit %d is not within 1..%d", ErrBadQuery, q.Limit, MaxListLimit)
	}
	return q.Limit, nil
}

// Proof lets a single event be verified on its own: the event, the events of its chain
// from it up to the next checkpoint, and that checkpoint. Checkpoint is nil when the
// event is not signed yet; Following then holds the events up to the chain's head.
type Proof struct {
	Event      Event             `json:"event"`
	Following  []Event           `json:"following"`
	Checkpoint *SignedCheckpoint `json:"checkpoint"`
}

// Store is the persistence contract of the audit log; audit/pgstore and
// audit/sqlitestore implement it and audit/audittest checks both. Every method returns
// an error wrapping ErrUnavailable when the database fails.
type Store interface {
	// AppendBatch calls build with the committed heads of chains (creating the chains
	// that do not exist yet) and, in one durable transaction, inserts the returned
	// events and checkpoints and advances the heads — only if the heads are still the
	// ones build saw. A store may lock the heads first (in ID order, so concurrent
	// writers cannot deadlock) or build on heads it remembers and commit with a
	// compare-and-set, locking and calling build again when the heads moved; build is
	// pure, so that is allowed. Two writers appending to one chain are serialised on
	// its head: no seq or prev_hash is ever used twice.
	AppendBatch(ctx context.Context, chains []Chain, build BuildFunc) error
	// Head returns the committed head of a chain, or ErrNotFound.
	Head(ctx context.Context, chainID string) (Head, error)
	// SaveCheckpoint stores a checkpoint signed over a committed event and advances the
	// chain's checkpoint head if it is newer. Saving the same checkpoint twice is a no-op.
	SaveCheckpoint(ctx context.Context, cp SignedCheckpoint) error

	// ListEvents returns a page of the tenant's events and the cursor of the next page
	// ("" on the last page).
	ListEvents(ctx context.Context, tenantID string, q Query) ([]Event, string, error)
	// EventProof returns the proof of one of the tenant's events, or ErrNotFound.
	EventProof(ctx context.Context, tenantID, eventID string) (Proof, error)
	// LatestCheckpoints returns the newest checkpoint of each of the tenant's chains,
	// ordered by chain id.
	LatestCheckpoints(ctx context.Context, tenantID string) ([]SignedCheckpoint, error)

	// Chains lists every chain, ordered by ID (for export and verification).
	Chains(ctx context.Context) ([]Head, error)
	// ChainEvents returns up to limit events of a chain with seq > afterSeq, by seq.
	ChainEvents(ctx context.Context, chainID string, afterSeq int64, limit int) ([]Event, error)
	// FirstSeqSince returns the seq of the chain's first event at or after t, or 0.
	FirstSeqSince(ctx context.Context, chainID string, t time.Time) (int64, error)
	// Checkpoints returns every checkpoint of a chain with seq ≥ fromSeq, by seq.
	Checkpoints(ctx context.Context, chainID string, fromSeq int64) ([]SignedCheckpoint, error)
}
