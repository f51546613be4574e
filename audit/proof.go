package audit

import "fmt"

// VerifyProof checks a single-event proof (as returned by [Store.EventProof]): the
// event's hash, the links of the following events to it, and that the checkpoint is
// validly signed and signs the last of them. A proof without a checkpoint fails: the
// event is not signed yet. Errors are *VerifyError.
func VerifyProof(p Proof, keys map[string][]byte) error {
	chain := append([]Event{p.Event}, p.Following...)
	for i := range chain {
		e := &chain[i]
		fail := func(member, format string, args ...any) error {
			return &VerifyError{ChainID: p.Event.ChainID, Seq: p.Event.Seq + int64(i), Member: member, Reason: fmt.Sprintf(format, args...)}
		}
		if e.ChainID != p.Event.ChainID {
			return fail("chain_id", "event %s belongs to chain %q", e.ID, e.ChainID)
		}
		if e.Seq != p.Event.Seq+int64(i) {
			return fail("seq", "event %s has seq %d", e.ID, e.Seq)
		}
		if i > 0 && e.PrevHash != chain[i-1].Hash {
			return fail("prev_hash", "event %s does not link to the event before it", e.ID)
		}
		if e.Hash != e.ComputeHash() {
			return fail("hash", "event %s: hash does not match its content", e.ID)
		}
	}
	last := chain[len(chain)-1]
	if p.Checkpoint == nil {
		return &VerifyError{ChainID: p.Event.ChainID, Seq: last.Seq, Member: "checkpoint", Reason: "no checkpoint signs this event yet"}
	}
	c, err := ParseCheckpointNote(p.Checkpoint.Note)
	if err != nil {
		return &VerifyError{ChainID: p.Event.ChainID, Seq: last.Seq, Member: "note", Reason: err.Error()}
	}
	if member, reason := verifySignature(*p.Checkpoint, keys); member != "" {
		return &VerifyError{ChainID: c.ChainID, Seq: c.Seq, Member: member, Reason: reason}
	}
	if c.ChainID != last.ChainID || c.Seq != last.Seq || c.Hash != last.Hash {
		return &VerifyError{ChainID: p.Event.ChainID, Seq: last.Seq, Member: "checkpoint",
			Reason: fmt.Sprintf("checkpoint signs %s@%d, not the last event of the proof", c.ChainID, c.Seq)}
	}
	return nil
}
