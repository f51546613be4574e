package audit_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
)

func TestVerifyRules(t *testing.T) {
	s := vectorSigner(t)
	keys := map[string][]byte{s.KeyID(): s.PublicKey()}
	const chain = "ten_v/w1"
	mk := func(n int) []audit.Event {
		var evs []audit.Event
		for i := 1; i <= n; i++ {
			evs = append(evs, vectorEvent(chain, "ten_v", int64(i)))
		}
		return link(evs)
	}
	evs := mk(6)
	cp3, cp6 := checkpointOver(t, s, evs[2]), checkpointOver(t, s, evs[5])
	tests := []struct {
		name   string
		evs    []audit.Event
		cps    []audit.SignedCheckpoint
		opts   audit.VerifyOptions
		seq    int64
		member string
	}{
		{"valid", evs, []audit.SignedCheckpoint{cp3, cp6}, audit.VerifyOptions{}, 0, ""},
		{"empty export", nil, nil, audit.VerifyOptions{}, 0, ""},
		{"unsigned tail within limits", evs, []audit.SignedCheckpoint{cp3}, audit.VerifyOptions{}, 0, ""},
		{"no checkpoint at all, short", evs[:2], nil, audit.VerifyOptions{}, 0, ""},
		{"unsigned tail too long in events", evs, nil, audit.VerifyOptions{MaxUnsigned: 5}, 5, "checkpoint"},
		{"unsigned tail too long in time", evs, []audit.SignedCheckpoint{cp3}, audit.VerifyOptions{MaxCheckpointLag: time.Second}, 6, "checkpoint"},
		{"partial from seq 3", evs[2:], []audit.SignedCheckpoint{cp3, cp6}, audit.VerifyOptions{Partial: true}, 0, ""},
		{"partial not allowed", evs[2:], []audit.SignedCheckpoint{cp3, cp6}, audit.VerifyOptions{}, 1, "seq"},
		{"partial still checks links", append([]audit.Event{evs[2]}, evs[4:]...), nil, audit.VerifyOptions{Partial: true}, 4, "seq"},
		{"checkpoint before a partial export", evs[3:], []audit.SignedCheckpoint{cp3, cp6}, audit.VerifyOptions{Partial: true}, 0, ""},
		{"checkpoint of an absent chain", evs[:0], []audit.SignedCheckpoint{cp3}, audit.VerifyOptions{}, 1, "seq"},
		{"malformed note", evs, []audit.SignedCheckpoint{{Note: "x", KeyID: s.KeyID()}}, audit.VerifyOptions{}, 0, "note"},
		{"bad signature encoding", evs, []audit.SignedCheckpoint{{Note: cp3.Note, KeyID: cp3.KeyID, Signature: "!!"}}, audit.VerifyOptions{}, 3, "signature"},
		{"no chain id", func() []audit.Event { e := mk(1); e[0].ChainID = ""; return e }(), nil, audit.VerifyOptions{}, 1, "chain_id"},
		{"bad time", func() []audit.Event { e := mk(1); e[0].Time = "yesterday"; return link(e) }(), nil, audit.VerifyOptions{}, 1, "time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := audit.Verify(tc.evs, tc.cps, keys, tc.opts)
			if tc.member == "" {
				if err != nil {
					t.Fatalf("Verify = %v", err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want *VerifyError", err)
			}
			if ve.Seq != tc.seq || ve.Member != tc.member {
				t.Errorf("Verify = %v; want seq %d member %s", ve, tc.seq, tc.member)
			}
			if !strings.Contains(ve.Error(), tc.member) {
				t.Errorf("message %q does not name the member", ve.Error())
			}
		})
	}
	// A key whose id does not match its bytes is refused.
	bad := map[string][]byte{s.KeyID(): []byte("short")}
	var ve *audit.VerifyError
	if err := audit.Verify(evs, []audit.SignedCheckpoint{cp6}, bad, audit.VerifyOptions{}); !errors.As(err, &ve) || ve.Member != "key_id" {
		t.Errorf("mismatched key: %v", err)
	}
}

func TestCheckpointNote(t *testing.T) {
	c := audit.Checkpoint{ChainID: "ten_a/w1", Seq: 42, Hash: strings.Repeat("ab", 32), Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	note, err := c.Note()
	if err != nil {
		t.Fatal(err)
	}
	want := "quantaseal.audit/v1\nten_a/w1\n42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n2026-01-02T03:04:05.000000006Z\n"
	if note != want {
		t.Fatalf("note = %q, want %q", note, want)
	}
	back, err := audit.ParseCheckpointNote(note)
	if err != nil || back.ChainID != c.ChainID || back.Seq != c.Seq || back.Hash != c.Hash || !back.Time.Equal(c.Time) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
	bad := map[string]string{
		"no final newline": strings.TrimSuffix(want, "\n"),
		"extra line":       want + "x\n",
		"header":           strings.Replace(want, "quantaseal.audit/v1", "quantaseal.audit/v2", 1),
		"empty chain":      strings.Replace(want, "ten_a/w1", "", 1),
		"seq zero":         strings.Replace(want, "\n42\n", "\n0\n", 1),
		"seq leading zero": strings.Replace(want, "\n42\n", "\n042\n", 1),
		"seq sign":         strings.Replace(want, "\n42\n", "\n+42\n", 1),
		"short hash":       strings.Replace(want, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", "q6ur", 1),
		"unpadded hash":    strings.Replace(want, "q6s=", "q6s", 1),
		"local time":       strings.Replace(want, "06Z", "06+01:00", 1),
		"crlf":             strings.ReplaceAll(want, "\n", "\r\n"),
	}
	for name, n := range bad {
		if _, err := audit.ParseCheckpointNote(n); err == nil {
			t.Errorf("%s: ParseCheckpointNote accepted %q", name, n)
		}
	}
	for name, c := range map[string]audit.Checkpoint{
		"bad hash":    {ChainID: "a", Seq: 1, Hash: "zz"},
		"newline":     {ChainID: "a\nb", Seq: 1, Hash: strings.Repeat("0", 64)},
		"seq 0":       {ChainID: "a", Seq: 0, Hash: strings.Repeat("0", 64)},
		"empty chain": {Seq: 1, Hash: strings.Repeat("0", 64)},
	} {
		if _, err := c.Note(); err == nil {
			t.Errorf("%s: Note() succeeded", name)
		}
	}
}

func TestSeedSigner(t *testing.T) {
	s := vectorSigner(t)
	if len(s.KeyID()) != 16 || s.KeyID() != audit.KeyID(s.PublicKey()) {
		t.Errorf("key id %q", s.KeyID())
	}
	a, _ := s.Sign([]byte("note"))
	b, _ := s.Sign([]byte("note"))
	if string(a) != string(b) {
		t.Error("signatures are not deterministic")
	}
	if _, err := audit.NewSeedSigner(secretOf(make([]byte, 31))); err == nil {
		t.Error("a 31-byte seed was accepted")
	}
}
