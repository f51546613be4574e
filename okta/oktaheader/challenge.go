package oktaheader

import "strings"

// AuthParams parses one WWW-Authenticate challenge (RFC 9110 §11.6.1):
// `Scheme k="v", k2=token, …`. Keys are lower-cased; quoted-string escapes are undone;
// of a repeated key the first value is kept. It is lenient: malformed input yields
// whatever pairs could be read, and never an error.
func AuthParams(challenge string) map[string]string {
	out := map[string]string{}
	s := strings.TrimSpace(challenge)
	// Skip the auth-scheme token.
	if i := strings.IndexAny(s, " \t"); i >= 0 && !strings.Contains(s[:i], "=") {
		s = s[i:]
	}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return out
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			val = b.String()
			if i < len(s) {
				i++
			}
			s = s[i:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		if _, dup := out[key]; !dup {
			out[key] = val
		}
	}
}
