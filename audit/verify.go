package audit

import (
	"fmt"
	"time"
)

// Defaults of [VerifyOptions] and of the checkpoint policy in [Config].
const (
	// DefaultCheckpointEvery is the largest number of events a chain may have after its
	// newest checkpoint: the gateway signs at the latest every 1,000th event (audit-v1).
	DefaultCheckpointEvery = 1000
	// DefaultCheckpointInterval is how long an event may stay unsigned (audit-v1: "every
	// 5 seconds of activity").
	DefaultCheckpointInterval = 5 * time.Second
	// DefaultMaxCheckpointLag adds 5 s of slack to the interval for commit latency and
	// clock differences between gateway replicas appending to one chain.
	DefaultMaxCheckpointLag = DefaultCheckpointInterval + 5*time.Second
)

// VerifyOptions tunes [Verify]. The zero value applies the defaults.
type VerifyOptions struct {
	// MaxCheckpointLag bounds the unsigned tail of each chain in time: the last event
	// must not be later than the first event after the newest checkpoint by more than
	// this. Zero means DefaultMaxCheckpointLag.
	MaxCheckpointLag time.Duration
	// MaxUnsigned bounds the unsigned tail in events: a chain may have at most
	// MaxUnsigned-1 events after its newest checkpoint. Zero means DefaultCheckpointEvery.
	MaxUnsigned int64
	// Partial accepts chains that start after seq 1 (an export made with --since). The
	// first exported event's prev_hash is then taken on trust: the export proves its own
	// integrity and its checkpoints, not the part of the chain it left out.
	Partial bool
}

// VerifyError describes the first break Verify found.
type VerifyError struct {
	ChainID string
	// Seq is the sequence number at which the chain breaks: the event whose check
	// failed, or the first missing one.
	Seq int64
	// Member names what failed: an event member ("seq", "prev_hash", "hash",
	// "chain_id", "tenant_id", "time") or a checkpoint part ("note", "key_id",
	// "signature", "checkpoint").
	Member string
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit chain %q broken at seq %d (%s): %s", e.ChainID, e.Seq, e.Member, e.Reason)
}

type chainState struct {
	first    int64 // seq of the first event seen
	events   []Event
	times    []time.Time
	newestCP int64 // highest seq covered by a checkpoint, 0 if none
}

func (s *chainState) last() *Event { return &s.events[len(s.events)-1] }

