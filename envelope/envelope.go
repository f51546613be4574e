package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
)

// Version is the envelope format version this package reads and writes.
const Version = 1

// Algorithm names, exactly as they appear in an envelope (envelope-v1 "JSON shape").
const (
	KEMAlgorithm       = "ML-KEM-768"
	SignatureAlgorithm = "ML-DSA-65+HMAC-SHA-512"
)

// MediaType is the media type of a HybridCryptoEnvelope in HTTP.
const MediaType = "application/vnd.quantaseal.envelope+json"

// Domain-separation strings of envelope-v1.
const (
	kdfLabel       = "quantaseal envelope v1"           // HKDF info and AAD prefix
	messagePrefix  = "quantaseal envelope signature v1" // first bytes of M
	mldsaContext   = "quantaseal-envelope-v1"           // FIPS 204 context string
	minDataSize    = 16                                 // AES-GCM tag
	issuedAtLayout = "2006-01-02T15:04:05Z"
)

// Envelope is a decoded HybridCryptoEnvelope v1. Byte fields hold the decoded (raw)
// values; the JSON encoding uses standard padded base64 (RFC 4648 §4).
//
// An Envelope returned by [Parse] or by json.Unmarshal is well-formed JSON with every
// member present, but is not verified: only [Open] and [Envelope.Open] verify.
type Envelope struct {
	Version      int       `json:"version"`
	Success      bool      `json:"success"`
	Status       int       `json:"status"`
	Next         string    `json:"next"`
	IssuedAt     string    `json:"issued_at"`
	Encrypted    Encrypted `json:"encrypted"`
	Signature    Signature `json:"signature"`
	AuditEventID string    `json:"audit_event_id"`
}

// Encrypted is the "encrypted" member of an envelope.
type Encrypted struct {
	CiphertextKEM  []byte `json:"ciphertext_kem"`
	CiphertextData []byte `json:"ciphertext_data"`
	Nonce          []byte `json:"nonce"`
	TenantID       string `json:"tenant_id"`
	KeyID          string `json:"key_id"`
	Algorithm      string `json:"algorithm"`
}

// Signature is the "signature" member of an envelope.
type Signature struct {
	PQCSignature  []byte `json:"pqc_signature"`
	HMACSignature []byte `json:"hmac_signature"`
	TenantID      string `json:"tenant_id"`
	KeyID         string `json:"key_id"`
	HMACKeyID     string `json:"hmac_key_id"`
	Algorithm     string `json:"algorithm"`
}

// Message returns the signed message M of envelope-v1 "Signing": the prefix
// "quantaseal envelope signature v1" and then 15 fields, each a 4-byte big-endian
// length followed by its bytes.
func (e *Envelope) Message() []byte {
	m, _ := e.message(nil)
	return m
}

// message builds M. With reserve non-nil, the ciphertext_data field is given length
// *reserve but left unwritten and its offset is returned, so Seal can let AES-GCM
// write the ciphertext in place inside M instead of copying it there.
func (e *Envelope) message(reserve *int) ([]byte, int) {
	status := strconv.Itoa(e.Status)
	success := "false"
	if e.Success {
		success = "true"
	}
	dataLen := len(e.Encrypted.CiphertextData)
	if reserve != nil {
		dataLen = *reserve
	}
	fields := [...]string{
		e.Encrypted.Algorithm, e.Encrypted.TenantID, e.Encrypted.KeyID,
		e.Signature.Algorithm, e.Signature.TenantID, e.Signature.KeyID, e.Signature.HMACKeyID,
		success, status, e.Next, e.AuditEventID, e.IssuedAt,
	}
	n := len(messagePrefix) + 15*4 + len(e.Encrypted.CiphertextKEM) + len(e.Encrypted.Nonce) + dataLen
	for _, f := range fields {
		n += len(f)
	}
	m := make([]byte, 0, n)
	m = append(m, messagePrefix...)
	str := func(s string) {
		m = binary.BigEndian.AppendUint32(m, uint32(len(s)))
		m = append(m, s...)
	}
	raw := func(b []byte) {
		m = binary.BigEndian.AppendUint32(m, uint32(len(b)))
		m = append(m, b...)
	}
	str(e.Encrypted.Algorithm)
	str(e.Encrypted.TenantID)
	str(e.Encrypted.KeyID)
	raw(e.Encrypted.CiphertextKEM)
	raw(e.Encrypted.Nonce)
	dataOff := -1
	if reserve != nil {
		m = binary.BigEndian.AppendUint32(m, uint32(dataLen))
		dataOff = len(m)
		m = m[:len(m)+dataLen]
	} else {
		raw(e.Encrypted.CiphertextData)
	}
	str(e.Signature.Algorithm)
	str(e.Signature.TenantID)
	str(e.Signature.KeyID)
	str(e.Signature.HMACKeyID)
	str(success)
	str(status)
	str(e.Next)
	str(e.AuditEventID)
	str(e.IssuedAt)
	return m, dataOff
}

