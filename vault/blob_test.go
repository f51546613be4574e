package vault

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzOpenSealed (only with a written reason: it is the v1 known-answer vector)")

// The fixed test key and binding of the checked-in vector and fuzz corpus.
var (
	vectorSeed    = bytes.Repeat([]byte{0x42}, mlkem768.KeySeedSize)
	vectorBinding = binding{kind: kindCredential, tenantID: "ten_vector", id: "vlt_vector", typ: CredentialTypeAPIKey}
	vectorPlain   = []byte(`{"type":"api_key","token":"vector-token"}`)
	corpusDir     = filepath.Join("testdata", "fuzz", "FuzzOpenSealed")
)

func vectorKey() (*mlkem768.PublicKey, *mlkem768.PrivateKey) {
	return mlkem768.NewKeyFromSeed(vectorSeed)
}

// corpus is the seed corpus: one valid blob (the known-answer vector) and malformed
// variants of it.
func corpus(valid []byte) map[string][]byte {
	trunc := valid[:minBlobLen-1]
	badVersion := bytes.Clone(valid)
	badVersion[3] = 2
	badKind := bytes.Clone(valid)
	badKind[4] = 9
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-1] ^= 0x80
	return map[string][]byte{
		"valid":       valid,
		"empty":       {},
		"magic_only":  []byte("QSV\x01\x01"),
		"truncated":   trunc,
		"bad_version": badVersion,
		"bad_kind":    badKind,
		"flipped_tag": flipped,
	}
}

func readCorpusFile(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a fuzz corpus file", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// TestSealedVector opens the checked-in v1 blob with the fixed key: a change to the format
// or the key schedule breaks it. With -update it writes a fresh vector and corpus.
func TestSealedVector(t *testing.T) {
	if *update {
		pub, _ := vectorKey()
		valid, err := seal(pub, vectorBinding, vectorPlain)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range corpus(valid) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(corpusDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, priv := vectorKey()
	valid := readCorpusFile(t, "valid")
	if len(valid) != 1162 { // docs/spec/vault-v1.md §1
		t.Errorf("vector is %d bytes, want 1162", len(valid))
	}
	pt, err := open(priv, vectorBinding, valid)
	if err != nil {
		t.Fatalf("open vector: %v", err)
	}
	if !bytes.Equal(pt, vectorPlain) {
		t.Errorf("vector plaintext = %q, want %q", pt, vectorPlain)
	}
	for name := range corpus(valid) {
		if name == "valid" {
			continue
		}
		if _, err := open(priv, vectorBinding, readCorpusFile(t, name)); err == nil {
			t.Errorf("corpus %s opened", name)
		}
	}
}

func TestAADLayout(t *testing.T) {
	got := binding{kind: kindSecret, tenantID: "t", id: "hmac_key", typ: ""}.aad()
	want := []byte("QSV\x01\x02\x00\x01t\x00\x08hmac_key\x00\x00")
	if !bytes.Equal(got, want) {
		t.Errorf("aad = %q, want %q", got, want)
	}
	long := binding{kind: kindCredential, tenantID: strings.Repeat("x", maxFieldLen+1)}
	pub, _ := vectorKey()
	if _, err := seal(pub, long, nil); err == nil {
		t.Error("seal accepted a binding field longer than 65535 bytes")
	}
}

func FuzzOpenSealed(f *testing.F) {
	_, priv := vectorKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseBlob(b)
		if err == nil && !bytes.Equal(s.marshal(), b) {
			t.Fatalf("parse/marshal round trip differs")
		}
		pt, err := open(priv, vectorBinding, b)
		if err != nil {
			return
		}
		if !bytes.Equal(pt, vectorPlain) {
			t.Fatalf("forged blob opened to %q", pt)
		}
	})
}

func BenchmarkOpenBlob(b *testing.B) {
	pub, priv := vectorKey()
	blob, err := seal(pub, vectorBinding, vectorPlain)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := open(priv, vectorBinding, blob); err != nil {
			b.Fatal(err)
		}
	}
}
