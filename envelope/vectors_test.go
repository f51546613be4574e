package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/internal/id"
)

// update rewrites testdata/vectors.json and the fuzz seed corpora. Use it only for a
// deliberate change of the vectors, and say why in the commit (the format is versioned:
// a change to what v1 envelopes look like is a new version, not an update).
var update = flag.Bool("update", false, "rewrite testdata/vectors.json and the fuzz seed corpus")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the schema of testdata/vectors.json (envelope-v1 "Test vectors").
type vectorFile struct {
	Cases    []vectorCase     `json:"cases"`
	Negative []negativeVector `json:"negative"`
}

type vectorCase struct {
	Name         string          `json:"name"`
	KEMSeed      string          `json:"kem_seed"`
	EncapsSeed   string          `json:"encaps_seed"`
	MLDSASeed    string          `json:"mldsa_seed"`
	HMACKey      string          `json:"hmac_key"`
	Nonce        string          `json:"nonce"`
	TenantID     string          `json:"tenant_id"`
	IssuedAt     string          `json:"issued_at"`
	Success      bool            `json:"success"`
	Status       int             `json:"status"`
	Next         string          `json:"next"`
	AuditEventID string          `json:"audit_event_id"`
	Plaintext    string          `json:"plaintext"`
	Message      string          `json:"message"`
	Envelope     json.RawMessage `json:"envelope"`
}

type negativeVector struct {
	Name     string          `json:"name"`
	Case     string          `json:"case"`
	Envelope json.RawMessage `json:"envelope"`
}

// caseSpec is the input of one positive vector. Seeds are derived from the name, so
// the file can be regenerated bit for bit.
type caseSpec struct {
	name      string
	tenantID  string
	issuedAt  string
	status    int
	next      string
	auditID   string
	plaintext []byte
}

func derive(name, purpose string, n int) []byte {
	sum := sha512.Sum512([]byte("quantaseal envelope v1 test vector\x00" + purpose + "\x00" + name))
	return sum[:n]
}

const (
	tenantA = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7"
	tenantB = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T8"
)

