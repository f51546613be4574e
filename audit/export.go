package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxExportLine bounds one export line; an event is well under 4 KiB.
const maxExportLine = 1 << 20

// exportLine is one line of an export: exactly one of its members is present, and its
// name tags the line (docs/spec/audit-v1.md, Export).
type exportLine struct {
	Event      *Event            `json:"event,omitempty"`
	Checkpoint *SignedCheckpoint `json:"checkpoint,omitempty"`
}

// ExportWriter writes an export as JSON Lines: all events first, then checkpoints.
type ExportWriter struct {
	enc         *json.Encoder
	checkpoints bool
}

// NewExportWriter returns a writer of an export to w.
func NewExportWriter(w io.Writer) *ExportWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &ExportWriter{enc: enc}
}

// Event writes one event line. Events must all come before the first checkpoint.
func (x *ExportWriter) Event(e Event) error {
	if x.checkpoints {
		return errors.New("audit export: event after a checkpoint")
	}
	return x.enc.Encode(exportLine{Event: &e})
}

// Checkpoint writes one checkpoint line.
func (x *ExportWriter) Checkpoint(c SignedCheckpoint) error {
	x.checkpoints = true
	return x.enc.Encode(exportLine{Checkpoint: &c})
}

// ReadExport parses an export strictly: every line is {"event": {...}} with exactly the
// audit-v1 members or {"checkpoint": {"note", "key_id", "signature"}}, no unknown
// members, no duplicate members, and no event after the first checkpoint. Empty lines
// are not allowed.
func ReadExport(r io.Reader) ([]Event, []SignedCheckpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxExportLine)
	var events []Event
	var cps []SignedCheckpoint
	for n := 1; sc.Scan(); n++ {
		ev, cp, err := parseExportLine(sc.Bytes())
		if err != nil {
			return nil, nil, fmt.Errorf("audit export line %d: %w", n, err)
		}
		switch {
		case ev != nil:
			if len(cps) > 0 {
				return nil, nil, fmt.Errorf("audit export line %d: event after a checkpoint", n)
			}
			events = append(events, *ev)
		default:
			cps = append(cps, *cp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("audit export: %w", err)
	}
	return events, cps, nil
}

var checkpointMembers = []string{"key_id", "note", "signature"}

func parseExportLine(line []byte) (*Event, *SignedCheckpoint, error) {
	var outer map[string]json.RawMessage
	if err := strictMembers(line, &outer, nil); err != nil {
		return nil, nil, err
	}
	if len(outer) != 1 {
		return nil, nil, errors.New(`want exactly one of "event" or "checkpoint"`)
	}
	if raw, ok := outer["event"]; ok {
		var e Event
		if err := strictMembers(raw, &e, eventMembers); err != nil {
			return nil, nil, fmt.Errorf("event: %w", err)
		}
		return &e, nil, nil
	}
	if raw, ok := outer["checkpoint"]; ok {
		var c SignedCheckpoint
		if err := strictMembers(raw, &c, checkpointMembers); err != nil {
			return nil, nil, fmt.Errorf("checkpoint: %w", err)
		}
		return nil, &c, nil
	}
	return nil, nil, errors.New(`want exactly one of "event" or "checkpoint"`)
}

// strictMembers decodes the JSON object raw into v, requiring that its members are
// exactly want (any set when want is nil), each once, and nothing follows the object.
func strictMembers(raw []byte, v any, want []string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name := tok.(string) // object keys are always strings
		if seen[name] {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	if want != nil {
		if len(seen) != len(want) {
			return missingOrExtra(seen, want)
		}
		for _, m := range want {
			if !seen[m] {
				return missingOrExtra(seen, want)
			}
		}
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func missingOrExtra(seen map[string]bool, want []string) error {
	w := map[string]bool{}
	for _, m := range want {
		w[m] = true
		if !seen[m] {
			return fmt.Errorf("missing member %q", m)
		}
	}
	for m := range seen {
		if !w[m] {
			return fmt.Errorf("unknown member %q", m)
		}
	}
	return errors.New("wrong members")
}

// ExportOptions selects what [Export] writes.
type ExportOptions struct {
	// ChainID limits the export to one chain ("" = all chains).
	ChainID string
	// Since starts each chain at its first event at or after Since (zero = from seq
	// 1). Such an export verifies only with VerifyOptions.Partial.
	Since time.Time
}

// exportPage is how many events Export reads per query.
const exportPage = 1000

// Export writes the chains of store selected by opts to x: the events of every chain
// (chain by chain, by seq), then the checkpoints at or after each chain's first
// exported event. It returns the number of events and checkpoints written.
func Export(ctx context.Context, store Store, x *ExportWriter, opts ExportOptions) (events, checkpoints int, err error) {
	heads, err := store.Chains(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("audit export: %w", err)
	}
	type span struct {
		chain string
		from  int64
	}
	var spans []span
	for _, h := range heads {
		if opts.ChainID != "" && h.ID != opts.ChainID {
			continue
		}
		from := int64(1)
		if !opts.Since.IsZero() {
			if from, err = store.FirstSeqSince(ctx, h.ID, opts.Since); err != nil {
				return events, 0, fmt.Errorf("audit export %q: %w", h.ID, err)
			}
			if from == 0 {
				continue
			}
		}
		spans = append(spans, span{h.ID, from})
		for after := from - 1; ; {
			page, err := store.ChainEvents(ctx, h.ID, after, exportPage)
			if err != nil {
				return events, 0, fmt.Errorf("audit export %q: %w", h.ID, err)
			}
			for _, e := range page {
				if err := x.Event(e); err != nil {
					return events, 0, fmt.Errorf("audit export: %w", err)
				}
				events++
				after = e.Seq
			}
			if len(page) < exportPage {
				break
			}
		}
	}
	if opts.ChainID != "" && len(spans) == 0 && opts.Since.IsZero() {
		return 0, 0, fmt.Errorf("audit export: chain %q: %w", opts.ChainID, ErrNotFound)
	}
	for _, s := range spans {
		cps, err := store.Checkpoints(ctx, s.chain, s.from)
		if err != nil {
			return events, checkpoints, fmt.Errorf("audit export %q: %w", s.chain, err)
		}
		for _, c := range cps {
			if err := x.Checkpoint(c); err != nil {
				return events, checkpoints, fmt.Errorf("audit export: %w", err)
			}
			checkpoints++
		}
	}
	return events, checkpoints, nil
}