// MarshalJSON encodes the envelope in the member order of envelope-v1, writing the
// base64 fields straight into one pre-sized buffer (the gateway's hot path).
func (e *Envelope) MarshalJSON() ([]byte, error) {
	enc := base64.StdEncoding
	b := make([]byte, 0, e.jsonSize())
	b64 := func(name string, v []byte) {
		b = append(b, `"`+name+`":"`...)
		b = enc.AppendEncode(b, v)
		b = append(b, `",`...)
	}
	str := func(name, v string, last bool) {
		b = append(b, `"`+name+`":`...)
		b = appendJSONString(b, v)
		if !last {
			b = append(b, ',')
		}
	}
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	b = append(b, `,"success":`...)
	b = strconv.AppendBool(b, e.Success)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ',')
	str("next", e.Next, false)
	str("issued_at", e.IssuedAt, false)
	b = append(b, `"encrypted":{`...)
	b64("ciphertext_kem", e.Encrypted.CiphertextKEM)
	b64("ciphertext_data", e.Encrypted.CiphertextData)
	b64("nonce", e.Encrypted.Nonce)
	str("tenant_id", e.Encrypted.TenantID, false)
	str("key_id", e.Encrypted.KeyID, false)
	str("algorithm", e.Encrypted.Algorithm, true)
	b = append(b, `},"signature":{`...)
	b64("pqc_signature", e.Signature.PQCSignature)
	b64("hmac_signature", e.Signature.HMACSignature)
	str("tenant_id", e.Signature.TenantID, false)
	str("key_id", e.Signature.KeyID, false)
	str("hmac_key_id", e.Signature.HMACKeyID, false)
	str("algorithm", e.Signature.Algorithm, true)
	b = append(b, "},"...)
	str("audit_event_id", e.AuditEventID, true)
	b = append(b, '}')
	return b, nil
}

// jsonSkeleton is the most bytes of MarshalJSON's output that are not string or
// base64 values: 305 for names, punctuation, "false" and two one-digit integers, plus
// 19 more digits for each of version and status at their widest (TestMarshalJSONSize).
const jsonSkeleton = 305 + 2*19

// jsonSize is the exact capacity MarshalJSON needs when no string value needs a JSON
// escape (every value the gateway writes), so the output buffer — 4/3 of the body —
// is allocated once and never regrown and copied.
func (e *Envelope) jsonSize() int {
	enc := base64.StdEncoding
	return jsonSkeleton + len(e.Next) + len(e.IssuedAt) + len(e.AuditEventID) +
		len(e.Encrypted.TenantID) + len(e.Encrypted.KeyID) + len(e.Encrypted.Algorithm) +
		len(e.Signature.TenantID) + len(e.Signature.KeyID) + len(e.Signature.HMACKeyID) + len(e.Signature.Algorithm) +
		enc.EncodedLen(len(e.Encrypted.CiphertextKEM)) + enc.EncodedLen(len(e.Encrypted.CiphertextData)) +
		enc.EncodedLen(len(e.Encrypted.Nonce)) + enc.EncodedLen(len(e.Signature.PQCSignature)) +
		enc.EncodedLen(len(e.Signature.HMACSignature))
}

// appendJSONString appends s as a JSON string. Plain ASCII (every id and timestamp the
// gateway writes) takes the fast path; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// wireEnvelope detects missing members: every member of envelope-v1 is required.
type wireEnvelope struct {
	Version      *int           `json:"version"`
	Success      *bool          `json:"success"`
	Status       *int           `json:"status"`
	Next         *string        `json:"next"`
	IssuedAt     *string        `json:"issued_at"`
	Encrypted    *wireEncrypted `json:"encrypted"`
	Signature    *wireSignature `json:"signature"`
	AuditEventID *string        `json:"audit_event_id"`
}

// Base64 members are decoded from the raw JSON (json.RawMessage), which skips
// encoding/json's unquoting and a string copy of a body that may be megabytes.
type wireEncrypted struct {
	CiphertextKEM  json.RawMessage `json:"ciphertext_kem"`
	CiphertextData json.RawMessage `json:"ciphertext_data"`
	Nonce          json.RawMessage `json:"nonce"`
	TenantID       *string         `json:"tenant_id"`
	KeyID          *string         `json:"key_id"`
	Algorithm      *string         `json:"algorithm"`
}