// bigBody is a ≥ 1 MiB system-log-like JSON array, exactly 1 MiB long.
func bigBody() []byte {
	const size = 1 << 20
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"uuid":"evt-%08d","published":"2026-11-29T01:%02d:%02d.000Z","eventType":"user.session.start","outcome":{"result":"SUCCESS"},"actor":{"id":"00u%010d","type":"User"}}`, i, (i/60)%60, i%60, i)
	}
	b.WriteByte(']')
	for b.Len() < size {
		b.WriteByte(' ')
	}
	return b.Bytes()
}

func caseSpecs() []caseSpec {
	return []caseSpec{
		{
			name: "list_users 200", tenantID: tenantA, issuedAt: "2026-11-29T02:00:00Z", status: 200,
			auditID:   "aud_01JDQ90000000000000000000A",
			plaintext: []byte(`[{"id":"00u1a2b3c4d5e6f7g8h9","status":"ACTIVE","profile":{"login":"ada@example.com","department":"Engineering"}}]`),
		},
		{
			name: "deactivate_user 204 empty body", tenantID: tenantA, issuedAt: "2026-11-29T02:00:01Z", status: 204,
			auditID: "aud_01JDQ90000000000000000000B", plaintext: []byte{},
		},
		{
			name: "list_users 200 with next", tenantID: tenantA, issuedAt: "2026-11-29T02:00:02Z", status: 200,
			next: "00ub0oNGTSWTBKOLGLNR", auditID: "aud_01JDQ90000000000000000000C",
			plaintext: []byte(`[{"id":"00ub0oNGTSWTBKOLGLNQ","status":"ACTIVE","profile":{"login":"grace@example.com"}}]`),
		},
		{
			name: "create_user 403", tenantID: tenantB, issuedAt: "2026-11-29T02:00:03Z", status: 403,
			auditID:   "aud_01JDQ90000000000000000000D",
			plaintext: []byte(`{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"oae1QZ9aBcD","errorCauses":[]}`),
		},
		{
			name: "get_user 200 non-ASCII", tenantID: tenantB, issuedAt: "2026-11-29T02:00:04Z", status: 200,
			auditID:   "aud_01JDQ90000000000000000000E",
			plaintext: []byte(`{"id":"00u9z8y7x6w5v4u3t2s1","profile":{"firstName":"Zoë","lastName":"Łukasiewicz","nickName":"山田 太郎","title":"Ελένη — ☃ 🚀","email":"zoë@例え.jp"}}`),
		},
		{
			name: "get_system_log 200 1 MiB", tenantID: tenantA, issuedAt: "2026-11-29T02:00:05Z", status: 200,
			next: "1732845605000_1", auditID: "aud_01JDQ90000000000000000000F", plaintext: bigBody(),
		},
	}
}

// vectorKeys are the keys and randomness of one case.
type vectorKeys struct {
	kemSeed, encapsSeed, mldsaSeed, hmacKey, nonce []byte
	response                                       *ResponseKey
	signer                                         *SigningKey
	hmac                                           *HMACKey
}

func keysFromSeeds(t testing.TB, kemSeed, encapsSeed, mldsaSeed, hmacKey, nonce []byte) vectorKeys {
	t.Helper()
	rk, err := NewResponseKey(kemSeed)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := NewSigningKey(mldsaSeed)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := NewHMACKey(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	return vectorKeys{kemSeed, encapsSeed, mldsaSeed, hmacKey, nonce, rk, sk, hk}
}

func specKeys(t testing.TB, name string) vectorKeys {
	return keysFromSeeds(t, derive(name, "kem_seed", 64), derive(name, "encaps_seed", 32),
		derive(name, "mldsa_seed", 32), derive(name, "hmac_key", 64), derive(name, "nonce", 12))
}

func (k vectorKeys) openKeys(tenantID string) OpenKeys {
	return OpenKeys{TenantID: tenantID, Response: k.response, HMACKey: k.hmac,
		Verifying: map[string]*VerifyingKey{k.signer.KeyID(): k.signer.Public()}}
}

func sealVector(t testing.TB, k vectorKeys, tenantID, issuedAt string, status int, next, auditID string, pt []byte) (*Envelope, []byte) {
	t.Helper()
	at, err := time.Parse(time.RFC3339, issuedAt)
	if err != nil {
		t.Fatal(err)
	}
	e, m, err := seal(SealInput{
		TenantID: tenantID, Recipient: k.response.Public(), Signer: k.signer, HMACKey: k.hmac,
		Status: status, Next: next, AuditEventID: auditID, IssuedAt: at, Plaintext: pt,
	}, k.encapsSeed, k.nonce, false)
	if err != nil {
		t.Fatal(err)
	}
	return e, m
}

func mustJSON(t testing.TB, e *Envelope) json.RawMessage {
	t.Helper()
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// negativeSpec is one negative vector: a change to a valid envelope of a case, and the
// check that must refuse it.
type negativeSpec struct {
	name   string
	base   string
	check  string
	field  string
	mutate func(e *Envelope, k vectorKeys)
}

func flipBit(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i%len(out)] ^= 0x01
	return out
}

// changeChar changes the character at i to another ASCII character.
func changeChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'X' {
		b[i] = 'Y'
	} else {
		b[i] = 'X'
	}
	return string(b)
}

// resign recomputes both signatures, as a gateway holding the keys would.
func resign(e *Envelope, k vectorKeys) {
	m := e.Message()
	sig := make([]byte, SignatureSize)
	if err := signDeterministic(k.signer, m, sig); err != nil {
		panic(err)
	}
	e.Signature.PQCSignature = sig
	e.Signature.HMACSignature = hmacSum(k.hmac, m)
}

func negativeSpecs() []negativeSpec {
	const base = "list_users 200 with next"
	const forbidden = "create_user 403"
	return []negativeSpec{
		{"flipped bit in encrypted.ciphertext_kem", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.CiphertextKEM = flipBit(e.Encrypted.CiphertextKEM, 100)
		}},
		{"flipped bit in encrypted.nonce", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Encrypted.Nonce = flipBit(e.Encrypted.Nonce, 5) }},
		{"flipped bit in encrypted.ciphertext_data", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.CiphertextData = flipBit(e.Encrypted.CiphertextData, 3)
		}},
		{"flipped bit in the GCM tag", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.CiphertextData = flipBit(e.Encrypted.CiphertextData, len(e.Encrypted.CiphertextData)-1)
		}},
		{"flipped bit in signature.pqc_signature", base, CheckMLDSA, "signature.pqc_signature", func(e *Envelope, _ vectorKeys) {
			e.Signature.PQCSignature = flipBit(e.Signature.PQCSignature, 1000)
		}},
		{"flipped bit in signature.hmac_signature", base, CheckHMAC, "signature.hmac_signature", func(e *Envelope, _ vectorKeys) {
			e.Signature.HMACSignature = flipBit(e.Signature.HMACSignature, 63)
		}},
		{"changed character in encrypted.algorithm", base, CheckFormat, "encrypted.algorithm", func(e *Envelope, _ vectorKeys) { e.Encrypted.Algorithm = "ML-KEM-769" }},
		{"changed character in signature.algorithm", base, CheckFormat, "signature.algorithm", func(e *Envelope, _ vectorKeys) { e.Signature.Algorithm = "ML-DSA-65+HMAC-SHA-513" }},
		{"wrong algorithm name ML-KEM-1024", base, CheckFormat, "encrypted.algorithm", func(e *Envelope, _ vectorKeys) { e.Encrypted.Algorithm = "ML-KEM-1024" }},
		{"wrong algorithm name ML-DSA-87+HMAC-SHA-512", base, CheckFormat, "signature.algorithm", func(e *Envelope, _ vectorKeys) { e.Signature.Algorithm = "ML-DSA-87+HMAC-SHA-512" }},
		{"changed character in encrypted.tenant_id", base, CheckTenant, "signature.tenant_id", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.TenantID = changeChar(e.Encrypted.TenantID, 10)
		}},
		{"changed character in signature.tenant_id", base, CheckTenant, "signature.tenant_id", func(e *Envelope, _ vectorKeys) {
			e.Signature.TenantID = changeChar(e.Signature.TenantID, 10)
		}},
		{"tenant mismatch: both tenant ids name another tenant", base, CheckTenant, "encrypted.tenant_id", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.TenantID, e.Signature.TenantID = tenantB, tenantB
		}},
		{"tenant mismatch: validly signed for another tenant", base, CheckTenant, "encrypted.tenant_id", func(e *Envelope, k vectorKeys) {
			e.Encrypted.TenantID, e.Signature.TenantID = tenantB, tenantB
			resign(e, k)
		}},
		{"changed character in encrypted.key_id", base, CheckKey, "encrypted.key_id", func(e *Envelope, _ vectorKeys) { e.Encrypted.KeyID = changeChar(e.Encrypted.KeyID, 0) }},
		{"changed character in signature.key_id", base, CheckKey, "signature.key_id", func(e *Envelope, _ vectorKeys) { e.Signature.KeyID = changeChar(e.Signature.KeyID, 15) }},
		{"changed character in signature.hmac_key_id", base, CheckKey, "signature.hmac_key_id", func(e *Envelope, _ vectorKeys) {
			e.Signature.HMACKeyID = changeChar(e.Signature.HMACKeyID, 7)
		}},
		{"flipped success", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Success = !e.Success }},
		{"flipped success of a 403", forbidden, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Success = !e.Success }},
		{"changed character in status", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Status = 201 }},
		{"403 presented as 200", forbidden, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Status, e.Success = 200, true }},
		{"changed character in next", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Next = changeChar(e.Next, 4) }},
		{"next added to a last page", "list_users 200", CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.Next = "X" }},
		{"changed character in audit_event_id", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) {
			e.AuditEventID = changeChar(e.AuditEventID, len(e.AuditEventID)-1)
		}},
		{"changed character in issued_at", base, CheckSignatures, "signature", func(e *Envelope, _ vectorKeys) { e.IssuedAt = strings.Replace(e.IssuedAt, "02Z", "03Z", 1) }},
		{"version 2", base, CheckFormat, "version", func(e *Envelope, _ vectorKeys) { e.Version = 2 }},
		{"ciphertext_data shorter than a tag", base, CheckFormat, "encrypted.ciphertext_data", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.CiphertextData = e.Encrypted.CiphertextData[:15]
		}},
		{"nonce of 16 bytes", base, CheckFormat, "encrypted.nonce", func(e *Envelope, _ vectorKeys) {
			e.Encrypted.Nonce = append(append([]byte(nil), e.Encrypted.Nonce...), 0, 0, 0, 0)
		}},
		{"validly signed but undecryptable ciphertext", base, CheckAEAD, "encrypted.ciphertext_data", func(e *Envelope, k vectorKeys) {
			e.Encrypted.CiphertextData = flipBit(e.Encrypted.CiphertextData, 0)
			resign(e, k)
		}},
	}
}

func signDeterministic(k *SigningKey, m, sig []byte) error {
	return signTo(k, m, false, sig)
}

// generateVectors builds testdata/vectors.json from caseSpecs and negativeSpecs.
func generateVectors(t testing.TB) []byte {
	t.Helper()
	var f vectorFile
	envs := map[string]*Envelope{}
	for _, c := range caseSpecs() {
		k := specKeys(t, c.name)
		e, m := sealVector(t, k, c.tenantID, c.issuedAt, c.status, c.next, c.auditID, c.plaintext)
		envs[c.name] = e
		f.Cases = append(f.Cases, vectorCase{
			Name:    c.name,
			KEMSeed: hex.EncodeToString(k.kemSeed), EncapsSeed: hex.EncodeToString(k.encapsSeed),
			MLDSASeed: hex.EncodeToString(k.mldsaSeed), HMACKey: hex.EncodeToString(k.hmacKey),
			Nonce:    hex.EncodeToString(k.nonce),
			TenantID: c.tenantID, IssuedAt: c.issuedAt, Success: e.Success, Status: c.status,
			Next: c.next, AuditEventID: c.auditID,
			Plaintext: hex.EncodeToString(c.plaintext), Message: hex.EncodeToString(m),
			Envelope: mustJSON(t, e),
		})
	}
	for _, n := range negativeSpecs() {
		base, ok := envs[n.base]
		if !ok {
			t.Fatalf("negative %q names unknown case %q", n.name, n.base)
		}
		e := cloneEnvelope(base)
		n.mutate(e, specKeys(t, n.base))
		f.Negative = append(f.Negative, negativeVector{Name: n.name, Case: n.base, Envelope: mustJSON(t, e)})
	}
	out, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func cloneEnvelope(e *Envelope) *Envelope {
	c := *e
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	c.Encrypted.CiphertextKEM = cp(e.Encrypted.CiphertextKEM)
	c.Encrypted.CiphertextData = cp(e.Encrypted.CiphertextData)
	c.Encrypted.Nonce = cp(e.Encrypted.Nonce)
	c.Signature.PQCSignature = cp(e.Signature.PQCSignature)
	c.Signature.HMACSignature = cp(e.Signature.HMACSignature)
	return &c
}

// TestVectorsUpToDate regenerates the vectors from their seeds and fails if the
// checked-in file differs; -update rewrites it (and the fuzz seed corpus).
func TestVectorsUpToDate(t *testing.T) {
	got := generateVectors(t)
	if *update {
		if err := os.WriteFile(vectorsPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFuzzCorpus(t)
		t.Logf("rewrote %s (%d bytes) and the fuzz seed corpus", vectorsPath, len(got))
		return
	}
	want, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run go test ./envelope -run Vectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the seeds regenerate (%d vs %d bytes); if the change is deliberate, run go test ./envelope -run Vectors -update and explain why", vectorsPath, len(want), len(got))
	}
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileCaseKeys(t testing.TB, c vectorCase) vectorKeys {
	return keysFromSeeds(t, unhex(t, c.KEMSeed), unhex(t, c.EncapsSeed), unhex(t, c.MLDSASeed), unhex(t, c.HMACKey), unhex(t, c.Nonce))
}

// TestVectors is the one runner over testdata/vectors.json: every case opens to its
// plaintext and message and reseals bit for bit from its seeds; every negative fails
// with the check it was built for.
func TestVectors(t *testing.T) {
	f := loadVectors(t)
	checks := map[string]negativeSpec{}
	for _, n := range negativeSpecs() {
		checks[n.name] = n
	}
	cases := map[string]vectorCase{}
	required := map[string]bool{"empty": false, "large": false, "403": false, "next": false, "non-ascii": false}
	for _, c := range f.Cases {
		cases[c.Name] = c
		t.Run(c.Name, func(t *testing.T) {
			k := fileCaseKeys(t, c)
			pt, e, err := Open(c.Envelope, k.openKeys(c.TenantID))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := unhex(t, c.Plaintext)
			if !bytes.Equal(pt, want) {
				t.Errorf("plaintext differs: got %d bytes, want %d", len(pt), len(want))
			}
			if got := hex.EncodeToString(e.Message()); got != c.Message {
				t.Errorf("message M differs")
			}
			gotMeta := []any{e.Encrypted.TenantID, e.IssuedAt, e.Success, e.Status, e.Next, e.AuditEventID}
			wantMeta := []any{c.TenantID, c.IssuedAt, c.Success, c.Status, c.Next, c.AuditEventID}
			if diff := cmp.Diff(wantMeta, gotMeta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if !id.Valid("ten", c.TenantID) || !id.Valid("aud", c.AuditEventID) {
				t.Errorf("vector ids %q, %q are not valid ids", c.TenantID, c.AuditEventID)
			}
			// Reseal from the file's seeds: the envelope is reproducible bit for bit.
			re, m := sealVector(t, k, c.TenantID, c.IssuedAt, c.Status, c.Next, c.AuditEventID, want)
			if !bytes.Equal(mustJSON(t, re), compactJSON(t, c.Envelope)) {
				t.Errorf("resealing from the seeds gives a different envelope")
			}
			if hex.EncodeToString(m) != c.Message {
				t.Errorf("resealing gives a different M")
			}
			checkWithStdlib(t, c, e)
			switch {
			case len(want) == 0:
				required["empty"] = true
			case len(want) >= 1<<20:
				required["large"] = true
			}
			if c.Status == 403 && !c.Success {
				required["403"] = true
			}
			if c.Next != "" {
				required["next"] = true
			}
			if !isASCII(want) {
				required["non-ascii"] = true
			}
		})
	}
	for kind, ok := range required {
		if !ok {
			t.Errorf("no positive vector covers %s", kind)
		}
	}
	if len(f.Negative) != len(checks) {
		t.Errorf("file has %d negative vectors, the generator %d", len(f.Negative), len(checks))
	}
	for _, n := range f.Negative {
		t.Run("negative/"+n.Name, func(t *testing.T) {
			c, ok := cases[n.Case]
			if !ok {
				t.Fatalf("names unknown case %q", n.Case)
			}
			pt, e, err := Open(n.Envelope, fileCaseKeys(t, c).openKeys(c.TenantID))
			if err == nil {
				t.Fatal("opened a negative vector")
			}
			if pt != nil || e != nil {
				t.Error("returned plaintext or an envelope with an error")
			}
			var oe *OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *OpenError", err)
			}
			spec, ok := checks[n.Name]
			if !ok {
				t.Fatalf("negative %q is not in the generator", n.Name)
			}
			if oe.Check != spec.check || oe.Field != spec.field {
				t.Errorf("refused with %s on %s (%v), want %s on %s", oe.Check, oe.Field, err, spec.check, spec.field)
			}
		})
	}
}

// checkWithStdlib redoes the KEM and AEAD half of a case with the standard library's
// independent ML-KEM (crypto/mlkem): the same key from the seed, the same ciphertext from
// the encapsulation seed, and the plaintext from HKDF and AES-GCM as the spec writes them.
func checkWithStdlib(t *testing.T, c vectorCase, e *Envelope) {
	t.Helper()
	dk, err := mlkem.NewDecapsulationKey768(unhex(t, c.KEMSeed))
	if err != nil {
		t.Fatal(err)
	}
	ek := dk.EncapsulationKey().Bytes()
	if got := KeyID(ek); got != e.Encrypted.KeyID {
		t.Errorf("stdlib key id %s, envelope %s", got, e.Encrypted.KeyID)
	}
	_, ct, err := mlkemtest.Encapsulate768(dk.EncapsulationKey(), unhex(t, c.EncapsSeed))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ct, e.Encrypted.CiphertextKEM) {
		t.Error("stdlib encapsulation from encaps_seed gives a different ciphertext_kem")
	}
	ss, err := dk.Decapsulate(e.Encrypted.CiphertextKEM)
	if err != nil {
		t.Fatal(err)
	}
	k, err := hkdf.Key(sha256.New, ss, e.Encrypted.CiphertextKEM, "quantaseal envelope v1\x00"+c.TenantID, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(k)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, unhex(t, c.Nonce), e.Encrypted.CiphertextData, []byte("quantaseal envelope v1\x00"+c.TenantID+"\x00"+e.Encrypted.KeyID))
	if err != nil {
		t.Fatalf("stdlib AES-GCM open: %v", err)
	}
	if !bytes.Equal(pt, unhex(t, c.Plaintext)) {
		t.Error("stdlib decryption gives a different plaintext")
	}
	if got := HMACKeyID(unhex(t, c.HMACKey)); got != e.Signature.HMACKeyID {
		t.Errorf("hmac_key_id %s, want %s", e.Signature.HMACKeyID, got)
	}
}

func compactJSON(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// writeFuzzCorpus writes the checked-in seed corpora of FuzzOpen and FuzzOpenMutated.
func writeFuzzCorpus(t *testing.T) {
	t.Helper()
	f := loadVectors(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{
		"valid":           compactJSON(t, fuzzCase(t, f).Envelope),
		"empty_object":    []byte(`{}`),
		"null":            []byte(`null`),
		"truncated":       compactJSON(t, fuzzCase(t, f).Envelope)[:400],
		"encrypted_only":  []byte(`{"version":1,"success":true,"status":200,"next":"","issued_at":"","encrypted":{},"signature":{},"audit_event_id":""}`),
		"base64_newlines": []byte(`{"version":1,"success":true,"status":200,"next":"","issued_at":"","encrypted":{"ciphertext_kem":"AA\nAA"},"signature":{},"audit_event_id":""}`),
	}
	for _, n := range f.Negative {
		if n.Case == fuzzCaseName {
			entries["negative_"+strings.NewReplacer(" ", "_", ":", "", ".", "_").Replace(n.Name)] = compactJSON(t, n.Envelope)
		}
	}
	for name, data := range entries {
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join("testdata", "fuzz", "FuzzSealOpen")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sealSeeds := map[string][3]string{
		"ascii":        {"00ub0oNGTSWTBKOLGLNR", "aud_01JDQ90000000000000000000A", `[{"id":"00u1"}]`},
		"empty":        {"", "", ""},
		"escapes":      {"q\"b\\s<&>\u2028\x01\t", "aud_\u00e9", "\x00\xff"},
		"non_ascii":    {"Grüße 山田 🚀", "aud_ü", "Zoë"},
		"invalid_utf8": {"cursor\xff", "aud_1", "x"},
	}
	for name, s := range sealSeeds {
		content := fmt.Sprintf("go test fuzz v1\nstring(%q)\nstring(%q)\n[]byte(%q)\n", s[0], s[1], s[2])
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join("testdata", "fuzz", "FuzzOpenMutated")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range len(mutableFields) {
		content := fmt.Sprintf("go test fuzz v1\nuint8(%d)\nuint32(%d)\nuint8(%d)\n", i, i*7, i%8)
		if err := os.WriteFile(filepath.Join(dir, "field_"+strconv.Itoa(i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
