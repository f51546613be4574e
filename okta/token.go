package okta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/vault"
)

// Config tunes a [TokenSource]. The zero value is usable.
type Config struct {
	// HTTPClient sends token requests. nil means a client with Go's default transport.
	// Its own Timeout, if any, applies on top of Timeout below.
	HTTPClient *http.Client
	// Timeout bounds one token-endpoint attempt, and the credential load. Default 10s.
	Timeout time.Duration
	// RefreshBefore is how long before expiry a token is refreshed in the background.
	// It is capped at half the token's lifetime. Default 5m.
	RefreshBefore time.Duration
	// ExpiryLeeway: a token is not handed out once it is this close to expiry (capped
	// at a quarter of its lifetime), so that it cannot expire in flight. Default 30s.
	ExpiryLeeway time.Duration
	// MaxRetries is how many times a token request is retried after a 5xx answer or a
	// network error (never after a 4xx). 0 means the default, 2; negative means none.
	MaxRetries int
	// RetryBackoff is the wait before the first retry; it doubles per retry. Default 250ms.
	RetryBackoff time.Duration
	// ScopeRefusalTTL is how long a token endpoint's invalid_scope answer for a scope
	// set is remembered, during which operations fall back to single-scope tokens
	// without asking again for the whole set. Default 5m.
	ScopeRefusalTTL time.Duration
	// FailureTTL bounds how long a failed token fetch is remembered per integration and
	// scope set, so that a broken credential or an unwell token endpoint does not turn
	// every call into a token request. invalid_client, token_rejected and
	// invalid_credential are remembered for FailureTTL; token_unavailable, token_timeout
	// and rate_limited for a backoff that starts at 1s (or FailureTTL if shorter) and
	// doubles per consecutive failure up to FailureTTL, except that a rate_limited answer
	// carrying Okta's X-Rate-Limit-Reset is remembered until that reset (at most a
	// minute). [TokenSource.Invalidate] forgets it at once. Default 5s; negative turns
	// the negative cache off.
	FailureTTL time.Duration
	// Now returns the current time; nil means time.Now. Expiry arithmetic uses it;
	// background waits use timers (so tests use testing/synctest).
	Now func() time.Time
	// Logger receives background-refresh failures (the only errors not returned to a
	// caller). nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.RefreshBefore <= 0 {
		c.RefreshBefore = 5 * time.Minute
	}
	if c.ExpiryLeeway <= 0 {
		c.ExpiryLeeway = 30 * time.Second
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = 2
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 250 * time.Millisecond
	}
	if c.ScopeRefusalTTL <= 0 {
		c.ScopeRefusalTTL = 5 * time.Minute
	}
	if c.FailureTTL == 0 {
		c.FailureTTL = DefaultFailureTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// DefaultFailureTTL is Config.FailureTTL's default: how long a failed token fetch is
// remembered before the token endpoint is asked again.
const DefaultFailureTTL = 5 * time.Second

// AuthorizeInput describes one upstream Okta call that needs credentials.
type AuthorizeInput struct {
	IntegrationID string
	// OktaOrigin is the org's origin, "https://acme.okta.com" (no path). The token
	// endpoint is OktaOrigin + "/oauth2/v1/token".
	OktaOrigin string
	// Scopes are requested together in one token: the scopes of every operation the
	// integration allows. The granted set is cached with the token.
	Scopes []string
	// Scope is the scope this call's operation needs ("" = none checked). If Okta did
	// not grant it, Authorize fails with insufficient_scope naming it, while calls whose
	// scopes were granted keep working. It is added to Scopes if missing.
	Scope string
	// Method and URL are the upstream request's (URL absolute; any query is dropped
	// for the DPoP htu claim).
	Method, URL string
	// Credential loads the integration's credential from the vault. It is called only
	// when a token must be fetched (cache miss or refresh), possibly from a background
	// goroutine after Authorize returned; the plaintext is dropped after the request.
	Credential func(ctx context.Context) (vault.Credential, error)
}

// Authorization is what to inject into the upstream request.
type Authorization struct {
	Header        secret.Secret // the Authorization value: "Bearer …", "DPoP …" or "SSWS …"
	DPoPProof     secret.Secret // the DPoP header value for DPoP-bound tokens, else zero
	GrantedScopes []string      // requested scopes Okta granted (sorted); nil for API tokens
}

// TokenSource obtains, caches and refreshes Okta access tokens per integration. It is
// safe for concurrent use. [TokenSource.Close] stops its background refreshes.
type TokenSource struct {
	cfg     Config
	metrics *metrics
	ctx     context.Context // cancelled by Close; parent of every token request
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	entries  map[cacheKey]*entry
	dpopKeys map[string]*signingKey // integration ID → DPoP key (distinct from the client key)
	nonces   map[string]string      // origin → last DPoP-Nonce the token endpoint gave
}

type cacheKey struct {
	integration, origin, scopes string // scopes: sorted, space-joined
}

// entry is the cache slot of one integration + scope set. All fields are guarded by
// TokenSource.mu.
type entry struct {
	key        cacheKey
	scopes     []string
	credential func(context.Context) (vault.Credential, error) // latest given
	tok        *token
	flight     *flight       // the token request in progress, shared by all waiters
	refreshing bool          // a refresh goroutine owns this entry
	used       bool          // handed out since the current token was stored
	stop       chan struct{} // closed when the entry is dropped
	refused    error         // invalid_scope for this scope set …
	refusedTo  time.Time     // … remembered until then
	failed     *Error        // the last fetch's failure (negative cache) …
	failedTo   time.Time     // … remembered until then
	failures   int           // consecutive temporary failures, for the backoff
}

type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

type token struct {
	value     secret.Secret
	typ       string // "Bearer", "DPoP" or "SSWS"
	granted   []string
	expiresAt time.Time // zero for API tokens (no expiry)
	usableTo  time.Time
	refreshAt time.Time
	dpop      *signingKey // the key the token is bound to (typ DPoP)
}

const (
	tokenPath       = "/oauth2/v1/token"
	maxResponseBody = 1 << 20
	defaultLifetime = time.Hour // Okta's fixed lifetime, used if expires_in is missing

	// firstFailureBackoff is how long the first temporary token-endpoint failure is
	// remembered; it doubles per consecutive failure up to Config.FailureTTL.
	firstFailureBackoff = time.Second
	// maxRateLimitWait caps how long a rate_limited answer is remembered when its
	// X-Rate-Limit-Reset lies further ahead. Okta's token-endpoint limit is per second
	// (okta-api.md §2), so a reset minutes or years away is a bad clock or a proxy's
	// invention, and must not lock an integration out for that long.
	maxRateLimitWait = time.Minute
)

// NewTokenSource returns a TokenSource. Call Close when done with it.
func NewTokenSource(cfg Config) *TokenSource {
	ctx, cancel := context.WithCancel(context.Background())
	return &TokenSource{
		cfg:      cfg.withDefaults(),
		metrics:  newMetrics(),
		ctx:      ctx,
		cancel:   cancel,
		entries:  map[cacheKey]*entry{},
		dpopKeys: map[string]*signingKey{},
		nonces:   map[string]string{},
	}
}

// Close stops background refreshes and cancels token requests in flight, and waits for
// them. Later Authorize calls return [ErrClosed].
func (ts *TokenSource) Close() error {
	ts.mu.Lock()
	if !ts.closed {
		ts.closed = true
		for k, e := range ts.entries {
			close(e.stop)
			delete(ts.entries, k)
		}
	}
	ts.mu.Unlock()
	ts.cancel()
	ts.wg.Wait()
	return nil
}

// Invalidate drops every cached token, remembered failure and the DPoP key of an
// integration, for instance after its credential was rotated, its configuration
// changed, or Okta answered 401 invalid_token: the next Authorize asks Okta again at
// once. A request in flight completes for its waiters but is not cached.
func (ts *TokenSource) Invalidate(integrationID string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for k, e := range ts.entries {
		if k.integration == integrationID {
			close(e.stop)
			delete(ts.entries, k)
		}
	}
	delete(ts.dpopKeys, integrationID)
}

// Authorize returns the credentials for one upstream call, from the cache when it can.
// Errors are [*Error] (codes in errors.go), [ErrClosed], or the Credential loader's
// error wrapped (so vault.ErrUnavailable stays detectable with errors.Is).
func (ts *TokenSource) Authorize(ctx context.Context, in AuthorizeInput) (Authorization, error) {
	origin, err := normalizeOrigin(in.OktaOrigin)
	if err != nil {
		return Authorization{}, err
	}
	if in.IntegrationID == "" || in.Credential == nil {
		return Authorization{}, errors.New("okta: authorize: integration ID and credential loader are required")
	}
	scopes := normalizeScopes(in.Scopes, in.Scope)
	key := cacheKey{integration: in.IntegrationID, origin: origin, scopes: strings.Join(scopes, " ")}
	tok, err := ts.token(ctx, key, scopes, in.Credential)
	if err != nil {
		// Okta refused the whole set with invalid_scope, which does not say which scope
		// is at fault: fall back to a token for just this operation's scope, so that one
		// ungranted scope does not break the operations whose scopes are granted.
		var oe *Error
		if errors.As(err, &oe) && oe.Code == CodeInsufficientScope && in.Scope != "" && len(scopes) > 1 {
			narrow := in
			narrow.Scopes = nil
			return ts.Authorize(ctx, narrow)
		}
		return Authorization{}, err
	}
	return ts.authorization(tok, in)
}

// token returns a usable token for key, from the cache or from the (shared) token request.
func (ts *TokenSource) token(ctx context.Context, key cacheKey, scopes []string, cred func(context.Context) (vault.Credential, error)) (*token, error) {
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		return nil, ErrClosed
	}
	e := ts.entries[key]
	if e == nil {
		e = &entry{key: key, scopes: scopes, stop: make(chan struct{})}
		ts.entries[key] = e
	}
	e.credential = cred
	now := ts.cfg.Now()
	if e.tok != nil && (e.tok.expiresAt.IsZero() || now.Before(e.tok.usableTo)) {
		tok := e.tok
		e.used = true
		ts.mu.Unlock()
		ts.metrics.cacheHit.Inc()
		return tok, nil
	}
	if e.failed != nil && now.Before(e.failedTo) {
		err := e.failed.remembered(e.failedTo.Sub(now))
		ts.mu.Unlock()
		ts.metrics.cacheNegative.Inc()
		return nil, err
	}
	ts.metrics.cacheMiss.Inc()
	if e.refused != nil && now.Before(e.refusedTo) {
		err := e.refused
		ts.mu.Unlock()
		return nil, err
	}
	f := e.flight
	if f == nil {
		f = ts.startFlightLocked(e)
	}
	ts.mu.Unlock()
	select {
	case <-f.done:
		if oe, ok := f.err.(*Error); ok { // each waiter gets its own copy
			c := *oe
			return nil, &c
		}
		return f.tok, f.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &Error{Code: CodeTokenTimeout, Description: "timed out waiting for the token endpoint", Err: ctx.Err()}
		}
		return nil, fmt.Errorf("okta: wait for token: %w", ctx.Err())
	}
}

