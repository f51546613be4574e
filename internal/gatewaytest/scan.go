package gatewaytest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// minNeedle is the shortest form searched for: shorter fragments (a line of a PEM
// block, a base64 window) would match by chance.
const minNeedle = 12

// Hit is one occurrence of a secret.
type Hit struct {
	Secret string // the secret's name
	Form   string // raw, json, url, hex, HEX, base64, base64url, line N
	Where  string // the blob's name
	Offset int
}

func (h Hit) String() string {
	return fmt.Sprintf("secret %q (%s form) in %s at byte %d", h.Secret, h.Form, h.Where, h.Offset)
}

type needle struct {
	secret, form string
	b            []byte
}

// Scanner searches byte blobs for known secrets in every encoding a careless log line,
// header, metric label or database column could hold them in.
type Scanner struct {
	needles []needle
	names   []string
}

// NewScanner prepares the search for secrets (name → value; values shorter than 8
// bytes are refused because they would match by chance).
func NewScanner(secrets map[string][]byte) (*Scanner, error) {
	s := &Scanner{}
	for name, v := range secrets {
		if len(v) < 8 {
			return nil, fmt.Errorf("secret %q is %d bytes: too short to scan for", name, len(v))
		}
		s.names = append(s.names, name)
		for form, b := range Forms(v) {
			s.needles = append(s.needles, needle{secret: name, form: form, b: b})
		}
	}
	sort.Strings(s.names)
	sort.Slice(s.needles, func(i, j int) bool {
		a, b := s.needles[i], s.needles[j]
		if a.secret != b.secret {
			return a.secret < b.secret
		}
		return a.form < b.form
	})
	return s, nil
}

// Secrets returns the names of the secrets searched for, sorted.
func (s *Scanner) Secrets() []string { return s.names }

// Needles returns how many encoded forms are searched for.
func (s *Scanner) Needles() int { return len(s.needles) }

// Scan returns every occurrence of every form of every secret in blob.
func (s *Scanner) Scan(where string, blob []byte) []Hit {
	var hits []Hit
	for _, n := range s.needles {
		off := 0
		for {
			i := bytes.Index(blob[off:], n.b)
			if i < 0 {
				break
			}
			hits = append(hits, Hit{Secret: n.secret, Form: n.form, Where: where, Offset: off + i})
			off += i + 1
		}
	}
	return hits
}

// Forms returns the encodings of v that are searched for: raw; JSON-string-escaped and
// URL-query-escaped when they differ; lower- and upper-case hex; standard and URL-safe
// base64 at each of the three byte alignments v can have inside a larger encoded blob
// (only the characters that depend on v alone); and, for multi-line values such as PEM
// keys, each line of at least minNeedle bytes (a PEM body line is itself a base64
// secret).
func Forms(v []byte) map[string][]byte {
	f := map[string][]byte{"raw": v}
	if j, err := json.Marshal(string(v)); err == nil {
		if j = j[1 : len(j)-1]; !bytes.Equal(j, v) {
			f["json"] = j
		}
	}
	if q := url.QueryEscape(string(v)); q != string(v) {
		f["url"] = []byte(q)
	}
	f["hex"] = []byte(hex.EncodeToString(v))
	f["HEX"] = []byte(strings.ToUpper(hex.EncodeToString(v)))
	for k := range 3 {
		buf := append(make([]byte, k), v...)
		start := (8*k + 5) / 6  // first character not touched by the k prefix bytes
		end := 8 * len(buf) / 6 // characters fully determined by the bytes
		for _, enc := range []struct {
			name string
			e    *base64.Encoding
		}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
			s := enc.e.EncodeToString(buf)[start:end]
			if len(s) >= minNeedle {
				f[fmt.Sprintf("%s/%d", enc.name, k)] = []byte(s)
			}
		}
	}
	if bytes.ContainsAny(v, "\r\n") {
		for i, line := range strings.FieldsFunc(string(v), func(r rune) bool { return r == '\n' || r == '\r' }) {
			line = strings.TrimSpace(line)
			if len(line) >= minNeedle && !strings.HasPrefix(line, "-----") {
				f[fmt.Sprintf("line %d", i+1)] = []byte(line)
			}
		}
	}
	return f
}
