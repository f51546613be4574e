package envelope_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/envelope"
)

var benchSizes = []int{1 << 10, 16 << 10, 1 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkSeal is the gateway's hot path: Seal (encapsulate, derive, encrypt, hedged
// ML-DSA-65 sign, HMAC) plus the JSON encoding.
func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			in := f.input(make([]byte, n))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				e, err := envelope.Seal(in, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.MarshalJSON(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen is the client side: parse, verify both signatures, decapsulate, decrypt.
func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	keys := f.keys()
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			data := f.seal(b, f.input(make([]byte, n)))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := envelope.Open(data, keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The primitives alone, so later performance work knows the ceiling.

func BenchmarkMLKEM768Encapsulate(b *testing.B) {
	pk, _, _ := mlkem768.GenerateKeyPair(nil)
	ct := make([]byte, mlkem768.CiphertextSize)
	ss := make([]byte, mlkem768.SharedKeySize)
	b.ReportAllocs()
	for b.Loop() {
		pk.EncapsulateTo(ct, ss, nil)
	}
}

func BenchmarkMLKEM768Decapsulate(b *testing.B) {
	pk, sk, _ := mlkem768.GenerateKeyPair(nil)
	ct := make([]byte, mlkem768.CiphertextSize)
	ss := make([]byte, mlkem768.SharedKeySize)
	pk.EncapsulateTo(ct, ss, nil)
	b.ReportAllocs()
	for b.Loop() {
		sk.DecapsulateTo(ss, ct)
	}
}

func BenchmarkMLDSA65Sign(b *testing.B) {
	_, sk, _ := mldsa65.GenerateKey(nil)
	msg := make([]byte, 1<<10)
	sig := make([]byte, mldsa65.SignatureSize)
	b.ReportAllocs()
	for b.Loop() {
		if err := mldsa65.SignTo(sk, msg, []byte("quantaseal-envelope-v1"), true, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMLDSA65Verify(b *testing.B) {
	pk, sk, _ := mldsa65.GenerateKey(nil)
	msg := make([]byte, 1<<10)
	sig := make([]byte, mldsa65.SignatureSize)
	_ = mldsa65.SignTo(sk, msg, []byte("quantaseal-envelope-v1"), true, sig)
	b.ReportAllocs()
	for b.Loop() {
		if !mldsa65.Verify(pk, msg, []byte("quantaseal-envelope-v1"), sig) {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkAES256GCMSeal(b *testing.B) {
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			pt := make([]byte, n)
			dst := make([]byte, 0, n+16)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				aead.Seal(dst[:0], nonce, pt, nil)
			}
		})
	}
}

func BenchmarkHMACSHA512(b *testing.B) {
	key := make([]byte, 64)
	rand.Read(key)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			msg := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				mac := hmac.New(sha512.New, key)
				mac.Write(msg)
				mac.Sum(nil)
			}
		})
	}
}