// startFlightLocked starts the one token request for e. ts.mu must be held and ts open.
func (ts *TokenSource) startFlightLocked(e *entry) *flight {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	cred := e.credential
	ts.wg.Go(func() {
		tok, err := ts.fetch(ts.ctx, e.key, e.scopes, cred)
		ts.metrics.requests.WithLabelValues(resultLabel(err)).Inc()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		e.flight = nil
		if ts.entries[e.key] == e { // not invalidated meanwhile
			var oe *Error
			switch {
			case err == nil:
				e.tok, e.refused, e.used = tok, nil, false
				e.failed, e.failures = nil, 0
				if !tok.expiresAt.IsZero() && !e.refreshing && !ts.closed {
					e.refreshing = true
					ts.wg.Go(func() { ts.refreshLoop(e) })
				}
			case errors.As(err, &oe) && oe.Code == CodeInsufficientScope:
				e.refused, e.refusedTo = err, ts.cfg.Now().Add(ts.cfg.ScopeRefusalTTL)
			case errors.As(err, &oe):
				ts.rememberFailureLocked(e, oe)
			}
		}
		f.tok, f.err = tok, err
		close(f.done)
	})
	return f
}

// rememberFailureLocked stores a failed fetch's error in e's negative cache, for the
// codes and times Config.FailureTTL names, and sets RetryAfter on temporary errors for
// the flight's waiters. Other failures are not remembered: insufficient_scope has its
// own memory, invalid_dpop_proof may clear with the next nonce, and a failing vault
// loader (not an [*Error]) sent nothing to Okta. A caller's own cancellation never
// gets here: flights run under the source's context, not a caller's. ts.mu must be held.
func (ts *TokenSource) rememberFailureLocked(e *entry, oe *Error) {
	if ts.cfg.FailureTTL < 0 {
		return
	}
	var ttl time.Duration
	switch oe.Code {
	case CodeInvalidClient, CodeTokenRejected, CodeInvalidCredential:
		ttl, e.failures = ts.cfg.FailureTTL, 0
	case CodeTokenUnavailable, CodeTokenTimeout, CodeRateLimited:
		ttl = min(firstFailureBackoff, ts.cfg.FailureTTL)
		for range min(e.failures, 30) {
			ttl = min(2*ttl, ts.cfg.FailureTTL)
		}
		e.failures++
		if oe.Code == CodeRateLimited && oe.RetryAfter > 0 {
			ttl = min(oe.RetryAfter, maxRateLimitWait)
		}
		oe.RetryAfter = ttl
	default:
		return
	}
	c := *oe // the caller that triggered the fetch owns oe
	e.failed, e.failedTo = &c, ts.cfg.Now().Add(ttl)
}

