package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeLayout is the layout of [Event.Time] and of a checkpoint's time line: RFC 3339 in
// UTC with exactly nine fractional digits, so that the string (which is what is hashed)
// has one spelling per instant.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// ZeroHash is the prev_hash of the first event of a chain (audit-v1, Event).
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// hashPrefix is the domain separator hashed before the canonical event (audit-v1, Event).
const hashPrefix = "quantaseal audit v1\x00"

// Event is one audit-v1 record. Every member is always present in its JSON form; an
// absent value is "", 0 or false (audit-v1, Event). Time is kept as the exact string that
// is hashed; use [Event.Timestamp] to parse it.
type Event struct {
	ID             string `json:"id"`
	ChainID        string `json:"chain_id"`
	Seq            int64  `json:"seq"`
	Time           string `json:"time"`
	TenantID       string `json:"tenant_id"`
	IntegrationID  string `json:"integration_id"`
	Operation      string `json:"operation"`
	Caller         string `json:"caller"`
	Method         string `json:"method"`
	Path           string `json:"path"`
	QuerySHA256    string `json:"query_sha256"`
	RequestSHA256  string `json:"request_sha256"`
	PolicySHA256   string `json:"policy_sha256"`
	Decision       string `json:"decision"`
	Reason         string `json:"reason"`
	Status         int64  `json:"status"`
	ResponseSHA256 string `json:"response_sha256"`
	ResponseBytes  int64  `json:"response_bytes"`
	Envelope       bool   `json:"envelope"`
	IntentID       string `json:"intent_id"`
	PrevHash       string `json:"prev_hash"`
	Hash           string `json:"hash"`
}

// eventMembers lists the JSON member names of an Event, for strict parsing.
var eventMembers = []string{
	"caller", "chain_id", "decision", "envelope", "hash", "id", "integration_id",
	"intent_id", "method", "operation", "path", "policy_sha256", "prev_hash",
	"query_sha256", "reason", "request_sha256", "response_bytes", "response_sha256",
	"seq", "status", "tenant_id", "time",
}

// Timestamp parses e.Time.
func (e *Event) Timestamp() (time.Time, error) { return time.Parse(time.RFC3339Nano, e.Time) }

// ComputeHash returns hex(SHA-256("quantaseal audit v1" ‖ 0x00 ‖ JCS(e without "hash"))).
// The current value of e.Hash does not enter the result.
func (e *Event) ComputeHash() string {
	b := make([]byte, 0, len(hashPrefix)+e.canonicalSizeHint())
	b = append(b, hashPrefix...)
	sum := sha256.Sum256(e.appendCanonical(b, false))
	return hex.EncodeToString(sum[:])
}

// hashAndBody returns [Event.ComputeHash] and the event's stored body — its canonical
// JSON with that hash, what [Canonicalize] returns once Hash is set — from one
// serialisation: the canonical form without "hash" is what is hashed, and the body is
// the same bytes with the "hash" member put in its place (after "envelope", before
// "id"; a hex string needs no escaping). Both share one allocation. This is the audit
// commit path's per-event cost: serialising every member twice was ~3 % of a
// transparent call's CPU in the gateway.
func (e *Event) hashAndBody() (string, []byte) {
	const member = `,"hash":""`
	n := len(hashPrefix) + e.canonicalSizeHint()
	b := make([]byte, 0, 2*n+len(member)+sha256.Size*2)
	b = append(b, hashPrefix...)
	b, at := e.appendCanonicalAt(b, false)
	sum := sha256.Sum256(b)
	var hash [sha256.Size * 2]byte
	hex.Encode(hash[:], sum[:])
	canon := b[len(hashPrefix):]
	at -= len(hashPrefix)
	body := b[len(b):] // the rest of the allocation, when it is large enough
	body = append(body, canon[:at]...)
	body = append(body, member[:len(member)-1]...)
	body = append(body, hash[:]...)
	body = append(body, '"')
	body = append(body, canon[at:]...)
	return string(hash[:]), body
}

// canonicalSizeHint is the length of e's canonical form when no string member needs
// escaping (an upper bound of the usual case): the member names and punctuation
// (about 300 bytes) plus the values. Sizing the buffer once saves the repeated growth
// of an ~1 KiB append on the audit commit path.
func (e *Event) canonicalSizeHint() int {
	n := 384 // names, quotes, colons, commas, the three numbers and the bool
	for _, v := range [...]string{
		e.ID, e.ChainID, e.Time, e.TenantID, e.IntegrationID, e.Operation, e.Caller,
		e.Method, e.Path, e.QuerySHA256, e.RequestSHA256, e.PolicySHA256, e.Decision,
		e.Reason, e.ResponseSHA256, e.IntentID, e.PrevHash, e.Hash,
	} {
		n += len(v)
	}
	return n
}

// appendCanonical appends the RFC 8785 form of e. The members are written in their JCS
// order (all names are ASCII, so UTF-16 order is byte order); TestEventCanonicalMatchesJCS
// checks this hand-unrolled form against the general [Canonicalize].
func (e *Event) appendCanonical(b []byte, withHash bool) []byte {
	b, _ = e.appendCanonicalAt(b, withHash)
	return b
}

// appendCanonicalAt is appendCanonical that also returns the offset in b where the
// "hash" member starts (withHash) or would start (without it).
func (e *Event) appendCanonicalAt(b []byte, withHash bool) ([]byte, int) {
	str := func(b []byte, name, v string) []byte {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return appendJCSString(b, v)
	}
	num := func(b []byte, name string, v int64) []byte {
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		return strconv.AppendInt(b, v, 10)
	}
	b = append(b, `{"caller":`...)
	b = appendJCSString(b, e.Caller)
	b = str(b, "chain_id", e.ChainID)
	b = str(b, "decision", e.Decision)
	b = append(b, `,"envelope":`...)
	b = strconv.AppendBool(b, e.Envelope)
	at := len(b)
	if withHash {
		b = str(b, "hash", e.Hash)
	}
	b = str(b, "id", e.ID)
	b = str(b, "integration_id", e.IntegrationID)
	b = str(b, "intent_id", e.IntentID)
	b = str(b, "method", e.Method)
	b = str(b, "operation", e.Operation)
	b = str(b, "path", e.Path)
	b = str(b, "policy_sha256", e.PolicySHA256)
	b = str(b, "prev_hash", e.PrevHash)
	b = str(b, "query_sha256", e.QuerySHA256)
	b = str(b, "reason", e.Reason)
	b = str(b, "request_sha256", e.RequestSHA256)
	b = num(b, "response_bytes", e.ResponseBytes)
	b = str(b, "response_sha256", e.ResponseSHA256)
	b = num(b, "seq", e.Seq)
	b = num(b, "status", e.Status)
	b = str(b, "tenant_id", e.TenantID)
	b = str(b, "time", e.Time)
	return append(b, '}'), at
}

// sanitize makes every string member valid UTF-8 the way encoding/json writes it (each
// invalid byte becomes U+FFFD), so that an event hashes the same before and after a
// round trip through its JSON export.
func (e *Event) sanitize() {
	for _, p := range []*string{
		&e.ID, &e.ChainID, &e.Time, &e.TenantID, &e.IntegrationID, &e.Operation, &e.Caller,
		&e.Method, &e.Path, &e.QuerySHA256, &e.RequestSHA256, &e.PolicySHA256, &e.Decision,
		&e.Reason, &e.ResponseSHA256, &e.IntentID, &e.PrevHash, &e.Hash,
	} {
		*p = validUTF8(*p)
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.WriteString(s[i : i+size])
		}
		i += size
	}
	return sb.String()
}
