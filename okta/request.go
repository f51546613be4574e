package okta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/vault"
)

// assertionLifetime is the client assertion's exp - iat. Okta allows up to an hour
// (service-app guide); a short one limits replay of a leaked assertion.
const assertionLifetime = 5 * time.Minute

// maxTokenSteps bounds the DPoP negotiation: proofless → invalid_dpop_proof → proof →
// use_dpop_nonce → proof with nonce. It can never loop (the Go SDK's recursion can).
const maxTokenSteps = 3

type tokenAnswer struct {
	status int
	header http.Header
	body   []byte
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	// Okta's E-code body (429 on the token endpoint uses it).
	ErrorCode    string `json:"errorCode"`
	ErrorSummary string `json:"errorSummary"`
}

type tokenJSON struct {
	AccessToken string  `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresIn   float64 `json:"expires_in"`
	Scope       *string `json:"scope"`
}

// requestToken runs the client-credentials grant against the org authorization server,
// with client_secret_basic or private_key_jwt and, when Okta asks for it, DPoP
// (okta-api.md §3; RFC 9449 §5, §8).
func (ts *TokenSource) requestToken(ctx context.Context, key cacheKey, scopes []string, cred vault.Credential) (*token, error) {
	if cred.ClientID == "" {
		return nil, &Error{Code: CodeInvalidCredential, Description: "oauth2_client credential without client_id"}
	}
	var clientKey *signingKey
	var kid string
	switch {
	case !cred.PrivateKey.IsZero():
		signer, alg, k, err := cred.SigningKey()
		if err != nil {
			return nil, &Error{Code: CodeInvalidCredential, Err: err}
		}
		if clientKey, err = newSigningKey(signer, alg); err != nil {
			return nil, &Error{Code: CodeInvalidCredential, Err: err}
		}
		kid = k
	case cred.ClientSecret.IsZero():
		return nil, &Error{Code: CodeInvalidCredential, Description: "oauth2_client credential without client_secret or private_key"}
	}
	tokenURL := key.origin + tokenPath

	ts.mu.Lock()
	dpop := ts.dpopKeys[key.integration] // known from an earlier grant: send a proof at once
	ts.mu.Unlock()

	for range maxTokenSteps {
		ts.mu.Lock()
		nonce := ts.nonces[key.origin]
		ts.mu.Unlock()
		ans, err := ts.post(ctx, func(ctx context.Context) (*http.Request, error) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")}}
			if clientKey != nil {
				now := ts.cfg.Now()
				a, err := clientKey.sign(jwsHeader{Kid: kid}, assertionClaims{
					Iss: cred.ClientID, Sub: cred.ClientID, Aud: tokenURL,
					Iat: now.Unix(), Exp: now.Add(assertionLifetime).Unix(), Jti: newJTI(),
				})
				if err != nil {
					return nil, err
				}
				form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
				form.Set("client_assertion", a)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			if clientKey == nil {
				// RFC 6749 §2.3.1: form-urlencode both parts before Basic encoding.
				req.SetBasicAuth(url.QueryEscape(cred.ClientID), url.QueryEscape(cred.ClientSecret.Reveal()))
			}
			if dpop != nil {
				p, err := ts.dpopProof(dpop, http.MethodPost, tokenURL, nonce, "")
				if err != nil {
					return nil, err
				}
				req.Header.Set("DPoP", p)
			}
			return req, nil
		})
		if err != nil {
			return nil, err
		}
		if ans.status == http.StatusOK {
			return ts.parseToken(ans, scopes, dpop)
		}
		var oe oauthError
		_ = json.Unmarshal(ans.body, &oe) // a non-JSON body leaves oe empty
		switch oe.Error {
		case "invalid_dpop_proof":
			if dpop == nil { // Okta requires DPoP for this app: retry with a proof
				if dpop, err = ts.dpopKeyFor(key.integration); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &Error{Code: CodeInvalidDPoPProof, Status: ans.status, Description: oe.Description}
		case "use_dpop_nonce":
			fresh := ans.header.Get("DPoP-Nonce")
			if fresh == "" || (dpop != nil && fresh == nonce) {
				return nil, &Error{Code: CodeInvalidDPoPProof, Status: ans.status,
					Description: "token endpoint demanded a DPoP nonce without giving a new one"}
			}
			ts.mu.Lock()
			ts.nonces[key.origin] = fresh
			ts.mu.Unlock()
			if dpop == nil {
				if dpop, err = ts.dpopKeyFor(key.integration); err != nil {
					return nil, err
				}
			}
			continue
		case "invalid_client":
			return nil, &Error{Code: CodeInvalidClient, Status: ans.status, Description: oe.Description, ClientSecret: clientKey == nil}
		case "invalid_scope":
			return nil, &Error{Code: CodeInsufficientScope, Status: ans.status, Scope: strings.Join(scopes, " "), Description: oe.Description}
		}
		if ans.status == http.StatusTooManyRequests {
			return nil, &Error{Code: CodeRateLimited, Status: ans.status, Description: oe.ErrorSummary,
				RetryAfter: rateLimitWait(ans.header, ts.cfg.Now())}
		}
		desc := oe.Description
		if oe.Error != "" {
			desc = strings.TrimSuffix(oe.Error+": "+desc, ": ")
		}
		return nil, &Error{Code: CodeTokenRejected, Status: ans.status, Description: desc}
	}
	return nil, &Error{Code: CodeInvalidDPoPProof, Description: "DPoP negotiation with the token endpoint did not converge"}
}

func (ts *TokenSource) parseToken(ans *tokenAnswer, requested []string, dpop *signingKey) (*token, error) {
	var tj tokenJSON
	if err := json.Unmarshal(ans.body, &tj); err != nil || tj.AccessToken == "" {
		return nil, &Error{Code: CodeTokenUnavailable, Status: ans.status, Description: "token endpoint answered 200 without an access token"}
	}
	t := &token{value: secret.New(tj.AccessToken)}
	switch {
	case strings.EqualFold(tj.TokenType, "Bearer"):
		t.typ = "Bearer"
	case strings.EqualFold(tj.TokenType, "DPoP") && dpop != nil:
		t.typ, t.dpop = "DPoP", dpop
	default:
		return nil, &Error{Code: CodeTokenUnavailable, Status: ans.status, Description: fmt.Sprintf("unexpected token_type %q", tj.TokenType)}
	}
	// Okta silently drops requested scopes the app was not granted; the answer's scope
	// member says which were granted. Without it, RFC 6749 §5.1 says the grant is as
	// requested.
	if tj.Scope == nil {
		t.granted = slices.Clone(requested)
	} else {
		for _, s := range strings.Fields(*tj.Scope) {
			if slices.Contains(requested, s) {
				t.granted = append(t.granted, s)
			}
		}
		slices.Sort(t.granted)
		t.granted = slices.Compact(t.granted)
	}
	life := time.Duration(tj.ExpiresIn * float64(time.Second))
	if life <= 0 {
		life = defaultLifetime
	}
	now := ts.cfg.Now()
	t.expiresAt = now.Add(life)
	t.usableTo = t.expiresAt.Add(-min(ts.cfg.ExpiryLeeway, life/4))
	t.refreshAt = t.expiresAt.Add(-min(ts.cfg.RefreshBefore, life/2))
	return t, nil
}

// post sends one token request, retrying 5xx answers and network errors with
// exponential backoff. build is called per attempt so that each attempt carries a
// fresh assertion and proof (unique jti). 4xx answers are returned, not retried.
func (ts *TokenSource) post(ctx context.Context, build func(context.Context) (*http.Request, error)) (*tokenAnswer, error) {
	var lastErr error
	lastStatus := 0
	timedOut := false
	for attempt := 0; attempt <= ts.cfg.MaxRetries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(ts.cfg.RetryBackoff << (attempt - 1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			if ctx.Err() != nil {
				break
			}
		}
		actx, cancel := context.WithTimeout(ctx, ts.cfg.Timeout)
		req, err := build(actx)
		if err != nil {
			cancel()
			return nil, &Error{Code: CodeInvalidCredential, Description: "cannot build token request", Err: err}
		}
		resp, err := ts.cfg.HTTPClient.Do(req)
		if err != nil {
			cancel()
			lastErr, lastStatus = err, 0
			var ne net.Error
			timedOut = errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		body, err := drain(resp.Body)
		cancel()
		if err != nil {
			lastErr, lastStatus = err, resp.StatusCode
			var ne net.Error
			timedOut = errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
			continue
		}
		if resp.StatusCode >= 500 {
			lastErr, lastStatus, timedOut = fmt.Errorf("token endpoint answered %s", resp.Status), resp.StatusCode, false
			continue
		}
		return &tokenAnswer{status: resp.StatusCode, header: resp.Header, body: body}, nil
	}
	if ctx.Err() != nil {
		lastErr = ctx.Err()
		timedOut = true
	}
	if timedOut {
		return nil, &Error{Code: CodeTokenTimeout, Status: lastStatus, Err: lastErr}
	}
	return nil, &Error{Code: CodeTokenUnavailable, Status: lastStatus, Err: lastErr}
}

// rateLimitWait is how long until the rate-limit window of a 429 resets: Okta's
// X-Rate-Limit-Reset (UTC epoch seconds) less its Date header, so that a skewed local
// clock does not matter (the Go SDK computes its 429 backoff the same way, okta-api.md
// §2), or less now without a usable Date. 0 when the header is missing, unparseable or
// not in the future.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Rate-Limit-Reset")), 10, 64)
	if err != nil || reset <= 0 {
		return 0
	}
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	if reset > now.Unix()+int64(maxRateLimitWait/time.Second) {
		return maxRateLimitWait // also keeps the arithmetic below from overflowing
	}
	return max(time.Unix(reset, 0).Sub(now), 0)
}

type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
}

type dpopClaims struct {
	Jti   string `json:"jti"`
	Htm   string `json:"htm"`
	Htu   string `json:"htu"`
	Iat   int64  `json:"iat"`
	Nonce string `json:"nonce,omitempty"`
	Ath   string `json:"ath,omitempty"`
}

// dpopProof returns a DPoP proof JWT (RFC 9449 §4.2) for method and target (its query
// and fragment are dropped, §4.2 htu). accessToken, when set, is bound through ath.
func (ts *TokenSource) dpopProof(k *signingKey, method, target, nonce, accessToken string) (string, error) {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	jwk, err := k.publicJWK()
	if err != nil {
		return "", err
	}
	c := dpopClaims{Jti: newJTI(), Htm: method, Htu: target, Iat: ts.cfg.Now().Unix(), Nonce: nonce}
	if accessToken != "" {
		c.Ath = accessTokenHash(accessToken)
	}
	p, err := k.sign(jwsHeader{Typ: "dpop+jwt", JWK: jwk}, c)
	if err != nil {
		return "", &Error{Code: CodeInvalidDPoPProof, Description: "cannot sign DPoP proof", Err: err}
	}
	return p, nil
}

// dpopKeyFor returns the integration's DPoP key, creating it on first use.
func (ts *TokenSource) dpopKeyFor(integration string) (*signingKey, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if k := ts.dpopKeys[integration]; k != nil {
		return k, nil
	}
	k, err := newDPoPKey()
	if err != nil {
		return nil, err
	}
	ts.dpopKeys[integration] = k
	return k, nil
}