// refreshLoop is the one goroutine per cached token that renews it before it expires,
// so that requests never wait on the token endpoint in steady state. It ends when the
// entry is dropped, the source closes, the token expires without a successful refresh,
// or the token was not used since it was stored: an idle entry (say, of a deleted
// integration) is dropped instead of being refreshed forever. In each case the next
// Authorize fetches in the foreground.
func (ts *TokenSource) refreshLoop(e *entry) {
	for {
		ts.mu.Lock()
		tok := e.tok
		if tok == nil {
			e.refreshing = false
			ts.mu.Unlock()
			return
		}
		ts.mu.Unlock()
		at := tok.refreshAt
		for {
			if !ts.sleepUntil(e, at) {
				return
			}
			ts.mu.Lock()
			if ts.closed || ts.entries[e.key] != e {
				ts.mu.Unlock()
				return
			}
			if !e.used && e.flight == nil && e.tok == tok {
				delete(ts.entries, e.key)
				close(e.stop)
				e.refreshing = false
				ts.mu.Unlock()
				return
			}
			f := e.flight
			if f == nil {
				f = ts.startFlightLocked(e)
			}
			ts.mu.Unlock()
			select {
			case <-f.done:
			case <-e.stop:
				return
			}
			if f.err == nil {
				break
			}
			ts.cfg.Logger.LogAttrs(ts.ctx, slog.LevelWarn, "okta token refresh failed",
				slog.String("integration_id", e.key.integration), slog.String("code", errorCode(f.err)))
			now := ts.cfg.Now()
			if !now.Before(tok.expiresAt) {
				ts.mu.Lock()
				if e.tok == tok {
					e.tok = nil
				}
				e.refreshing = false
				ts.mu.Unlock()
				return
			}
			// Try again after a quarter of the remaining lifetime (at least a second),
			// and not while the failure is remembered.
			at = now.Add(max(tok.expiresAt.Sub(now)/4, time.Second))
			ts.mu.Lock()
			if e.failed != nil && e.failedTo.After(at) {
				at = e.failedTo
			}
			ts.mu.Unlock()
		}
		ts.mu.Lock()
		same := e.tok == tok
		if same {
			e.refreshing = false
		}
		ts.mu.Unlock()
		if same { // the new token was not stored (entry dropped); nothing to refresh
			return
		}
	}
}

