package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/secret"
)

// -update rewrites testdata/vectors from generateVectors. Only do this with a written
// reason (a new spec version, a new case): the vectors pin the wire format.
var update = flag.Bool("update", false, "rewrite testdata/vectors")

const vectorDir = "testdata/vectors"

// manifest is testdata/vectors/vectors.json.
type manifest struct {
	Comment   string          `json:"comment"`
	Seed      string          `json:"seed_hex"`
	KeyID     string          `json:"key_id"`
	PublicKey string          `json:"public_key"`
	Options   vectorOptions   `json:"options"`
	Canonical []canonicalCase `json:"canonical"`
	Cases     []vectorCase    `json:"cases"`
}

type vectorOptions struct {
	MaxUnsigned             int64 `json:"max_unsigned"`
	MaxCheckpointLagSeconds int64 `json:"max_checkpoint_lag_seconds"`
}

type canonicalCase struct {
	Event audit.Event `json:"event"`
	JCS   string      `json:"jcs_without_hash"`
	Hash  string      `json:"hash"`
}

type vectorCase struct {
	File       string `json:"file"`
	Comment    string `json:"comment"`
	Valid      bool   `json:"valid"`
	ParseError bool   `json:"parse_error,omitempty"`
	ChainID    string `json:"chain_id,omitempty"`
	Seq        int64  `json:"seq,omitempty"`
	Member     string `json:"member,omitempty"`
}

