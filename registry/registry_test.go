package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
)

func TestNewAPIKey(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	k1, s1 := registry.NewAPIKey("ten_x", "int_y", now)
	k2, s2 := registry.NewAPIKey("ten_x", "", now)
	if !strings.HasPrefix(s1.Reveal(), registry.APIKeyPrefix) || len(s1.Reveal()) != len("qs_live_")+43 {
		t.Fatalf("key shape: len %d", len(s1.Reveal()))
	}
	if !registry.WellFormedAPIKey(s1) || s1.Equal(s2) || k1.ID == k2.ID {
		t.Fatal("keys are not fresh and well-formed")
	}
	if k1.TenantID != "ten_x" || k1.IntegrationID != "int_y" || !k1.CreatedAt.Equal(now) || k1.RevokedAt != nil {
		t.Fatalf("record %+v", k1)
	}
	if string(k1.Hash) != string(registry.HashAPIKey(s1)) || len(k1.Hash) != 32 {
		t.Fatal("hash is not SHA-256 of the key")
	}
}

func TestWellFormedAPIKey(t *testing.T) {
	_, good := registry.NewAPIKey("ten_x", "", time.Now())
	g := good.Reveal()
	for _, tc := range []struct {
		name string
		key  string
		want bool
	}{
		{"good", g, true},
		{"empty", "", false},
		{"no prefix", g[len("qs_live_"):], false},
		{"test prefix", "qs_test_" + g[len("qs_live_"):], false},
		{"short", g[:len(g)-1], false},
		{"long", g + "A", false},
		{"padding", g[:len(g)-1] + "=", false},
		{"std alphabet", g[:len(g)-1] + "+", false},
		{"non-canonical last char", "qs_live_" + strings.Repeat("A", 42) + "B", false},
	} {
		if got := registry.WellFormedAPIKey(secret.New(tc.key)); got != tc.want {
			t.Errorf("%s: WellFormedAPIKey = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// mapKeys is a KeyLookup over a map, with an optional failure.
type mapKeys struct {
	keys map[string]registry.APIKey
	err  error
}

func (m mapKeys) LookupAPIKey(_ context.Context, hash []byte) (registry.APIKey, error) {
	if m.err != nil {
		return registry.APIKey{}, m.err
	}
	k, ok := m.keys[string(hash)]
	if !ok {
		return registry.APIKey{}, registry.ErrNotFound
	}
	return k, nil
}

func TestAuthenticate(t *testing.T) {
	live, liveKey := registry.NewAPIKey("ten_a", "", time.Now())
	revoked, revokedKey := registry.NewAPIKey("ten_a", "", time.Now())
	at := time.Now()
	revoked.RevokedAt = &at
	// A store that returns a row whose hash differs (a buggy or case-folding index).
	_, otherKey := registry.NewAPIKey("ten_a", "", time.Now())
	wrong := live
	wrong.Hash = make([]byte, 32)
	store := mapKeys{keys: map[string]registry.APIKey{
		string(live.Hash): live, string(revoked.Hash): revoked, string(registry.HashAPIKey(otherKey)): wrong,
	}}
	_, unknown := registry.NewAPIKey("ten_a", "", time.Now())
	for _, tc := range []struct {
		name  string
		store registry.KeyLookup
		key   secret.Secret
		want  error
	}{
		{"live", store, liveKey, nil},
		{"revoked", store, revokedKey, registry.ErrInvalidAPIKey},
		{"unknown", store, unknown, registry.ErrInvalidAPIKey},
		{"malformed", store, secret.New("qs_live_x"), registry.ErrInvalidAPIKey},
		{"hash mismatch from store", store, otherKey, registry.ErrInvalidAPIKey},
		{"store down", mapKeys{err: registry.ErrUnavailable}, liveKey, registry.ErrUnavailable},
	} {
		got, err := registry.NewAuthenticator(tc.store).Authenticate(t.Context(), tc.key)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == nil && got.ID != live.ID {
			t.Errorf("%s: got key %s", tc.name, got.ID)
		}
		if tc.want == registry.ErrUnavailable && errors.Is(err, registry.ErrInvalidAPIKey) {
			t.Errorf("%s: store failure reported as an invalid key", tc.name)
		}
		if err != nil && strings.Contains(err.Error(), tc.key.Reveal()) && tc.key.Reveal() != "" {
			t.Errorf("%s: error contains the key", tc.name)
		}
	}
}

func TestCheckOktaOrigin(t *testing.T) {
	allowed := []string{"https://login.example.com", "http://127.0.0.1:8999", "http://localhost:9000", "http://[::1]:7000", "http://test.example.com"}
	for _, tc := range []struct {
		in, want string
	}{
		{"https://acme.okta.com", "https://acme.okta.com"},
		{"https://ACME.Okta.com/", "https://acme.okta.com"},
		{"https://acme.oktapreview.com", "https://acme.oktapreview.com"},
		{"https://acme.okta-emea.com", "https://acme.okta-emea.com"},
		{"https://acme.okta-gov.com", "https://acme.okta-gov.com"},
		{"https://acme.okta.mil", "https://acme.okta.mil"},
		{"https://a.b.okta.com", "https://a.b.okta.com"},
		{"https://login.example.com", "https://login.example.com"},
		{"http://127.0.0.1:8999", "http://127.0.0.1:8999"},
		{"http://localhost:9000/", "http://localhost:9000"},
		{"http://[::1]:7000", "http://[::1]:7000"},
		// rejected
		{"http://acme.okta.com", ""},
		{"https://okta.com", ""},
		{"https://.okta.com", ""},
		{"https://acmeokta.com", ""},
		{"https://acme.okta.com.evil.com", ""},
		{"https://evil.com/.okta.com", ""},
		{"https://evil.com?.okta.com", ""},
		{"https://evil.com#.okta.com", ""},
		{"https://acme.okta.com@evil.com", ""},
		{"https://user:pw@acme.okta.com", ""},
		{"https://evil.com\\@acme.okta.com", ""},
		{"https://acme.okta.com:443", ""},
		{"https://acme.okta.com:8443", ""},
		{"https://acme.okta.com/oauth2", ""},
		{"https://acme.okta.com/?", ""},
		{"https://acme%2eokta.com", ""},
		{"https://-acme.okta.com", ""},
		{"https://ac_me.okta.com", ""},
		{"https://acme..okta.com", ""},
		{"https://acme.okta.com.", ""},
		{"acme.okta.com", ""},
		{"//acme.okta.com", ""},
		{"ftp://acme.okta.com", ""},
		{"https:acme.okta.com", ""},
		{"https://", ""},
		{"", ""},
		{" https://acme.okta.com", ""},
		{"https://acme.okta.com\n", ""},
		{"http://test.example.com", ""}, // allowed list, but http on a non-loopback host
		{"http://127.0.0.1:9999", ""},   // loopback, but not allowed
		{"https://login.example.com:443", ""},
		{"http://127.0.0.1.nip.io:8999", ""},
	} {
		got, err := registry.CheckOktaOrigin(tc.in, allowed)
		if tc.want == "" {
			if err == nil || !errors.Is(err, registry.ErrInvalidOrigin) {
				t.Errorf("CheckOktaOrigin(%q) = %q, %v; want ErrInvalidOrigin", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CheckOktaOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzCheckOktaOrigin: whatever is accepted is a bare origin whose host is an Okta
// subdomain or one of the allowed origins, and canonicalisation is idempotent.
func FuzzCheckOktaOrigin(f *testing.F) {
	allowed := []string{"https://login.example.com", "http://127.0.0.1:8999"}
	for _, s := range []string{"https://acme.okta.com", "https://acme.okta.com@evil.com", "http://127.0.0.1:8999", "https://x.okta-emea.com/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := registry.CheckOktaOrigin(in, allowed)
		if err != nil {
			return
		}
		again, err := registry.CheckOktaOrigin(got, allowed)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, got, again, err)
		}
		if got == allowed[0] || got == allowed[1] {
			return
		}
		host, ok := strings.CutPrefix(got, "https://")
		if !ok || strings.ContainsAny(host, "/@?#:\\ ") {
			t.Fatalf("accepted %q as %q", in, got)
		}
		okta := false
		for _, s := range []string{".okta.com", ".oktapreview.com", ".okta-emea.com", ".okta-gov.com", ".okta.mil"} {
			okta = okta || (strings.HasSuffix(host, s) && len(host) > len(s))
		}
		if !okta {
			t.Fatalf("accepted non-Okta host %q (from %q)", got, in)
		}
	})
}

// FuzzWellFormedAPIKey: a well-formed key always has the exact shape.
func FuzzWellFormedAPIKey(f *testing.F) {
	_, k := registry.NewAPIKey("ten_x", "", time.Now())
	f.Add(k.Reveal())
	f.Add("qs_live_")
	f.Fuzz(func(t *testing.T, in string) {
		if registry.WellFormedAPIKey(secret.New(in)) && (len(in) != 51 || !strings.HasPrefix(in, "qs_live_")) {
			t.Fatalf("accepted %q", in)
		}
	})
}