// sleepUntil waits until t by the timer clock; false if e was dropped or ts closed.
func (ts *TokenSource) sleepUntil(e *entry, t time.Time) bool {
	d := t.Sub(ts.cfg.Now())
	if d <= 0 {
		select {
		case <-e.stop:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-e.stop:
		return false
	case <-ts.ctx.Done():
		return false
	}
}

// fetch loads the credential and obtains a token for it.
func (ts *TokenSource) fetch(ctx context.Context, key cacheKey, scopes []string, load func(context.Context) (vault.Credential, error)) (*token, error) {
	lctx, cancel := context.WithTimeout(ctx, ts.cfg.Timeout)
	cred, err := load(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("okta: load credential of integration %q: %w", key.integration, err)
	}
	switch cred.Type {
	case vault.CredentialTypeAPIKey:
		if cred.Token.IsZero() {
			return nil, &Error{Code: CodeInvalidCredential, Description: "api_key credential without token"}
		}
		return &token{value: cred.Token, typ: "SSWS"}, nil
	case vault.CredentialTypeOAuth2Client:
		return ts.requestToken(ctx, key, scopes, cred)
	}
	return nil, &Error{Code: CodeInvalidCredential, Description: fmt.Sprintf("unknown credential type %q", cred.Type)}
}

// authorization builds the injected headers for one call from a cached token.
func (ts *TokenSource) authorization(tok *token, in AuthorizeInput) (Authorization, error) {
	if tok.typ == "SSWS" {
		return Authorization{Header: secret.New("SSWS " + tok.value.Reveal())}, nil
	}
	if in.Scope != "" && !scopeGranted(tok.granted, in.Scope) {
		return Authorization{}, &Error{Code: CodeInsufficientScope, Scope: in.Scope,
			Description: "Okta did not grant this scope to the service app"}
	}
	a := Authorization{
		Header:        secret.New(tok.typ + " " + tok.value.Reveal()),
		GrantedScopes: slices.Clone(tok.granted),
	}
	if tok.typ == "DPoP" {
		if in.Method == "" || in.URL == "" {
			return Authorization{}, &Error{Code: CodeInvalidDPoPProof, Description: "a DPoP proof needs the request method and URL"}
		}
		proof, err := ts.dpopProof(tok.dpop, in.Method, in.URL, "", tok.value.Reveal())
		if err != nil {
			return Authorization{}, err
		}
		a.DPoPProof = secret.New(proof)
	}
	return a, nil
}

// scopeGranted reports whether need is among granted, where a manage scope also covers
// its read scope (okta-api.md §3: "A manage scope covers everything the matching read
// scope does").
func scopeGranted(granted []string, need string) bool {
	if slices.Contains(granted, need) {
		return true
	}
	base, ok := strings.CutSuffix(need, ".read")
	return ok && slices.Contains(granted, base+".manage")
}

func normalizeScopes(scopes []string, extra string) []string {
	out := make([]string, 0, len(scopes)+1)
	for _, s := range append(slices.Clone(scopes), extra) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("okta: invalid Okta origin %q", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// resultLabel is the bounded metric label of a token fetch: "ok", an error code, or
// "error" for anything else (e.g. the vault loader failing).
func resultLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return errorCode(err)
}

func errorCode(err error) string {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return "error"
}

// drain reads at most maxResponseBody bytes of a response body and closes it.
func drain(r io.ReadCloser) ([]byte, error) {
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, maxResponseBody))
}
