// Package secret holds values that must never be printed: API keys, client secrets,
// private keys, access tokens, DPoP proofs and HMAC keys.
//
// A [Secret] formats as "[redacted]" through every path the standard library uses to
// turn a value into text (fmt verbs, encoding/json, encoding/text, log/slog), so a secret
// that reaches a log line, an error or a JSON body by mistake is harmless. The plaintext
// is only available through the explicit [Secret.Reveal] and [Secret.Bytes] calls, which
// are easy to find in review.
package secret

import (
	"crypto/subtle"
	"log/slog"
)

// Redacted is what a Secret prints as.
const Redacted = "[redacted]"

// Secret is an immutable secret value. The zero value is the empty secret.
type Secret struct {
	// v is unexported and behind a pointer-free string so copies are cheap and
	// reflection-based printers (fmt %+v, go-cmp) cannot reach it without the
	// methods below.
	v string
}

// New returns a Secret holding s.
func New(s string) Secret { return Secret{v: s} }

// FromBytes returns a Secret holding a copy of b.
func FromBytes(b []byte) Secret { return Secret{v: string(b)} }

// Reveal returns the plaintext. Call it only where the value leaves the process on
// purpose (an Authorization header, a KMS call, a signature).
func (s Secret) Reveal() string { return s.v }

// Bytes returns a copy of the plaintext.
func (s Secret) Bytes() []byte { return []byte(s.v) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// Len returns the plaintext length in bytes.
func (s Secret) Len() int { return len(s.v) }

// Equal compares two secrets in constant time (for equal lengths).
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v does not leak either.
func (Secret) GoString() string { return Redacted }

// MarshalText implements encoding.TextMarshaler (and so JSON and YAML encoding).
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
