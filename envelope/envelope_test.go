package envelope_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/envelope"
)

const tenant = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7"

// fixture is one tenant's keys and a gateway signing key, generated fresh.
type fixture struct {
	signer   *envelope.SigningKey
	response *envelope.ResponseKey
	hmacKey  *envelope.HMACKey
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	sk, err := envelope.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := envelope.GenerateResponseKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := envelope.GenerateHMACKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{sk, rk, hk}
}

func (f fixture) input(pt []byte) envelope.SealInput {
	return envelope.SealInput{
		TenantID: tenant, Recipient: f.response.Public(), Signer: f.signer, HMACKey: f.hmacKey,
		Status: 200, Next: "", AuditEventID: "aud_01JDQ90000000000000000000A",
		IssuedAt: time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), Plaintext: pt,
	}
}

func (f fixture) keys() envelope.OpenKeys {
	return envelope.OpenKeys{TenantID: tenant, Response: f.response, HMACKey: f.hmacKey,
		Verifying: map[string]*envelope.VerifyingKey{f.signer.KeyID(): f.signer.Public()}}
}

func (f fixture) seal(t testing.TB, in envelope.SealInput) []byte {
	t.Helper()
	e, err := envelope.Seal(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	f := newFixture(t)
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name        string
		status      int
		size        int
		next        string
		issuedAt    time.Time
		wantSuccess bool
		wantIssued  string
	}{
		{"empty 204", 204, 0, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), true, "2026-11-29T02:00:00Z"},
		{"1 byte 200", 200, 1, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), true, "2026-11-29T02:00:00Z"},
		{"64 KiB 200 with next", 200, 64 << 10, "00ub0oNGTSWTBKOLGLNR", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), true, "2026-11-29T02:00:00Z"},
		{"299 is success", 299, 10, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), true, "2026-11-29T02:00:00Z"},
		{"403 is not success", 403, 100, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), false, "2026-11-29T02:00:00Z"},
		{"503 from the gateway", 503, 30, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), false, "2026-11-29T02:00:00Z"},
		{"199 is not success", 199, 0, "", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), false, "2026-11-29T02:00:00Z"},
		{"issued_at truncated to UTC seconds", 200, 5, "", time.Date(2026, 11, 29, 3, 0, 7, 999_999_999, berlin), true, "2026-11-29T02:00:07Z"},
		{"non-ASCII next", 200, 5, "Grüße \"quoted\" <&> \u2028", time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC), true, "2026-11-29T02:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := bytes.Repeat([]byte("abcdefghij"), tt.size/10+1)[:tt.size]
			in := f.input(pt)
			in.Status, in.Next, in.IssuedAt = tt.status, tt.next, tt.issuedAt
			got, e, err := envelope.Open(f.seal(t, in), f.keys())
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, pt) || got == nil {
				t.Errorf("plaintext: got %d bytes (nil=%v), want %d", len(got), got == nil, len(pt))
			}
			meta := []any{e.Version, e.Success, e.Status, e.Next, e.IssuedAt, e.AuditEventID, e.Encrypted.TenantID, e.Signature.TenantID,
				e.Encrypted.KeyID, e.Signature.KeyID, e.Signature.HMACKeyID, e.Encrypted.Algorithm, e.Signature.Algorithm}
			want := []any{1, tt.wantSuccess, tt.status, tt.next, tt.wantIssued, in.AuditEventID, tenant, tenant,
				f.response.KeyID(), f.signer.KeyID(), f.hmacKey.KeyID(), "ML-KEM-768", "ML-DSA-65+HMAC-SHA-512"}
			if diff := cmp.Diff(want, meta); diff != "" {
				t.Errorf("envelope members (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	f := newFixture(t)
	a, b := f.seal(t, f.input([]byte("x"))), f.seal(t, f.input([]byte("x")))
	ea, _ := envelope.Parse(a)
	eb, _ := envelope.Parse(b)
	if bytes.Equal(ea.Encrypted.CiphertextKEM, eb.Encrypted.CiphertextKEM) || bytes.Equal(ea.Encrypted.Nonce, eb.Encrypted.Nonce) ||
		bytes.Equal(ea.Signature.PQCSignature, eb.Signature.PQCSignature) {
		t.Error("two seals of the same input share KEM ciphertext, nonce or (hedged) signature")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestSealErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		modify func(*envelope.SealInput)
		want   string
	}{
		{"no tenant", func(in *envelope.SealInput) { in.TenantID = "" }, "TenantID"},
		{"no recipient", func(in *envelope.SealInput) { in.Recipient = nil }, "Recipient"},
		{"no signer", func(in *envelope.SealInput) { in.Signer = nil }, "Signer"},
		{"no HMAC key", func(in *envelope.SealInput) { in.HMACKey = nil }, "HMACKey"},
		{"status 99", func(in *envelope.SealInput) { in.Status = 99 }, "Status"},
		{"status 600", func(in *envelope.SealInput) { in.Status = 600 }, "Status"},
		{"zero time", func(in *envelope.SealInput) { in.IssuedAt = time.Time{} }, "IssuedAt"},
		{"next not UTF-8", func(in *envelope.SealInput) { in.Next = "cursor\xff" }, "Next"},
		{"tenant not UTF-8", func(in *envelope.SealInput) { in.TenantID = "ten_\xc3" }, "TenantID"},
		{"audit id not UTF-8", func(in *envelope.SealInput) { in.AuditEventID = "aud_\x80" }, "AuditEventID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := f.input([]byte("x"))
			tt.modify(&in)
			e, err := envelope.Seal(in, nil)
			if err == nil || e != nil {
				t.Fatalf("Seal = %v, %v; want an error", e, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
	t.Run("randomness fails", func(t *testing.T) {
		if _, err := envelope.Seal(f.input(nil), failingReader{}); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("error %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

// editJSON decodes an envelope into generic JSON, applies edit, and re-encodes it.
func editJSON(t *testing.T, data []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sub(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

func TestParseErrors(t *testing.T) {
	f := newFixture(t)
	valid := f.seal(t, f.input([]byte("hello")))
	tests := []struct {
		name      string
		data      []byte
		wantField string
	}{
		{"not JSON", []byte("not json"), ""},
		{"JSON array", []byte("[]"), ""},
		{"truncated", valid[:len(valid)/2], ""},
		{"status is a string", editJSON(t, valid, func(m map[string]any) { m["status"] = "200" }), ""},
		{"status is a fraction", editJSON(t, valid, func(m map[string]any) { m["status"] = 200.5 }), ""},
		{"no version", editJSON(t, valid, func(m map[string]any) { delete(m, "version") }), "version"},
		{"no success", editJSON(t, valid, func(m map[string]any) { delete(m, "success") }), "success"},
		{"no status", editJSON(t, valid, func(m map[string]any) { delete(m, "status") }), "status"},
		{"null next", editJSON(t, valid, func(m map[string]any) { m["next"] = nil }), "next"},
		{"no issued_at", editJSON(t, valid, func(m map[string]any) { delete(m, "issued_at") }), "issued_at"},
		{"no audit_event_id", editJSON(t, valid, func(m map[string]any) { delete(m, "audit_event_id") }), "audit_event_id"},
		{"no encrypted", editJSON(t, valid, func(m map[string]any) { delete(m, "encrypted") }), "encrypted"},
		{"no signature", editJSON(t, valid, func(m map[string]any) { delete(m, "signature") }), "signature"},
		{"no ciphertext_kem", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "ciphertext_kem") }), "encrypted.ciphertext_kem"},
		{"no ciphertext_data", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "ciphertext_data") }), "encrypted.ciphertext_data"},
		{"no nonce", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "nonce") }), "encrypted.nonce"},
		{"no encrypted.tenant_id", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "tenant_id") }), "encrypted.tenant_id"},
		{"no encrypted.key_id", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "key_id") }), "encrypted.key_id"},
		{"no encrypted.algorithm", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "encrypted"), "algorithm") }), "encrypted.algorithm"},
		{"no pqc_signature", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "pqc_signature") }), "signature.pqc_signature"},
		{"no hmac_signature", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "hmac_signature") }), "signature.hmac_signature"},
		{"no signature.tenant_id", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "tenant_id") }), "signature.tenant_id"},
		{"no signature.key_id", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "key_id") }), "signature.key_id"},
		{"no hmac_key_id", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "hmac_key_id") }), "signature.hmac_key_id"},
		{"no signature.algorithm", editJSON(t, valid, func(m map[string]any) { delete(sub(m, "signature"), "algorithm") }), "signature.algorithm"},
		{"base64 with a line break", editJSON(t, valid, func(m map[string]any) {
			s := sub(m, "encrypted")["nonce"].(string)
			sub(m, "encrypted")["nonce"] = s[:8] + "\n" + s[8:]
		}), "encrypted.nonce"},
		{"unpadded base64", editJSON(t, valid, func(m map[string]any) {
			sub(m, "signature")["hmac_signature"] = strings.TrimRight(sub(m, "signature")["hmac_signature"].(string), "=")
		}), "signature.hmac_signature"},
		{"base64 with non-zero trailing bits", editJSON(t, valid, func(m map[string]any) { sub(m, "signature")["hmac_signature"] = "AB==" }), "signature.hmac_signature"},
		{"base64url alphabet", editJSON(t, valid, func(m map[string]any) { sub(m, "encrypted")["nonce"] = "____________" }), "encrypted.nonce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, e, err := envelope.Open(tt.data, f.keys())
			if err == nil || pt != nil || e != nil {
				t.Fatalf("Open = %q, %v, %v; want an error only", pt, e, err)
			}
			var oe *envelope.OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *OpenError", err)
			}
			if oe.Check != envelope.CheckFormat || oe.Field != tt.wantField {
				t.Errorf("got %s on %q (%v), want format on %q", oe.Check, oe.Field, err, tt.wantField)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	valid := f.seal(t, f.input([]byte("hello")))

	// forged is signed by another ML-DSA key while naming f's key id, with a correct
	// HMAC: only the ML-DSA-65 check fails. It is built with circl and crypto/hmac
	// directly, as an independent implementation of envelope-v1 "Signing".
	e, err := envelope.Parse(valid)
	if err != nil {
		t.Fatal(err)
	}
	_, otherSK := mldsa65.NewKeyFromSeed((*[32]byte)(other.signer.Seed().Bytes()))
	m := e.Message()
	if err := mldsa65.SignTo(otherSK, m, []byte("quantaseal-envelope-v1"), true, e.Signature.PQCSignature); err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha512.New, f.hmacKey.Secret().Bytes())
	mac.Write(m)
	if !hmac.Equal(mac.Sum(nil), e.Signature.HMACSignature) {
		t.Fatal("independent HMAC-SHA-512 over Message() differs from the envelope's")
	}
	forged, _ := e.MarshalJSON()

	withKeys := func(edit func(k *envelope.OpenKeys)) envelope.OpenKeys {
		k := f.keys()
		edit(&k)
		return k
	}
	tests := []struct {
		name      string
		data      []byte
		keys      envelope.OpenKeys
		wantCheck string
		wantField string
	}{
		{"opener is another tenant", valid, withKeys(func(k *envelope.OpenKeys) { k.TenantID = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T8" }), envelope.CheckTenant, "encrypted.tenant_id"},
		{"another response key", valid, withKeys(func(k *envelope.OpenKeys) { k.Response = other.response }), envelope.CheckKey, "encrypted.key_id"},
		{"signing key unknown", valid, withKeys(func(k *envelope.OpenKeys) { k.Verifying = nil }), envelope.CheckKey, "signature.key_id"},
		{"signing key filed under the wrong id", valid, withKeys(func(k *envelope.OpenKeys) {
			k.Verifying = map[string]*envelope.VerifyingKey{f.signer.KeyID(): other.signer.Public()}
		}), envelope.CheckKey, "signature.key_id"},
		{"another HMAC key", valid, withKeys(func(k *envelope.OpenKeys) { k.HMACKey = other.hmacKey }), envelope.CheckKey, "signature.hmac_key_id"},
		{"signed by another gateway key", forged, f.keys(), envelope.CheckMLDSA, "signature.pqc_signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, e, err := envelope.Open(tt.data, tt.keys)
			if err == nil || pt != nil || e != nil {
				t.Fatalf("Open = %q, %v, %v; want an error only", pt, e, err)
			}
			var oe *envelope.OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *OpenError", err)
			}
			if oe.Check != tt.wantCheck || oe.Field != tt.wantField {
				t.Errorf("got %s on %q (%v), want %s on %q", oe.Check, oe.Field, err, tt.wantCheck, tt.wantField)
			}
		})
	}
	t.Run("incomplete keys", func(t *testing.T) {
		for _, k := range []envelope.OpenKeys{
			withKeys(func(k *envelope.OpenKeys) { k.TenantID = "" }),
			withKeys(func(k *envelope.OpenKeys) { k.Response = nil }),
			withKeys(func(k *envelope.OpenKeys) { k.HMACKey = nil }),
		} {
			if _, _, err := envelope.Open(valid, k); err == nil {
				t.Error("Open with incomplete keys succeeded")
			}
		}
	})
}

