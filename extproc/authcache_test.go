package extproc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/internal/secret"
)

// countingAuth knows the keys in keys; revoked keys answer ErrInvalidAPIKey.
type countingAuth struct {
	mu      sync.Mutex
	keys    map[string]Caller
	revoked map[string]bool
	err     error
	calls   int
}

func (a *countingAuth) Authenticate(_ context.Context, k secret.Secret) (Caller, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.err != nil {
		return Caller{}, a.err
	}
	c, ok := a.keys[k.Reveal()]
	if !ok || a.revoked[k.Reveal()] {
		return Caller{}, fmt.Errorf("lookup: %w", ErrInvalidAPIKey)
	}
	return c, nil
}

func (a *countingAuth) set(f func(a *countingAuth)) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f != nil {
		f(a)
	}
	return a.calls
}

// countingResolver answers from integs by (tenant, id), or by host when id is "".
type countingResolver struct {
	mu     sync.Mutex
	integs []Integration
	calls  int
}

func (r *countingResolver) ResolveIntegration(_ context.Context, tenant, id, host string) (Integration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, in := range r.integs {
		if (in.TenantID == tenant || tenant == "foreign") && (in.ID == id || id == "" && originHost(in.OktaOrigin) == host) {
			return in, nil
		}
	}
	return Integration{}, ErrIntegrationNotFound
}

func (r *countingResolver) set(f func(r *countingResolver)) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f != nil {
		f(r)
	}
	return r.calls
}

const (
	keyA  = "qs_live_CACHEKEYA0123456789abcdefgh"
	keyA2 = "qs_live_CACHEKEYA20123456789abcdefg"
	keyB  = "qs_live_CACHEKEYB0123456789abcdefgh"
)

