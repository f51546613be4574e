package envelope

import "strings"

// Checks an [OpenError] can name.
const (
	CheckFormat     = "format"      // JSON shape, version, algorithm names, lengths
	CheckTenant     = "tenant"      // tenant ids differ from each other or from the opener's tenant
	CheckKey        = "key"         // a key id names no key the opener holds
	CheckMLDSA      = "ml-dsa"      // the ML-DSA-65 signature failed (the HMAC passed)
	CheckHMAC       = "hmac"        // the HMAC-SHA-512 failed (the ML-DSA-65 signature passed)
	CheckSignatures = "ml-dsa+hmac" // both signatures failed: the signed content was changed
	CheckAEAD       = "aead"        // both signatures passed but AES-256-GCM did not open
)

// OpenError says why an envelope was refused: which member (Field, a dotted JSON path
// such as "signature.pqc_signature"; empty for the whole document) and which check.
// It never holds key material or plaintext.
type OpenError struct {
	Field  string
	Check  string
	Reason string
}

func (e *OpenError) Error() string {
	var b strings.Builder
	b.WriteString("envelope: ")
	b.WriteString(e.Check)
	b.WriteString(" check failed")
	if e.Field != "" {
		b.WriteString(" on ")
		b.WriteString(e.Field)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

func formatError(field, reason string) error {
	return &OpenError{Field: field, Check: CheckFormat, Reason: reason}
}
