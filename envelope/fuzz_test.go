package envelope

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

const fuzzCaseName = "list_users 200 with next"

func fuzzCase(t testing.TB, f vectorFile) vectorCase {
	t.Helper()
	for _, c := range f.Cases {
		if c.Name == fuzzCaseName {
			return c
		}
	}
	t.Fatalf("no vector %q", fuzzCaseName)
	return vectorCase{}
}

// FuzzOpen feeds arbitrary bytes to Open under the keys of one vector. Open must never
// panic, must return neither plaintext nor envelope with an error, and may accept only
// an input that decodes to the very envelope that was signed (JSON whitespace, member
// order or escapes may differ; no member value may).
func FuzzOpen(f *testing.F) {
	vf := loadVectors(f)
	c := fuzzCase(f, vf)
	keys := fileCaseKeys(f, c).openKeys(c.TenantID)
	ref, err := Parse(c.Envelope)
	if err != nil {
		f.Fatal(err)
	}
	want := unhex(f, c.Plaintext)
	f.Fuzz(func(t *testing.T, data []byte) {
		pt, e, err := Open(data, keys)
		if err != nil {
			if pt != nil || e != nil {
				t.Fatalf("error %v came with plaintext or envelope", err)
			}
			return
		}
		if diff := cmp.Diff(ref, e); diff != "" {
			t.Fatalf("accepted a changed envelope (-signed +accepted):\n%s", diff)
		}
		if !bytes.Equal(pt, want) {
			t.Fatal("accepted envelope decrypted to a different plaintext")
		}
	})
}

// mutableFields changes one member of an envelope; i and bit choose where. Every
// mutation yields a different value, so Open must refuse the result.
var mutableFields = []func(e *Envelope, i int, bit byte){
	func(e *Envelope, _ int, bit byte) { e.Version ^= 1 << (bit % 31) },
	func(e *Envelope, _ int, _ byte) { e.Success = !e.Success },
	func(e *Envelope, _ int, bit byte) { e.Status ^= 1 << (bit % 31) },
	func(e *Envelope, i int, bit byte) { e.Next = mutateString(e.Next, i, bit) },
	func(e *Envelope, i int, bit byte) { e.IssuedAt = mutateString(e.IssuedAt, i, bit) },
	func(e *Envelope, i int, bit byte) { e.AuditEventID = mutateString(e.AuditEventID, i, bit) },
	func(e *Envelope, i int, bit byte) { mutateBytes(e.Encrypted.CiphertextKEM, i, bit) },
	func(e *Envelope, i int, bit byte) { mutateBytes(e.Encrypted.CiphertextData, i, bit) },
	func(e *Envelope, i int, bit byte) { mutateBytes(e.Encrypted.Nonce, i, bit) },
	func(e *Envelope, i int, bit byte) { e.Encrypted.TenantID = mutateString(e.Encrypted.TenantID, i, bit) },
	func(e *Envelope, i int, bit byte) { e.Encrypted.KeyID = mutateString(e.Encrypted.KeyID, i, bit) },
	func(e *Envelope, i int, bit byte) {
		e.Encrypted.Algorithm = mutateString(e.Encrypted.Algorithm, i, bit)
	},
	func(e *Envelope, i int, bit byte) { mutateBytes(e.Signature.PQCSignature, i, bit) },
	func(e *Envelope, i int, bit byte) { mutateBytes(e.Signature.HMACSignature, i, bit) },
	func(e *Envelope, i int, bit byte) { e.Signature.TenantID = mutateString(e.Signature.TenantID, i, bit) },
	func(e *Envelope, i int, bit byte) { e.Signature.KeyID = mutateString(e.Signature.KeyID, i, bit) },
	func(e *Envelope, i int, bit byte) {
		e.Signature.HMACKeyID = mutateString(e.Signature.HMACKeyID, i, bit)
	},
	func(e *Envelope, i int, bit byte) {
		e.Signature.Algorithm = mutateString(e.Signature.Algorithm, i, bit)
	},
	// Truncation and extension of the body.
	func(e *Envelope, i int, _ byte) {
		e.Encrypted.CiphertextData = e.Encrypted.CiphertextData[:i%len(e.Encrypted.CiphertextData)]
	},
	func(e *Envelope, _ int, bit byte) {
		e.Encrypted.CiphertextData = append(e.Encrypted.CiphertextData, bit)
	},
}

func mutateBytes(b []byte, i int, bit byte) { b[i%len(b)] ^= 1 << (bit % 8) }

func mutateString(s string, i int, bit byte) string {
	if s == "" {
		return string(rune('a' + bit%26))
	}
	b := []byte(s)
	b[i%len(b)] ^= 1 << (bit % 8)
	return string(b)
}

// FuzzOpenMutated changes one member of a valid envelope by one bit (or truncates or
// extends the body) and checks that Open refuses it. Raw-byte fuzzing (FuzzOpen) almost
// never produces a well-formed envelope; this target explores the signed content.
func FuzzOpenMutated(f *testing.F) {
	vf := loadVectors(f)
	c := fuzzCase(f, vf)
	keys := fileCaseKeys(f, c).openKeys(c.TenantID)
	ref, err := Parse(c.Envelope)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, field uint8, index uint32, bit uint8) {
		e := cloneEnvelope(ref)
		mutableFields[int(field)%len(mutableFields)](e, int(index%(1<<20)), bit)
		data, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if pt, got, err := Open(data, keys); err == nil {
			t.Fatalf("opened an envelope with field %d changed: %+v (%d bytes of plaintext)", int(field)%len(mutableFields), got, len(pt))
		}
	})
}

// FuzzSealOpen seals arbitrary strings and bodies: valid UTF-8 must come back exactly
// (through MarshalJSON's escaping and Parse), invalid UTF-8 must be refused by Seal.
func FuzzSealOpen(f *testing.F) {
	k := specKeys(f, "fuzz seal open")
	keys := k.openKeys(tenantA)
	f.Fuzz(func(t *testing.T, next, auditID string, body []byte) {
		in := SealInput{TenantID: tenantA, Recipient: k.response.Public(), Signer: k.signer, HMACKey: k.hmac,
			Status: 200, Next: next, AuditEventID: auditID, IssuedAt: time.Unix(1_795_000_000, 0), Plaintext: body}
		e, err := Seal(in, nil)
		if !utf8.ValidString(next) || !utf8.ValidString(auditID) {
			if err == nil {
				t.Fatal("sealed invalid UTF-8")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		pt, got, err := Open(data, keys)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(pt, body) || got.Next != next || got.AuditEventID != auditID {
			t.Fatalf("round trip changed the values: next %q→%q, audit %q→%q", next, got.Next, auditID, got.AuditEventID)
		}
	})
}