// Verify checks an export: events (in export order) and checkpoints, against the
// ML-DSA-65 public keys by key id. It returns nil or a *VerifyError for the first break,
// checking in this order (see docs/spec/audit-v1.md, Verification):
//
//  1. each event in order: a chain id; seq one more than the previous event of its chain
//     (1 for the first); prev_hash equal to the previous hash (ZeroHash for seq 1); hash
//     equal to [Event.ComputeHash]; the chain's tenant id; a parseable time.
//  2. each checkpoint: a well-formed note; a known key and a valid signature; its chain
//     has events up to its seq (else the chain was truncated); its hash equals the hash
//     of the event at its seq.
//  3. each chain's unsigned tail (events after its newest checkpoint) has fewer than
//     MaxUnsigned events and spans at most MaxCheckpointLag.
func Verify(events []Event, checkpoints []SignedCheckpoint, keys map[string][]byte, opts VerifyOptions) error {
	if opts.MaxCheckpointLag <= 0 {
		opts.MaxCheckpointLag = DefaultMaxCheckpointLag
	}
	if opts.MaxUnsigned <= 0 {
		opts.MaxUnsigned = DefaultCheckpointEvery
	}
	chains := map[string]*chainState{}
	var order []string
	for i := range events {
		e := &events[i]
		if e.ChainID == "" {
			return &VerifyError{Seq: e.Seq, Member: "chain_id", Reason: fmt.Sprintf("event %d of the export has no chain id", i+1)}
		}
		st := chains[e.ChainID]
		wantSeq, wantPrev := int64(1), ZeroHash
		if st == nil {
			if opts.Partial && e.Seq > 1 {
				wantSeq, wantPrev = e.Seq, e.PrevHash
			}
		} else {
			wantSeq, wantPrev = st.last().Seq+1, st.last().Hash
		}
		fail := func(member, format string, args ...any) error {
			return &VerifyError{ChainID: e.ChainID, Seq: wantSeq, Member: member, Reason: fmt.Sprintf(format, args...)}
		}
		if e.Seq != wantSeq {
			return fail("seq", "event %s has seq %d, want %d", e.ID, e.Seq, wantSeq)
		}
		if e.PrevHash != wantPrev {
			return fail("prev_hash", "event %s links to %.16s…, the previous event's hash is %.16s…", e.ID, e.PrevHash, wantPrev)
		}
		if got := e.ComputeHash(); e.Hash != got {
			return fail("hash", "event %s has hash %.16s…, its content hashes to %.16s…", e.ID, e.Hash, got)
		}
		if st != nil && e.TenantID != st.events[0].TenantID {
			return fail("tenant_id", "event %s has tenant %q in a chain of tenant %q", e.ID, e.TenantID, st.events[0].TenantID)
		}
		t, err := e.Timestamp()
		if err != nil {
			return fail("time", "event %s: time %q is not RFC 3339", e.ID, e.Time)
		}
		if st == nil {
			st = &chainState{first: e.Seq}
			chains[e.ChainID] = st
			order = append(order, e.ChainID)
		}
		st.events = append(st.events, *e)
		st.times = append(st.times, t)
	}

	for i, sc := range checkpoints {
		c, err := ParseCheckpointNote(sc.Note)
		if err != nil {
			return &VerifyError{Member: "note", Reason: fmt.Sprintf("checkpoint %d: %v", i+1, err)}
		}
		fail := func(seq int64, member, format string, args ...any) error {
			return &VerifyError{ChainID: c.ChainID, Seq: seq, Member: member, Reason: fmt.Sprintf(format, args...)}
		}
		if member, reason := verifySignature(sc, keys); member != "" {
			return fail(c.Seq, member, "checkpoint at seq %d: %s", c.Seq, reason)
		}
		st := chains[c.ChainID]
		if st == nil {
			return fail(1, "seq", "truncated: a checkpoint signs seq %d but the export has no events of this chain", c.Seq)
		}
		if last := st.last().Seq; c.Seq > last {
			return fail(last+1, "seq", "truncated: a checkpoint signs seq %d but the chain ends at seq %d", c.Seq, last)
		}
		if c.Seq >= st.first {
			if h := st.events[c.Seq-st.first].Hash; h != c.Hash {
				return fail(c.Seq, "checkpoint", "checkpoint signs hash %.16s…, the event at seq %d has %.16s…", c.Hash, c.Seq, h)
			}
		}
		st.newestCP = max(st.newestCP, c.Seq)
	}

	for _, id := range order {
		st := chains[id]
		covered := max(st.newestCP, st.first-1)
		last := st.last().Seq
		if last <= covered {
			continue
		}
		if last-covered >= opts.MaxUnsigned {
			return &VerifyError{ChainID: id, Seq: covered + opts.MaxUnsigned, Member: "checkpoint",
				Reason: fmt.Sprintf("events %d to %d follow the newest checkpoint (seq %d); one is due every %d events", covered+1, last, st.newestCP, opts.MaxUnsigned)}
		}
		u := covered + 1 - st.first
		deadline := st.times[u].Add(opts.MaxCheckpointLag)
		for j := u; j < int64(len(st.events)); j++ {
			if st.times[j].After(deadline) {
				return &VerifyError{ChainID: id, Seq: st.events[j].Seq, Member: "checkpoint",
					Reason: fmt.Sprintf("event at seq %d is unsigned since %s, more than %s before the event at seq %d", covered+1, st.events[u].Time, opts.MaxCheckpointLag, st.events[j].Seq)}
			}
		}
	}
	return nil
}
