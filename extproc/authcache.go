package extproc

import (
	"crypto/sha256"
	"sync"
	"time"
)

// authCache keeps recent answers of the [Authenticator] and the [Integrations]
// resolver, so that a steady stream of calls makes no store round trip before its
// audit commit (without it every transparent call queried the store twice).
//
// Staleness is bounded. An entry lives at most ttl ([Config.AuthCacheTTL]), so a key
// revoked or an integration changed through another replica stops being honoured
// here within ttl. The replica that makes the change calls [Server.ForgetAPIKey] or
// [Server.ForgetIntegrations], which drop the entries at once and also keep a lookup
// already in flight, which may have read the old row, from storing its answer
// (generation counters).
//
// Only successes are kept: an unknown or revoked key and an unresolvable integration
// are asked again on every call, so a new key or integration works at once.
//
// Isolation: callers are keyed by the SHA-256 of the presented key (the value the
// store indexes; the key itself is never held), and resolutions by the tenant of the
// authenticated caller plus the requested integration id and host, so an entry of one
// tenant can never answer another tenant's call. resolve still checks the tenant of
// every integration it uses, cached or not.
type authCache struct {
	ttl time.Duration // <= 0: nothing is cached
	now func() time.Time

	mu      sync.RWMutex
	keyGen  uint64 // bumped by forgetAPIKey
	callers map[[sha256.Size]byte]cachedCaller
	tenants map[string]*tenantResolutions
}

// maxAuthCacheEntries bounds each map: a tenant with a single integration resolves
// any host to it, so the host part of the key is chosen by the client. Past the
// bound, expired entries are swept, and if that is not enough the answer is simply
// not cached.
const maxAuthCacheEntries = 10000

type cachedCaller struct {
	caller  Caller
	expires time.Time
}

type tenantResolutions struct {
	gen      uint64 // bumped by forgetIntegrations
	resolved map[resolveKey]resolved
}

type resolveKey struct{ requested, host string }

// resolved is a resolution with what resolve derives from it.
type resolved struct {
	integ     Integration
	policySHA string
	scopes    []string // allowedScopes(integ)
	expires   time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{
		ttl: ttl, now: time.Now,
		callers: map[[sha256.Size]byte]cachedCaller{},
		tenants: map[string]*tenantResolutions{},
	}
}

// caller returns the cached caller of a key hash and the current key generation,
// to be passed back to putCaller after a miss.
func (c *authCache) caller(h [sha256.Size]byte) (Caller, uint64, bool) {
	if c.ttl <= 0 {
		return Caller{}, 0, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.callers[h]
	if !ok || !c.now().Before(e.expires) {
		return Caller{}, c.keyGen, false
	}
	return e.caller, c.keyGen, true
}

// putCaller stores a successful authentication, unless a key was forgotten since
// generation gen was read.
func (c *authCache) putCaller(h [sha256.Size]byte, caller Caller, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.keyGen || !roomFor(c.callers, now, func(e cachedCaller) time.Time { return e.expires }) {
		return
	}
	c.callers[h] = cachedCaller{caller: caller, expires: now.Add(c.ttl)}
}

// forgetAPIKey drops the cached caller of a key (by its public id).
func (c *authCache) forgetAPIKey(tenantID, keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keyGen++
	for h, e := range c.callers {
		if e.caller.TenantID == tenantID && e.caller.KeyID == keyID {
			delete(c.callers, h)
		}
	}
}

// integration returns a cached resolution and the tenant's current generation, to
// be passed back to putIntegration after a miss.
func (c *authCache) integration(tenantID, requested, host string) (resolved, uint64, bool) {
	if c.ttl <= 0 {
		return resolved{}, 0, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.tenants[tenantID]
	if t == nil {
		return resolved{}, 0, false
	}
	r, ok := t.resolved[resolveKey{requested, host}]
	if !ok || !c.now().Before(r.expires) {
		return resolved{}, t.gen, false
	}
	return r, t.gen, true
}

// putIntegration stores a successful resolution, unless the tenant's integrations
// were forgotten since generation gen was read.
func (c *authCache) putIntegration(tenantID, requested, host string, r resolved, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenantID]
	if t == nil {
		if len(c.tenants) >= maxAuthCacheEntries {
			return
		}
		t = &tenantResolutions{resolved: map[resolveKey]resolved{}}
		c.tenants[tenantID] = t
	}
	if gen != t.gen || !roomFor(t.resolved, now, func(r resolved) time.Time { return r.expires }) {
		return
	}
	r.expires = now.Add(c.ttl)
	t.resolved[resolveKey{requested, host}] = r
}

// forgetIntegrations drops every cached resolution of a tenant: a change to one of
// its integrations can change which one a host resolves to.
func (c *authCache) forgetIntegrations(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenantID]
	if t == nil {
		// Keep a generation so that a lookup in flight does not store its answer.
		t = &tenantResolutions{resolved: map[resolveKey]resolved{}}
		c.tenants[tenantID] = t
	}
	t.gen++
	clear(t.resolved)
}

// roomFor reports whether m may take one more entry, sweeping expired entries when
// it is full. The caller holds the write lock.
func roomFor[K comparable, V any](m map[K]V, now time.Time, expires func(V) time.Time) bool {
	if len(m) < maxAuthCacheEntries {
		return true
	}
	for k, v := range m {
		if !now.Before(expires(v)) {
			delete(m, k)
		}
	}
	return len(m) < maxAuthCacheEntries
}