type wireSignature struct {
	PQCSignature  json.RawMessage `json:"pqc_signature"`
	HMACSignature json.RawMessage `json:"hmac_signature"`
	TenantID      *string         `json:"tenant_id"`
	KeyID         *string         `json:"key_id"`
	HMACKeyID     *string         `json:"hmac_key_id"`
	Algorithm     *string         `json:"algorithm"`
}

// Parse decodes an envelope's JSON without verifying it. It fails with an
// [*OpenError] (Check [CheckFormat]) when the JSON is malformed, a member is missing or
// null, or a base64 member is not canonical standard padded base64.
func Parse(data []byte) (*Envelope, error) {
	var e Envelope
	if err := e.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return &e, nil
}

// UnmarshalJSON implements json.Unmarshaler with the checks of [Parse].
func (e *Envelope) UnmarshalJSON(data []byte) error {
	var w wireEnvelope
	if err := json.Unmarshal(data, &w); err != nil {
		return formatError("", "not a JSON envelope: "+jsonErrorText(err))
	}
	if w.Encrypted == nil {
		return missing("encrypted")
	}
	if w.Signature == nil {
		return missing("signature")
	}
	var out Envelope
	var err error
	str := func(dst *string, src *string, field string) {
		if err != nil {
			return
		}
		if src == nil {
			err = missing(field)
			return
		}
		*dst = *src
	}
	b64 := func(dst *[]byte, src json.RawMessage, field string) {
		if err != nil {
			return
		}
		*dst, err = decodeBase64JSON(src, field)
	}
	switch {
	case w.Version == nil:
		return missing("version")
	case w.Success == nil:
		return missing("success")
	case w.Status == nil:
		return missing("status")
	}
	out.Version, out.Success, out.Status = *w.Version, *w.Success, *w.Status
	str(&out.Next, w.Next, "next")
	str(&out.IssuedAt, w.IssuedAt, "issued_at")
	str(&out.AuditEventID, w.AuditEventID, "audit_event_id")
	b64(&out.Encrypted.CiphertextKEM, w.Encrypted.CiphertextKEM, "encrypted.ciphertext_kem")
	b64(&out.Encrypted.CiphertextData, w.Encrypted.CiphertextData, "encrypted.ciphertext_data")
	b64(&out.Encrypted.Nonce, w.Encrypted.Nonce, "encrypted.nonce")
	str(&out.Encrypted.TenantID, w.Encrypted.TenantID, "encrypted.tenant_id")
	str(&out.Encrypted.KeyID, w.Encrypted.KeyID, "encrypted.key_id")
	str(&out.Encrypted.Algorithm, w.Encrypted.Algorithm, "encrypted.algorithm")
	b64(&out.Signature.PQCSignature, w.Signature.PQCSignature, "signature.pqc_signature")
	b64(&out.Signature.HMACSignature, w.Signature.HMACSignature, "signature.hmac_signature")
	str(&out.Signature.TenantID, w.Signature.TenantID, "signature.tenant_id")
	str(&out.Signature.KeyID, w.Signature.KeyID, "signature.key_id")
	str(&out.Signature.HMACKeyID, w.Signature.HMACKeyID, "signature.hmac_key_id")
	str(&out.Signature.Algorithm, w.Signature.Algorithm, "signature.algorithm")
	if err != nil {
		return err
	}
	*e = out
	return nil
}

// decodeBase64JSON decodes a JSON string member holding base64. It accepts only
// canonical RFC 4648 §4 base64: padded, no line breaks (which encoding/base64 would
// otherwise skip) and zero trailing bits, so one byte string has exactly one encoding.
func decodeBase64JSON(raw json.RawMessage, field string) ([]byte, error) {
	if raw == nil || string(raw) == "null" {
		return nil, missing(field)
	}
	if len(raw) < 2 || raw[0] != '"' {
		return nil, formatError(field, "not a JSON string")
	}
	text := []byte(raw[1 : len(raw)-1])
	if bytes.IndexByte(text, '\\') >= 0 {
		// JSON escapes: let encoding/json unquote (rare; a writer never needs them).
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, formatError(field, "not a JSON string")
		}
		text = []byte(s)
	}
	if bytes.ContainsAny(text, "\r\n") {
		return nil, formatError(field, "line break in base64")
	}
	enc := base64.StdEncoding.Strict()
	out := make([]byte, enc.DecodedLen(len(text)))
	n, err := enc.Decode(out, text)
	if err != nil {
		return nil, formatError(field, "not canonical standard base64")
	}
	return out[:n:n], nil
}

func missing(field string) error { return formatError(field, "missing or null") }

// jsonErrorText keeps the JSON error's kind without echoing the input (which may hold
// ciphertext, never a key, but keeps messages short).
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at offset " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "member " + strconv.Quote(te.Field) + " has the wrong JSON type"
	}
	return "invalid JSON"
}
