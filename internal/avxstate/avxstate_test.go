package avxstate_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"

	"github.com/quantaseal/gateway/internal/avxstate"
)

// TestCleanKeepsResults checks that Clean leaves the computation around it intact:
// VZEROUPPER only zeroes the upper halves of the YMM registers, which no Go code
// expects to survive a call. Run on a CPU with AVX2 it also executes the instruction,
// so a wrong CPU-feature guard fails here with SIGILL.
func TestCleanKeepsResults(t *testing.T) {
	pk, sk, err := mlkem768.GenerateKeyPair(bytes.NewReader(make([]byte, 64)))
	if err != nil {
		t.Fatal(err)
	}
	derive := func(clean bool) (ct, key []byte) {
		ct = make([]byte, mlkem768.CiphertextSize)
		ss := make([]byte, mlkem768.SharedKeySize)
		pk.EncapsulateTo(ct, ss, make([]byte, 32))
		if clean {
			avxstate.Clean()
		}
		key, err := hkdf.Key(sha256.New, ss, ct, "avxstate test", 32)
		if err != nil {
			t.Fatal(err)
		}
		return ct, key
	}
	ct1, k1 := derive(false)
	ct2, k2 := derive(true)
	if !bytes.Equal(ct1, ct2) || !bytes.Equal(k1, k2) {
		t.Fatal("Clean changed the result of a deterministic encapsulation and derivation")
	}
	ss := make([]byte, mlkem768.SharedKeySize)
	sk.DecapsulateTo(ss, ct1)
	avxstate.Clean()
	k3, err := hkdf.Key(sha256.New, ss, ct1, "avxstate test", 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1, k3) {
		t.Fatal("decapsulation after Clean derived a different key")
	}
}

// BenchmarkHKDFAfterEncapsulate is the cost this package removes: an HKDF-SHA-256 (SSE
// SHA-NI on amd64) right after circl's AVX2 ML-KEM-768 encapsulation, with and without
// Clean in between.
func BenchmarkHKDFAfterEncapsulate(b *testing.B) {
	pk, _, err := mlkem768.GenerateKeyPair(nil)
	if err != nil {
		b.Fatal(err)
	}
	ct := make([]byte, mlkem768.CiphertextSize)
	ss := make([]byte, mlkem768.SharedKeySize)
	seed := make([]byte, 32)
	for _, clean := range []bool{false, true} {
		name := "dirty"
		if clean {
			name = "clean"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				pk.EncapsulateTo(ct, ss, seed)
				if clean {
					avxstate.Clean()
				}
				if _, err := hkdf.Key(sha256.New, ss, ct, "avxstate bench", 32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