// clock is the cache's time source in these tests, which run on one goroutine.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newCacheServer(t *testing.T, ttl time.Duration) (*Server, *countingAuth, *countingResolver, *clock) {
	t.Helper()
	auth := &countingAuth{keys: map[string]Caller{
		keyA:  {TenantID: "ten_A", KeyID: "key_A"},
		keyA2: {TenantID: "ten_A", KeyID: "key_A2"},
		keyB:  {TenantID: "ten_B", KeyID: "key_B"},
	}, revoked: map[string]bool{}}
	res := &countingResolver{integs: []Integration{
		{ID: "int_A", TenantID: "ten_A", SystemType: "okta", OktaOrigin: "https://a.okta.com", AllowedOperations: []string{"list_users"}, Envelope: EnvelopeNever},
		{ID: "int_B", TenantID: "ten_B", SystemType: "okta", OktaOrigin: "https://b.okta.com", AllowedOperations: []string{"list_users"}, Envelope: EnvelopeNever},
	}}
	s, err := New(Config{AuthCacheTTL: ttl}, Deps{Authenticator: auth, Integrations: res, Tokens: &fakeTokens{},
		Sealer: &fakeSealer{}, Recorder: &fakeRecorder{}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	s.cache.now = clk.now
	return s, auth, res, clk
}

func keyHeader(k string) headerList { return headerList{{"x-api-key", k}} }

func TestAuthCacheAuthenticate(t *testing.T) {
	s, auth, _, clk := newCacheServer(t, time.Second)
	ctx := t.Context()
	authn := func(k string) (Caller, error) { return s.authenticate(ctx, keyHeader(k)) }

	for range 3 {
		if c, err := authn(keyA); err != nil || c.KeyID != "key_A" {
			t.Fatalf("authenticate = %v, %v", c, err)
		}
	}
	if n := auth.set(nil); n != 1 {
		t.Errorf("3 calls within the TTL made %d lookups, want 1", n)
	}
	clk.advance(time.Second)
	if _, err := authn(keyA); err != nil {
		t.Fatal(err)
	}
	if n := auth.set(nil); n != 2 {
		t.Errorf("a call after the TTL made %d lookups in all, want 2", n)
	}

	// Revoked elsewhere: honoured until the TTL runs out, and no longer after.
	auth.set(func(a *countingAuth) { a.revoked[keyA] = true })
	if _, err := authn(keyA); err != nil {
		t.Errorf("within the TTL: %v", err)
	}
	clk.advance(time.Second)
	if _, err := authn(keyA); !errors.Is(err, ErrInvalidAPIKey) {
		t.Errorf("after the TTL: %v, want ErrInvalidAPIKey", err)
	}
	// Failures are not cached: the key is asked about every time.
	before := auth.set(nil)
	for range 2 {
		if _, err := authn(keyA); !errors.Is(err, ErrInvalidAPIKey) {
			t.Errorf("revoked key: %v", err)
		}
	}
	if n := auth.set(nil) - before; n != 2 {
		t.Errorf("2 calls with a revoked key made %d lookups, want 2", n)
	}
	// Store errors are not cached either.
	auth.set(func(a *countingAuth) { a.err = errors.New("store down") })
	if _, err := authn(keyB); err == nil {
		t.Error("store down: authenticated")
	}
	auth.set(func(a *countingAuth) { a.err = nil })
	if c, err := authn(keyB); err != nil || c.TenantID != "ten_B" {
		t.Errorf("store back: %v, %v", c, err)
	}
}

func TestAuthCacheForgetAPIKey(t *testing.T) {
	s, auth, _, _ := newCacheServer(t, time.Hour)
	ctx := t.Context()
	for _, k := range []string{keyA, keyA2} {
		if _, err := s.authenticate(ctx, keyHeader(k)); err != nil {
			t.Fatal(err)
		}
	}
	auth.set(func(a *countingAuth) { a.revoked[keyA] = true })
	s.ForgetAPIKey("ten_A", "key_A")
	if _, err := s.authenticate(ctx, keyHeader(keyA)); !errors.Is(err, ErrInvalidAPIKey) {
		t.Errorf("forgotten revoked key: %v, want ErrInvalidAPIKey", err)
	}
	before := auth.set(nil)
	if _, err := s.authenticate(ctx, keyHeader(keyA2)); err != nil {
		t.Errorf("other key of the tenant: %v", err)
	}
	if n := auth.set(nil) - before; n != 0 {
		t.Errorf("the tenant's other key was forgotten too (%d lookups)", n)
	}

	// A lookup in flight when the key is forgotten does not store its answer.
	h := sha256.Sum256([]byte(keyB))
	_, gen, ok := s.cache.caller(h)
	if ok {
		t.Fatal("keyB cached before any call")
	}
	s.ForgetAPIKey("ten_B", "key_B")
	s.cache.putCaller(h, Caller{TenantID: "ten_B", KeyID: "key_B"}, gen)
	if _, _, ok := s.cache.caller(h); ok {
		t.Error("an answer read before ForgetAPIKey was cached")
	}
}

func TestAuthCacheResolve(t *testing.T) {
	s, _, res, clk := newCacheServer(t, time.Second)
	ctx := t.Context()
	resolve := func(tenant, requested, host string) (Integration, string, error) {
		c := &call{caller: Caller{TenantID: tenant}}
		err := s.resolve(ctx, c, requested, host)
		return c.integ, c.policySHA, err
	}
	in, sha, err := resolve("ten_A", "", "a.okta.com")
	if err != nil || in.ID != "int_A" || sha == "" {
		t.Fatalf("resolve = %v %q %v", in, sha, err)
	}
	in2, sha2, err := resolve("ten_A", "", "a.okta.com")
	if err != nil || !cmp.Equal(in, in2) || sha2 != sha {
		t.Errorf("cached resolve = %v %q %v, want %v %q", in2, sha2, err, in, sha)
	}
	if n := res.set(nil); n != 1 {
		t.Errorf("2 resolutions made %d lookups, want 1", n)
	}

	// Isolation: tenant B asking for A's host or A's id is asked of the resolver and
	// finds nothing, although A's answers are cached under the same host and id.
	if _, _, err := resolve("ten_A", "int_A", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ requested, host string }{{"", "a.okta.com"}, {"int_A", ""}} {
		if in, _, err := resolve("ten_B", tc.requested, tc.host); !errors.Is(err, ErrIntegrationNotFound) {
			t.Errorf("tenant B, %q %q: %v, %v; want ErrIntegrationNotFound", tc.requested, tc.host, in.ID, err)
		}
	}
	// Not-found is not cached: once the integration exists it resolves.
	if _, _, err := resolve("ten_A", "", "a2.okta.com"); !errors.Is(err, ErrIntegrationNotFound) {
		t.Fatalf("before it exists: %v", err)
	}
	res.set(func(r *countingResolver) {
		r.integs = append(r.integs, Integration{ID: "int_A2", TenantID: "ten_A", SystemType: "okta", OktaOrigin: "https://a2.okta.com"})
	})
	if _, _, err := resolve("ten_A", "", "a2.okta.com"); err != nil {
		t.Errorf("new integration: %v", err)
	}

	// Changed elsewhere: the cached answer lasts until the TTL.
	res.set(func(r *countingResolver) { r.integs[0].AllowedOperations = []string{"list_users", "list_groups"} })
	if in, _, _ := resolve("ten_A", "", "a.okta.com"); len(in.AllowedOperations) != 1 {
		t.Errorf("within the TTL: %v", in.AllowedOperations)
	}
	clk.advance(time.Second)
	in3, sha3, err := resolve("ten_A", "", "a.okta.com")
	if err != nil || len(in3.AllowedOperations) != 2 || sha3 == sha {
		t.Errorf("after the TTL: %v %q %v", in3.AllowedOperations, sha3, err)
	}

	// Changed here: forgotten at once, for that tenant only.
	if _, _, err := resolve("ten_B", "", "b.okta.com"); err != nil {
		t.Fatal(err)
	}
	res.set(func(r *countingResolver) { r.integs[0].Envelope = EnvelopeAlways })
	s.ForgetIntegrations("ten_A")
	if in, _, _ := resolve("ten_A", "", "a.okta.com"); in.Envelope != EnvelopeAlways {
		t.Errorf("after ForgetIntegrations: envelope %q", in.Envelope)
	}
	before := res.set(nil)
	if _, _, err := resolve("ten_B", "", "b.okta.com"); err != nil {
		t.Fatal(err)
	}
	if n := res.set(nil) - before; n != 0 {
		t.Error("ForgetIntegrations of tenant A dropped tenant B's resolution")
	}

	// A lookup in flight when the tenant's integrations are forgotten does not store.
	_, gen, _ := s.cache.integration("ten_B", "int_B", "")
	s.ForgetIntegrations("ten_B")
	s.cache.putIntegration("ten_B", "int_B", "", resolved{integ: Integration{ID: "int_B", TenantID: "ten_B"}}, gen)
	if _, _, ok := s.cache.integration("ten_B", "int_B", ""); ok {
		t.Error("an answer read before ForgetIntegrations was cached")
	}
}

func TestAuthCacheForeignIntegration(t *testing.T) {
	s, _, res, _ := newCacheServer(t, time.Hour)
	// A resolver that answers with another tenant's integration is refused, and the
	// answer is not cached.
	for range 2 {
		c := &call{caller: Caller{TenantID: "foreign"}}
		if err := s.resolve(t.Context(), c, "int_A", ""); classify(err).code != CodeIntegrationNotFound {
			t.Errorf("foreign integration: %v", err)
		}
	}
	if n := res.set(nil); n != 2 {
		t.Errorf("lookups = %d, want 2 (refusals are not cached)", n)
	}
	// A cached entry whose tenant differs is refused too (defence in depth).
	s.cache.putIntegration("ten_X", "", "a.okta.com", resolved{integ: Integration{ID: "int_A", TenantID: "ten_A"}}, 0)
	c := &call{caller: Caller{TenantID: "ten_X"}}
	if err := s.resolve(t.Context(), c, "", "a.okta.com"); classify(err).code != CodeIntegrationNotFound {
		t.Errorf("foreign cached integration: %v", err)
	}
}

func TestAuthCacheDisabled(t *testing.T) {
	s, auth, res, _ := newCacheServer(t, -1)
	for range 2 {
		if _, err := s.authenticate(t.Context(), keyHeader(keyA)); err != nil {
			t.Fatal(err)
		}
		if err := s.resolve(t.Context(), &call{caller: Caller{TenantID: "ten_A"}}, "int_A", ""); err != nil {
			t.Fatal(err)
		}
	}
	if a, r := auth.set(nil), res.set(nil); a != 2 || r != 2 {
		t.Errorf("lookups with the cache off = %d, %d; want 2, 2", a, r)
	}
}

func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache(time.Second)
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	c.now = clk.now
	for i := range maxAuthCacheEntries + 10 {
		c.putIntegration("ten_A", "", fmt.Sprintf("h%d", i), resolved{}, 0)
	}
	if n := len(c.tenants["ten_A"].resolved); n != maxAuthCacheEntries {
		t.Errorf("%d entries, want the bound %d", n, maxAuthCacheEntries)
	}
	// Full of live entries: a new one is not cached. Once they expire, it is (after
	// a sweep).
	c.putIntegration("ten_A", "", "late", resolved{}, 0)
	if _, _, ok := c.integration("ten_A", "", "late"); ok {
		t.Error("cached past the bound")
	}
	clk.advance(time.Second)
	c.putIntegration("ten_A", "", "late", resolved{}, 0)
	if _, _, ok := c.integration("ten_A", "", "late"); !ok {
		t.Error("not cached after the sweep")
	}
	if n := len(c.tenants["ten_A"].resolved); n != 1 {
		t.Errorf("%d entries after the sweep, want 1", n)
	}
}
