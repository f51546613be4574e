package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"unicode/utf8"
)

// Hash returns the audit policy_sha256 of an integration's policy: the hex SHA-256 of
// the RFC 8785 (JCS) serialisation of
//
//	{"allowed_operations": [sorted, duplicates removed], "envelope": envelope}
//
// The member names are fixed and already in JCS order ("allowed_operations" sorts
// before "envelope"), so only strings need canonical escaping; see writeJCSString.
// Invalid UTF-8 is replaced by U+FFFD, as encoding/json does, since JCS input must be
// valid Unicode.
func Hash(allowed []string, envelope string) string {
	ops := slices.Clone(allowed)
	slices.Sort(ops) // byte order of UTF-8 equals code-point order
	ops = slices.Compact(ops)

	var b strings.Builder
	b.WriteString(`{"allowed_operations":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJCSString(&b, op)
	}
	b.WriteString(`],"envelope":`)
	writeJCSString(&b, envelope)
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// writeJCSString writes s as a JSON string the way RFC 8785 §3.2.2.2 requires
// (ECMAScript JSON.stringify): '"' and '\\' escaped; U+0008, U+0009, U+000A, U+000C,
// U+000D as \b \t \n \f \r; other code points below U+0020 as \u00xx with lower-case
// hex; everything else, including '<', '>', '&', U+2028 and U+2029, written as UTF-8.
func writeJCSString(b *strings.Builder, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s { // ranging decodes invalid bytes as U+FFFD
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0xf])
		case r == utf8.RuneError:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
