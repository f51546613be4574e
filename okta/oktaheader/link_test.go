package oktaheader

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLinks(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []Link
		next   string
	}{
		{
			name: "one header per rel (Okta)",
			values: []string{
				`<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`,
				`<https://acme.okta.com/api/v1/users?after=00u2&limit=2>; rel="next"`,
			},
			want: []Link{
				{URL: "https://acme.okta.com/api/v1/users?limit=2", Rel: "self"},
				{URL: "https://acme.okta.com/api/v1/users?after=00u2&limit=2", Rel: "next"},
			},
			next: "https://acme.okta.com/api/v1/users?after=00u2&limit=2",
		},
		{
			name:   "comma-joined, commas inside the URL and quotes",
			values: []string{`<https://a.okta.com/x?a=1,2>; rel="self"; title="a, b", <https://a.okta.com/x?after=z>;rel=next`},
			want: []Link{
				{URL: "https://a.okta.com/x?a=1,2", Rel: "self"},
				{URL: "https://a.okta.com/x?after=z", Rel: "next"},
			},
			next: "https://a.okta.com/x?after=z",
		},
		{
			name:   "garbage skipped",
			values: []string{`nonsense, <https://a.okta.com/p>; REL="Next"`, `<unterminated`},
			want:   []Link{{URL: "https://a.okta.com/p", Rel: "Next"}},
			next:   "https://a.okta.com/p",
		},
		{
			name:   "several relation types",
			values: []string{`<https://a.okta.com/p>; rel="prev next"`},
			want:   []Link{{URL: "https://a.okta.com/p", Rel: "prev next"}},
			next:   "https://a.okta.com/p",
		},
		{
			name:   "only the first rel counts (RFC 8288 §3.3)",
			values: []string{`<https://a.okta.com/p>; rel=self; rel=next`},
			want:   []Link{{URL: "https://a.okta.com/p", Rel: "self"}},
		},
		{
			name:   "rel inside a quoted parameter is not a rel",
			values: []string{`<https://a.okta.com/p>; title="x; rel=next"`},
			want:   []Link{{URL: "https://a.okta.com/p"}},
		},
		{name: "empty", values: nil, want: nil},
		{name: "no next", values: []string{`<https://a.okta.com/p>; rel="self"`}, want: []Link{{URL: "https://a.okta.com/p", Rel: "self"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseLinks(tt.values)); diff != "" {
				t.Errorf("ParseLinks (-want +got):\n%s", diff)
			}
			if got := NextLink(tt.values); got != tt.next {
				t.Errorf("NextLink = %q, want %q", got, tt.next)
			}
		})
	}
}

