package oktaheader

import "strings"

// Link is one link-value of an HTTP Link header (RFC 8288).
type Link struct {
	URL string // the target, as written between < and >
	Rel string // the rel parameter (may hold several space-separated relation types)
}

// HasRel reports whether rel is one of l's relation types (compared
// case-insensitively, RFC 8288 §2.1.1).
func (l Link) HasRel(rel string) bool {
	for _, r := range strings.Fields(l.Rel) {
		if strings.EqualFold(r, rel) {
			return true
		}
	}
	return false
}

// linkSeg is one link-value as it appears in a header, with the position of its URI so
// that the text around it can be kept byte for byte when the URI is rewritten.
type linkSeg struct {
	raw        string // the whole link-value, trimmed
	uriStart   int    // index of the first URI byte in raw
	uriEnd     int    // index of the closing '>' in raw
	rel        string
	parseError bool // raw did not start with '<'; kept verbatim
}

// ParseLinks parses the values of Okta's Link headers. Okta sends one header per rel
// (okta-api.md §1, §4); comma-joined values (as some proxies fold them) are tolerated
// and split. Malformed link-values are skipped.
func ParseLinks(values []string) []Link {
	var out []Link
	for _, v := range values {
		for _, s := range splitLinks(v) {
			if s.parseError {
				continue
			}
			out = append(out, Link{URL: s.raw[s.uriStart:s.uriEnd], Rel: s.rel})
		}
	}
	return out
}

// NextLink returns the URL of the first rel="next" link in values, or "" if there is
// none.
func NextLink(values []string) string {
	for _, l := range ParseLinks(values) {
		if l.HasRel("next") {
			return l.URL
		}
	}
	return ""
}

// RewriteLinks returns values with every link target whose origin is fromOrigin
// (scheme://host[:port], compared case-insensitively) moved to toOrigin, keeping path,
// query and parameters byte for byte. The result has one value per link-value, so
// comma-joined input comes out as separate headers, the shape the Okta SDKs need
// (okta-api.md §4: a joined header makes SDK v5 loop forever on the self link).
// Targets on other origins and unparseable values are kept as they are. It returns
// nil when values hold no link-value.
func RewriteLinks(values []string, fromOrigin, toOrigin string) []string {
	from := strings.TrimRight(fromOrigin, "/")
	to := strings.TrimRight(toOrigin, "/")
	var out []string
	for _, v := range values {
		for _, s := range splitLinks(v) {
			if s.parseError {
				out = append(out, s.raw)
				continue
			}
			uri := s.raw[s.uriStart:s.uriEnd]
			if from != "" && len(uri) >= len(from) && strings.EqualFold(uri[:len(from)], from) &&
				(len(uri) == len(from) || strings.ContainsRune("/?#", rune(uri[len(from)]))) {
				uri = to + uri[len(from):]
			}
			out = append(out, s.raw[:s.uriStart]+uri+s.raw[s.uriEnd:])
		}
	}
	return out
}

// splitLinks splits one header value into link-values. Commas inside <…> and inside
// quoted parameter values do not split.
func splitLinks(v string) []linkSeg {
	var segs []linkSeg
	i := 0
	for i < len(v) {
		// Skip separators between link-values.
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
			i++
		}
		if i >= len(v) {
			break
		}
		start := i
		if v[i] != '<' {
			// Not a link-value: keep everything up to the next top-level comma.
			end := scanToComma(v, i)
			segs = append(segs, linkSeg{raw: strings.TrimSpace(v[start:end]), parseError: true})
			i = end
			continue
		}
		gt := strings.IndexByte(v[i:], '>')
		if gt < 0 {
			segs = append(segs, linkSeg{raw: strings.TrimSpace(v[start:]), parseError: true})
			break
		}
		uriStart, uriEnd := i+1, i+gt
		i = uriEnd + 1
		rel := ""
		// Parameters: *( OWS ";" OWS name [ "=" value ] ).
		for {
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
			if i >= len(v) || v[i] != ';' {
				break
			}
			i++
			for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
				i++
			}
			ns := i
			for i < len(v) && v[i] != '=' && v[i] != ';' && v[i] != ',' {
				i++
			}
			name := strings.ToLower(strings.TrimSpace(v[ns:i]))
			val := ""
			if i < len(v) && v[i] == '=' {
				i++
				for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
					i++
				}
				if i < len(v) && v[i] == '"' {
					var b strings.Builder
					i++
					for i < len(v) && v[i] != '"' {
						if v[i] == '\\' && i+1 < len(v) {
							i++
						}
						b.WriteByte(v[i])
						i++
					}
					if i < len(v) {
						i++ // closing quote
					}
					val = b.String()
				} else {
					vs := i
					for i < len(v) && v[i] != ';' && v[i] != ',' && v[i] != ' ' && v[i] != '\t' {
						i++
					}
					val = v[vs:i]
				}
			}
			if name == "rel" && rel == "" {
				rel = val
			}
		}
		end := i
		// Anything else up to the next comma belongs to this (odd) link-value.
		if end < len(v) && v[end] != ',' {
			end = scanToComma(v, end)
		}
		raw := v[start:end]
		trimmed := strings.TrimRight(raw, " \t")
		segs = append(segs, linkSeg{raw: trimmed, uriStart: uriStart - start, uriEnd: uriEnd - start, rel: rel})
		i = end
	}
	return segs
}

// scanToComma returns the index of the next comma at or after i that is outside <…> and
// quotes, or len(v).
func scanToComma(v string, i int) int {
	inQuote, inURI := false, false
	for ; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case inURI:
			if c == '>' {
				inURI = false
			}
		case c == '"':
			inQuote = true
		case c == '<':
			inURI = true
		case c == ',':
			return i
		}
	}
	return len(v)
}
