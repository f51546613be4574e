package okta_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/okta"
)

func TestParseLinkHeader(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []okta.Link
		next   string
	}{
		{
			name: "one header per rel (Okta)",
			values: []string{
				`<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`,
				`<https://acme.okta.com/api/v1/users?after=00u2&limit=2>; rel="next"`,
			},
			want: []okta.Link{
				{URL: "https://acme.okta.com/api/v1/users?limit=2", Rel: "self"},
				{URL: "https://acme.okta.com/api/v1/users?after=00u2&limit=2", Rel: "next"},
			},
			next: "https://acme.okta.com/api/v1/users?after=00u2&limit=2",
		},
		{
			name:   "comma-joined, commas inside the URL and quotes",
			values: []string{`<https://a.okta.com/x?a=1,2>; rel="self"; title="a, b", <https://a.okta.com/x?after=z>;rel=next`},
			want: []okta.Link{
				{URL: "https://a.okta.com/x?a=1,2", Rel: "self"},
				{URL: "https://a.okta.com/x?after=z", Rel: "next"},
			},
			next: "https://a.okta.com/x?after=z",
		},
		{
			name:   "garbage skipped",
			values: []string{`nonsense, <https://a.okta.com/p>; REL="Next"`, `<unterminated`},
			want:   []okta.Link{{URL: "https://a.okta.com/p", Rel: "Next"}},
			next:   "https://a.okta.com/p",
		},
		{name: "empty", values: nil, want: nil},
		{name: "no next", values: []string{`<https://a.okta.com/p>; rel="self"`}, want: []okta.Link{{URL: "https://a.okta.com/p", Rel: "self"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, okta.ParseLinkHeader(tt.values)); diff != "" {
				t.Errorf("ParseLinkHeader (-want +got):\n%s", diff)
			}
			if got := okta.NextLink(tt.values); got != tt.next {
				t.Errorf("NextLink = %q, want %q", got, tt.next)
			}
		})
	}
}

func TestRewriteLinks(t *testing.T) {
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
			from: "https://acme.okta.com", to: "http://127.0.0.1:10000",
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
			name:   "other origins and look-alike hosts untouched",
			values: []string{`<https://acme.okta.com.evil.com/a>; rel="next"`, `<https://other.okta.com/a>; rel="self"`, `junk`},
			from:   "https://acme.okta.com", to: "https://gw.example",
			want: []string{`<https://acme.okta.com.evil.com/a>; rel="next"`, `<https://other.okta.com/a>; rel="self"`, `junk`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, okta.RewriteLinks(tt.values, tt.from, tt.to)); diff != "" {
				t.Errorf("RewriteLinks (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseLinkHeader(f *testing.F) {
	f.Add(`<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`)
	f.Add(`<https://a.okta.com/x?a=1,2>; rel="self"; title="a, \"b\"", <https://a.okta.com/x?after=z>;rel=next`)
	f.Add(`<`)
	f.Add(`,,;<>;rel=`)
	f.Fuzz(func(t *testing.T, v string) {
		links := okta.ParseLinkHeader([]string{v})
		for _, l := range links {
			if !strings.Contains(v, "<"+l.URL+">") {
				t.Fatalf("URL %q is not a <…> substring of %q", l.URL, v)
			}
		}
		// Rewriting to the same origin changes no parsed link beyond the origin's case
		// (the origin is matched case-insensitively and written as given).
		same := okta.RewriteLinks([]string{v}, "https://acme.okta.com", "https://acme.okta.com")
		foldURL := cmp.Comparer(func(a, b okta.Link) bool { return strings.EqualFold(a.URL, b.URL) && a.Rel == b.Rel })
		if diff := cmp.Diff(links, okta.ParseLinkHeader(same), foldURL); diff != "" {
			t.Fatalf("identity rewrite changed links (-before +after):\n%s", diff)
		}
		moved := okta.RewriteLinks([]string{v}, "https://acme.okta.com", "http://127.0.0.1:1")
		if got := len(okta.ParseLinkHeader(moved)); got != len(links) {
			t.Fatalf("rewrite changed the link count: %d → %d", len(links), got)
		}
	})
}