func TestRewriteLinks(t *testing.T) {
	const okta, gw = "https://acme.okta.com", "http://gw:1"
	tests := []struct {
		name     string
		values   []string
		from, to string
		want     []string
	}{
		{
			name: "Okta origin to gateway origin",
			values: []string{
				`<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`,
				`<https://acme.okta.com/api/v1/users?after=00u2&limit=2&search=a%20b>; rel="next"`,
			},
			from: okta, to: "http://127.0.0.1:10000",
			want: []string{
				`<http://127.0.0.1:10000/api/v1/users?limit=2>; rel="self"`,
				`<http://127.0.0.1:10000/api/v1/users?after=00u2&limit=2&search=a%20b>; rel="next"`,
			},
		},
		{
			name:   "joined header is split, host compared case-insensitively",
			values: []string{`<HTTPS://Acme.Okta.com/a>; rel="self", <https://acme.okta.com/a?after=1>; rel="next"`},
			from:   "https://acme.okta.com/", to: "https://gw.example",
			want: []string{`<https://gw.example/a>; rel="self"`, `<https://gw.example/a?after=1>; rel="next"`},
		},
		{
			name:   "comma inside the URL does not split",
			values: []string{`<https://acme.okta.com/a?x=1,2>; rel="self", <https://acme.okta.com/b>; rel="next"`},
			from:   okta, to: gw,
			want: []string{`<http://gw:1/a?x=1,2>; rel="self"`, `<http://gw:1/b>; rel="next"`},
		},
		{
			name:   "other origins and look-alike hosts untouched",
			values: []string{`<https://acme.okta.com.evil.com/a>; rel="next"`, `<https://other.okta.com/a>; rel="self"`, `junk`},
			from:   okta, to: "https://gw.example",
			want: []string{`<https://acme.okta.com.evil.com/a>; rel="next"`, `<https://other.okta.com/a>; rel="self"`, `junk`},
		},
		{
			name:   "bare origin, fragment and query boundaries",
			values: []string{`<https://acme.okta.com>; rel="a"`, `<https://acme.okta.com#f>`, `<https://acme.okta.com?q=1>`},
			from:   okta, to: gw,
			want: []string{`<http://gw:1>; rel="a"`, `<http://gw:1#f>`, `<http://gw:1?q=1>`},
		},
		{name: "malformed kept", values: []string{`garbage`}, from: okta, to: gw, want: []string{`garbage`}},
		{name: "none", values: nil, from: okta, to: gw, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, RewriteLinks(tt.values, tt.from, tt.to)); diff != "" {
				t.Errorf("RewriteLinks (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseLinks(f *testing.F) {
	f.Add(`<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`)
	f.Add(`<https://a.okta.com/x?a=1,2>; rel="self"; title="a, \"b\"", <https://a.okta.com/x?after=z>;rel=next`)
	f.Add(`<`)
	f.Add(`,,;<>;rel=`)
	f.Fuzz(func(t *testing.T, v string) {
		links := ParseLinks([]string{v})
		for _, l := range links {
			if !strings.Contains(v, "<"+l.URL+">") {
				t.Fatalf("URL %q is not a <…> substring of %q", l.URL, v)
			}
		}
		// Rewriting to the same origin changes no parsed link beyond the origin's case
		// (the origin is matched case-insensitively and written as given).
		same := RewriteLinks([]string{v}, "https://acme.okta.com", "https://acme.okta.com")
		foldURL := cmp.Comparer(func(a, b Link) bool { return strings.EqualFold(a.URL, b.URL) && a.Rel == b.Rel })
		if diff := cmp.Diff(links, ParseLinks(same), foldURL); diff != "" {
			t.Fatalf("identity rewrite changed links (-before +after):\n%s", diff)
		}
		moved := RewriteLinks([]string{v}, "https://acme.okta.com", "http://127.0.0.1:1")
		if got := len(ParseLinks(moved)); got != len(links) {
			t.Fatalf("rewrite changed the link count: %d → %d", len(links), got)
		}
		if next := NextLink([]string{v}); next != "" && !strings.Contains(v, "<"+next+">") {
			t.Fatalf("NextLink %q is not a <…> substring of %q", next, v)
		}
	})
}

// FuzzRewriteLinks: never panics, never drops a link-value, and only ever moves
// targets on the Okta origin.
func FuzzRewriteLinks(f *testing.F) {
	f.Add(`<https://acme.okta.com/api/v1/users?after=x>; rel="next"`)
	f.Add(`<https://acme.okta.com/a>; rel="self", <https://acme.okta.com/b>; rel="next"`)
	f.Add(`<https://evil/x?a="<>,">; title="a,b"; rel=next`)
	f.Fuzz(func(t *testing.T, v string) {
		out := RewriteLinks([]string{v}, "https://acme.okta.com", "http://gw:1")
		if len(out) != len(splitLinks(v)) {
			t.Fatalf("%d values from %d link-values", len(out), len(splitLinks(v)))
		}
		for _, o := range out {
			// Well-formed link-values (starting with '<') never keep the Okta origin;
			// malformed ones are passed through verbatim.
			lo := strings.ToLower(o)
			if !strings.Contains(lo, ">") {
				continue
			}
			if strings.HasPrefix(lo, "<https://acme.okta.com/") || strings.HasPrefix(lo, "<https://acme.okta.com?") || lo == "<https://acme.okta.com>" {
				t.Fatalf("not rewritten: %q", o)
			}
		}
	})
}