var vectorT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func vectorSigner(t testing.TB) *audit.SeedSigner {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	s, err := audit.NewSeedSigner(secret.FromBytes(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vectorEvent is event n (1-based) of a chain, before chaining.
func vectorEvent(chain, tenant string, n int64) audit.Event {
	e := audit.Event{
		ID: fmt.Sprintf("aud_01KA%022d", n+1000*int64(len(chain)%7)), ChainID: chain, Seq: n,
		Time: vectorT0.Add(time.Duration(n-1) * time.Second).Format(audit.TimeLayout), TenantID: tenant,
		IntegrationID: "int_01KA0000000000000000000001", Operation: "list_users", Caller: "key_01KA0000000000000000000001",
		Method: "GET", Path: "/api/v1/users", QuerySHA256: sha("search=profile.department eq \"Engineering\""),
		PolicySHA256: sha("policy"), Decision: "allow", Status: 200, ResponseSHA256: sha("[]"), ResponseBytes: 2,
	}
	switch n % 4 {
	case 1:
		e.IntegrationID, e.Operation, e.PolicySHA256, e.Decision, e.Reason, e.Status, e.ResponseSHA256, e.ResponseBytes =
			"", "", "", "deny", "invalid_api_key", 401, "", 0
	case 2:
		e.Envelope = true
		e.Path = "/api/v1/users/00u1<é€😀>&\u2028"
	case 3:
		e.Operation, e.Method, e.RequestSHA256, e.Reason, e.Status, e.ResponseSHA256, e.ResponseBytes =
			"create_user", "POST", sha(`{"profile":{}}`), "forwarded", 0, "", 0
	}
	return e
}

func sha(s string) string {
	return hexSHA(s)
}

func link(evs []audit.Event) []audit.Event {
	prev := audit.ZeroHash
	for i := range evs {
		evs[i].PrevHash = prev
		evs[i].Hash = evs[i].ComputeHash()
		prev = evs[i].Hash
	}
	return evs
}

func checkpointOver(t testing.TB, s audit.Signer, e audit.Event) audit.SignedCheckpoint {
	ts, _ := e.Timestamp()
	cp, err := audit.SignCheckpoint(s, audit.Checkpoint{ChainID: e.ChainID, Seq: e.Seq, Hash: e.Hash, Time: ts.Add(500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func exportBytes(t testing.TB, evs []audit.Event, cps []audit.SignedCheckpoint) []byte {
	var buf bytes.Buffer
	x := audit.NewExportWriter(&buf)
	for _, e := range evs {
		if err := x.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cps {
		if err := x.Checkpoint(c); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// generateVectors returns every vector file by name, deterministically.
func generateVectors(t testing.TB) map[string][]byte {
	s := vectorSigner(t)
	const ca, cb = "ten_01KA0000000000000000000001/w1", "ten_01KA0000000000000000000001/w2"
	tenant := "ten_01KA0000000000000000000001"
	chainA := func() []audit.Event {
		var evs []audit.Event
		for n := int64(1); n <= 8; n++ {
			evs = append(evs, vectorEvent(ca, tenant, n))
		}
		evs[3].IntentID = evs[2].ID // the outcome of the intent at seq 3
		evs[3].Reason, evs[3].Status = "", 201
		return link(evs)
	}
	a := chainA()
	b := link([]audit.Event{vectorEvent(cb, tenant, 1), vectorEvent(cb, tenant, 2)})
	cpsFor := func(a []audit.Event) []audit.SignedCheckpoint {
		return []audit.SignedCheckpoint{checkpointOver(t, s, a[2]), checkpointOver(t, s, a[5]), checkpointOver(t, s, b[1]), checkpointOver(t, s, a[7])}
	}
	// interleave writes A1 A2 B1 A3 A4 B2 A5… — chains may interleave in an export.
	interleave := func(a []audit.Event) []audit.Event {
		var out []audit.Event
		for i, e := range a {
			out = append(out, e)
			if i == 1 {
				out = append(out, b[0])
			}
			if i == 3 {
				out = append(out, b[1])
			}
		}
		return out
	}
	std := func(a []audit.Event) []byte { return exportBytes(t, interleave(a), cpsFor(a)) }
	cps := cpsFor(a)

	files := map[string][]byte{}
	m := manifest{
		Comment: "audit-v1 test vectors; see docs/spec/audit-v1.md#test-vectors. Signed deterministically " +
			"(FIPS 204 deterministic ML-DSA-65) with the key derived from seed_hex.",
		Seed: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", KeyID: s.KeyID(),
		PublicKey: base64.StdEncoding.EncodeToString(s.PublicKey()),
		Options:   vectorOptions{MaxUnsigned: 3, MaxCheckpointLagSeconds: 10},
	}
	for _, e := range []audit.Event{a[0], a[1], a[2]} {
		c, _ := audit.Canonicalize(e)
		var withoutHash map[string]any
		_ = json.Unmarshal(c, &withoutHash)
		delete(withoutHash, "hash")
		jcs, _ := audit.Canonicalize(withoutHash)
		m.Canonical = append(m.Canonical, canonicalCase{Event: e, JCS: string(jcs), Hash: e.Hash})
	}
	add := func(file, comment string, data []byte, valid bool, seq int64, member string) {
		files[file] = data
		c := vectorCase{File: file, Comment: comment, Valid: valid}
		if !valid {
			c.ChainID, c.Seq, c.Member = ca, seq, member
		}
		m.Cases = append(m.Cases, c)
	}
	mut := func(f func(a []audit.Event) []audit.Event) []audit.Event { return f(chainA()) }

	add("valid.jsonl", "two interleaved chains with checkpoints", std(a), true, 0, "")
	add("edit-member.jsonl", "status of seq 2 changed", exportBytes(t, interleave(mut(func(a []audit.Event) []audit.Event {
		a[1].Status = 500
		return a
	})), cps), false, 2, "hash")
	add("edit-and-rehash.jsonl", "seq 2 changed and its hash recomputed", exportBytes(t, interleave(mut(func(a []audit.Event) []audit.Event {
		a[1].Status = 500
		a[1].Hash = a[1].ComputeHash()
		return a
	})), cps), false, 3, "prev_hash")
	add("first-prev-hash.jsonl", "seq 1 links to a non-zero hash (rehashed)", exportBytes(t, interleave(mut(func(a []audit.Event) []audit.Event {
		a[0].PrevHash = strings.Repeat("1", 64)
		a[0].Hash = a[0].ComputeHash()
		return a
	})), cps), false, 1, "prev_hash")
	add("delete-first.jsonl", "seq 1 removed", exportBytes(t, append(append([]audit.Event{}, a[1:]...), b...), cps), false, 1, "seq")
	add("delete-middle.jsonl", "seq 4 removed", exportBytes(t, append(append(append([]audit.Event{}, a[:3]...), a[4:]...), b...), cps), false, 4, "seq")
	add("reorder.jsonl", "seq 4 and 5 swapped", exportBytes(t, append(append([]audit.Event{}, a[0], a[1], a[2], a[4], a[3], a[5], a[6], a[7]), b...), cps), false, 4, "seq")
	forged := a[2]
	forged.ID, forged.Status, forged.Decision = "aud_01KA9999999999999999999999", 200, "allow"
	forged.Hash = forged.ComputeHash()
	add("insert.jsonl", "a forged but well-linked seq 3 inserted before the real one", exportBytes(t, append(append([]audit.Event{}, a[0], a[1], forged, a[2], a[3], a[4], a[5], a[6], a[7]), b...), cps), false, 4, "seq")
	add("truncate.jsonl", "seq 7 and 8 removed; the checkpoint at 8 remains", exportBytes(t, append(append([]audit.Event{}, a[:6]...), b...), cps), false, 7, "seq")
	add("truncate-with-checkpoints.jsonl", "seq 8 and the checkpoints at 6 and 8 removed: 4 unsigned events > max_unsigned-1",
		exportBytes(t, append(append([]audit.Event{}, a[:7]...), b...), []audit.SignedCheckpoint{cps[0], cps[2]}), false, 6, "checkpoint")
	late := chainA()
	late[7].Time = vectorT0.Add(37 * time.Second).Format(audit.TimeLayout)
	late = link(late)
	add("unsigned-too-long.jsonl", "seq 8 is 31 s after the first unsigned event (7) and no checkpoint covers them",
		exportBytes(t, interleave(late), cps[:3]), false, 8, "checkpoint")
	tenantMoved := chainA()
	tenantMoved[4].TenantID = "ten_01KA0000000000000000000002"
	tenantMoved = link(tenantMoved)
	add("tenant-mismatch.jsonl", "seq 5 (fully rehashed chain) names another tenant", exportBytes(t, interleave(tenantMoved), cpsFor(tenantMoved)), false, 5, "tenant_id")

	badNote := cps[1]
	badNote.Note = strings.Replace(badNote.Note, "\n6\n", "\n5\n", 1)
	add("checkpoint-note-edited.jsonl", "the checkpoint at 6 edited to claim seq 5", exportBytes(t, interleave(a), []audit.SignedCheckpoint{cps[0], badNote, cps[2], cps[3]}), false, 5, "signature")
	unknown := cps[1]
	unknown.KeyID = "0000000000000000"
	add("checkpoint-unknown-key.jsonl", "the checkpoint at 6 names an unknown key", exportBytes(t, interleave(a), []audit.SignedCheckpoint{cps[0], unknown, cps[2], cps[3]}), false, 6, "key_id")
	noCtx := cps[1]
	sig := make([]byte, mldsa65.SignatureSize)
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i)
	}
	_, priv := mldsa65.NewKeyFromSeed(&seed)
	if err := mldsa65.SignTo(priv, []byte(noCtx.Note), nil, false, sig); err != nil {
		t.Fatal(err)
	}
	noCtx.Signature = base64.StdEncoding.EncodeToString(sig)
	add("checkpoint-wrong-context.jsonl", "the checkpoint at 6 signed with an empty context string", exportBytes(t, interleave(a), []audit.SignedCheckpoint{cps[0], noCtx, cps[2], cps[3]}), false, 6, "signature")
	wrongHash := a[5]
	wrongHash.Hash = a[4].Hash
	add("checkpoint-wrong-hash.jsonl", "a validly signed checkpoint at 6 over the hash of seq 5", exportBytes(t, interleave(a), []audit.SignedCheckpoint{cps[0], checkpointOver(t, s, wrongHash), cps[2], cps[3]}), false, 6, "checkpoint")

	valid := string(std(a))
	lines := strings.SplitAfter(valid, "\n")
	parseCase := func(file, comment, data string) {
		files[file] = []byte(data)
		m.Cases = append(m.Cases, vectorCase{File: file, Comment: comment, ParseError: true})
	}
	parseCase("parse-missing-member.jsonl", `"intent_id" omitted from the first event`, strings.Replace(valid, `,"intent_id":""`, "", 1))
	parseCase("parse-unknown-member.jsonl", "an extra member in the first event", strings.Replace(valid, `"id":`, `"x":1,"id":`, 1))
	parseCase("parse-duplicate-member.jsonl", "a duplicated member in the first event", strings.Replace(valid, `"status":401`, `"status":401,"status":200`, 1))
	parseCase("parse-event-after-checkpoint.jsonl", "an event line after a checkpoint line", strings.Join(lines[:11], "")+lines[0])
	parseCase("parse-untagged.jsonl", "an event without its tag", strings.Replace(valid, `{"event":`, ``, 1))

	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files["vectors.json"] = append(mj, '\n')
	return files
}

func TestVectorsUpToDate(t *testing.T) {
	files := generateVectors(t)
	if *update {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(vectorDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(vectorDir, name))
		if err != nil {
			t.Fatalf("%v (run go test -run TestVectorsUpToDate -update)", err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s differs from what the code generates: the format changed", name)
		}
	}
}

// TestVectors is the runner: it reads only the checked-in files.
func TestVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	pub, err := base64.StdEncoding.DecodeString(m.PublicKey)
	if err != nil || audit.KeyID(pub) != m.KeyID {
		t.Fatalf("manifest key: %v", err)
	}
	keys := map[string][]byte{m.KeyID: pub}
	opts := audit.VerifyOptions{MaxUnsigned: m.Options.MaxUnsigned, MaxCheckpointLag: time.Duration(m.Options.MaxCheckpointLagSeconds) * time.Second}
	for _, c := range m.Canonical {
		var withHash map[string]any
		b, _ := json.Marshal(c.Event)
		_ = json.Unmarshal(b, &withHash)
		delete(withHash, "hash")
		jcs, err := audit.Canonicalize(withHash)
		if err != nil || string(jcs) != c.JCS {
			t.Errorf("canonical form of %s:\n got  %s\n want %s", c.Event.ID, jcs, c.JCS)
		}
		sum := hexSHA("quantaseal audit v1\x00" + c.JCS)
		if sum != c.Hash || c.Event.ComputeHash() != c.Hash {
			t.Errorf("hash of %s = %s, vector says %s", c.Event.ID, sum, c.Hash)
		}
	}
	for _, c := range m.Cases {
		t.Run(c.File, func(t *testing.T) {
			f, err := os.Open(filepath.Join(vectorDir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			evs, cps, err := audit.ReadExport(f)
			if c.ParseError {
				if err == nil {
					t.Fatal("ReadExport accepted a malformed export")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = audit.Verify(evs, cps, keys, opts)
			if c.Valid {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want *VerifyError", err)
			}
			if ve.ChainID != c.ChainID || ve.Seq != c.Seq || ve.Member != c.Member {
				t.Errorf("Verify = %v; want %s seq %d member %s", ve, c.ChainID, c.Seq, c.Member)
			}
		})
	}
}

func hexSHA(s string) string {
	return hex.EncodeToString(sha256Sum([]byte(s)))
}
