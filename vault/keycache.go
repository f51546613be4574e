package vault

import (
	"context"
	"sync"
	"time"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

// tenantKey is a tenant's unwrapped vault key.
type tenantKey struct {
	priv  *mlkem768.PrivateKey
	pub   *mlkem768.PublicKey
	fpKey []byte // HMAC key for fingerprints, derived from the seed
}

// keyCache holds unwrapped tenant keys for a TTL. Concurrent misses for one tenant share one
// load; failed loads are not cached.
type keyCache struct {
	ttl time.Duration // <0: no caching
	now func() time.Time

	mu        sync.Mutex
	entries   map[string]*cacheEntry
	lastSweep time.Time
}

type cacheEntry struct {
	ready   chan struct{} // closed when key/err are set
	key     *tenantKey
	err     error
	expires time.Time
	// abandoned: the load failed because its caller's context ended, not because of
	// the key provider; waiters with a live context try again.
	abandoned bool
}

func newKeyCache(ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, now: now, entries: make(map[string]*cacheEntry)}
}

// get returns the tenant's key, calling load on a miss. Callers that find a load in flight
// wait for it; if that load failed only because its caller's context ended, they load
// again themselves.
func (c *keyCache) get(ctx context.Context, tenantID string, load func(context.Context) (*tenantKey, error)) (*tenantKey, error) {
	for {
		c.mu.Lock()
		now := c.now()
		c.sweepLocked(now)
		e, ok := c.entries[tenantID]
		if ok {
			select {
			case <-e.ready:
				if e.err != nil || !now.Before(e.expires) {
					ok = false // finished but failed (already removed) or expired
				}
			default: // in flight
			}
		}
		if !ok {
			e = &cacheEntry{ready: make(chan struct{})}
			c.entries[tenantID] = e
			c.mu.Unlock()
			return c.fill(ctx, tenantID, e, load)
		}
		c.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.key, nil
		}
		if e.abandoned && ctx.Err() == nil {
			continue // the leader gave up, not the key provider
		}
		return nil, e.err
	}
}

func (c *keyCache) fill(ctx context.Context, tenantID string, e *cacheEntry, load func(context.Context) (*tenantKey, error)) (*tenantKey, error) {
	key, err := load(ctx)
	c.mu.Lock()
	e.key, e.err = key, err
	e.abandoned = err != nil && ctx.Err() != nil
	if err == nil && c.ttl >= 0 {
		e.expires = c.now().Add(c.ttl)
	} else if c.entries[tenantID] == e {
		delete(c.entries, tenantID)
	}
	close(e.ready)
	c.mu.Unlock()
	return key, err
}

// sweepLocked drops expired keys at most once per TTL, so that keys of tenants that went
// quiet do not stay in memory.
func (c *keyCache) sweepLocked(now time.Time) {
	if c.ttl <= 0 || now.Sub(c.lastSweep) < c.ttl {
		return
	}
	c.lastSweep = now
	for id, e := range c.entries {
		select {
		case <-e.ready:
			if !now.Before(e.expires) {
				delete(c.entries, id)
			}
		default:
		}
	}
}