func TestOpenErrorNeverHoldsSecrets(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	valid := f.seal(t, f.input([]byte("the plaintext body")))
	secrets := []string{"the plaintext body"}
	for _, k := range []fixture{f, other} {
		for _, s := range [][]byte{k.signer.Seed().Bytes(), k.response.Seed().Bytes(), k.hmacKey.Secret().Bytes()} {
			secrets = append(secrets, base64.StdEncoding.EncodeToString(s), string(s), strings.ToLower(strings.TrimSpace(hexString(s))))
		}
	}
	for _, keys := range []envelope.OpenKeys{
		{TenantID: tenant, Response: other.response, HMACKey: other.hmacKey, Verifying: other.keys().Verifying},
		{TenantID: tenant, Response: f.response, HMACKey: other.hmacKey, Verifying: f.keys().Verifying},
		{TenantID: "ten_other", Response: f.response, HMACKey: f.hmacKey},
	} {
		_, _, err := envelope.Open(valid, keys)
		if err == nil {
			t.Fatal("opened with wrong keys")
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q contains a secret", err)
			}
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestMarshalJSON(t *testing.T) {
	f := newFixture(t)
	in := f.input([]byte("body"))
	in.Next = "cursor \"q\" \\ <&> ü \x01 \u2028"
	e, err := envelope.Seal(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) {
		t.Fatalf("MarshalJSON output is not valid JSON: %s", data)
	}
	// Member names and order follow envelope-v1 "JSON shape".
	wantOrder := []string{`"version"`, `"success"`, `"status"`, `"next"`, `"issued_at"`, `"encrypted"`, `"ciphertext_kem"`,
		`"ciphertext_data"`, `"nonce"`, `"tenant_id"`, `"key_id"`, `"algorithm"`, `"signature"`, `"pqc_signature"`,
		`"hmac_signature"`, `"tenant_id"`, `"key_id"`, `"hmac_key_id"`, `"algorithm"`, `"audit_event_id"`}
	rest := string(data)
	for _, name := range wantOrder {
		i := strings.Index(rest, name+":")
		if i < 0 {
			t.Fatalf("member %s missing or out of order in %s", name, data)
		}
		rest = rest[i+len(name):]
	}
	back, err := envelope.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, back); diff != "" {
		t.Errorf("Parse(MarshalJSON(e)) differs (-sealed +parsed):\n%s", diff)
	}
	// The standard encoder agrees on every value (it uses the same base64).
	var viaStd, viaOurs map[string]any
	type plain envelope.Envelope
	stdData, err := json.Marshal((*plain)(e))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stdData, &viaStd); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &viaOurs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(viaStd, viaOurs); diff != "" {
		t.Errorf("MarshalJSON differs from encoding/json on the tagged struct (-std +ours):\n%s", diff)
	}
	// json.Unmarshal into an Envelope uses the strict parser.
	var viaUnmarshal envelope.Envelope
	if err := json.Unmarshal(data, &viaUnmarshal); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, &viaUnmarshal); diff != "" {
		t.Errorf("json.Unmarshal differs (-sealed +parsed):\n%s", diff)
	}
}

func TestUnknownMembersIgnored(t *testing.T) {
	f := newFixture(t)
	data := editJSON(t, f.seal(t, f.input([]byte("hi"))), func(m map[string]any) {
		m["x_extension"] = map[string]any{"a": 1}
		sub(m, "encrypted")["x_hint"] = "ignored"
	})
	pt, _, err := envelope.Open(data, f.keys())
	if err != nil || string(pt) != "hi" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
}
