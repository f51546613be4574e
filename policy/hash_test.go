package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestHash(t *testing.T) {
	tests := []struct {
		name     string
		allowed  []string
		envelope string
		want     string
	}{
		// printf '%s' '{"allowed_operations":["get_user","list_users"],"envelope":"on_request"}' | sha256sum
		{"sorted", []string{"list_users", "get_user"}, "on_request", "9bdba61ad98a12195e239b74c7fb69dc8ecf72a7e5165737c764816320fff233"},
		{"duplicates removed", []string{"list_users", "get_user", "list_users"}, "on_request", "9bdba61ad98a12195e239b74c7fb69dc8ecf72a7e5165737c764816320fff233"},
		// printf '%s' '{"allowed_operations":[],"envelope":""}' | sha256sum
		{"empty", nil, "", "29b74ec0816adf683d6762c223a0bd2ed304655e458d902d62ce177d159749a2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hash(tc.allowed, tc.envelope); got != tc.want {
				t.Errorf("Hash = %s, want %s", got, tc.want)
			}
		})
	}
	in := []string{"b", "a"}
	Hash(in, "x")
	if in[0] != "b" {
		t.Error("Hash sorted the caller's slice")
	}
}

func TestWriteJCSString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""},
		{"<>&", `"<>&"`}, // no HTML escaping
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"é€😀", `"é€😀"`},
		{"a\xffb", "\"a\ufffdb\""},
		{"/", `"/"`},
	}
	for _, tc := range tests {
		var b strings.Builder
		writeJCSString(&b, tc.in)
		if b.String() != tc.want {
			t.Errorf("writeJCSString(%q) = %s, want %s", tc.in, b.String(), tc.want)
		}
	}
}

// FuzzHashString checks the string encoder against encoding/json for inputs where the
// two must agree (valid UTF-8 without U+2028/U+2029, which encoding/json escapes and
// JCS does not), and that the output always parses back to the input.
func FuzzHashString(f *testing.F) {
	for _, s := range []string{"", "on_request", "a\"b", "\x00\x1f\b", "<&>", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b strings.Builder
		writeJCSString(&b, s)
		var back string
		if err := json.Unmarshal([]byte(b.String()), &back); err != nil {
			t.Fatalf("output %q does not parse: %v", b.String(), err)
		}
		var want strings.Builder
		for _, r := range s {
			want.WriteRune(r)
		}
		if back != want.String() {
			t.Fatalf("round trip %q -> %q, want %q", s, back, want.String())
		}
		if strings.ContainsAny(s, "\u2028\u2029") || !utf8Valid(s) {
			return
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		if got, want := b.String(), strings.TrimSuffix(buf.String(), "\n"); got != want {
			t.Fatalf("writeJCSString(%q) = %s, encoding/json = %s", s, got, want)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
