package okta

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/quantaseal/gateway/okta/oktaheader"
)

// Error codes carried by [Error]. They are stable machine codes: extproc maps them to the
// client-facing JSON error (ARCHITECTURE.md "Credentials and tokens").
const (
	// CodeInvalidClient: the token endpoint answered 401 invalid_client (wrong or
	// rotated secret or key, bad assertion, or client_secret against the org AS).
	CodeInvalidClient = "invalid_client"
	// CodeInsufficientScope: the app was not granted the scope an operation needs
	// (token endpoint invalid_scope, a granted scope set without it, or a resource 403).
	CodeInsufficientScope = "insufficient_scope"
	// CodeInvalidDPoPProof: Okta rejected our DPoP proof, or the nonce dance did not
	// converge within its bound.
	CodeInvalidDPoPProof = "invalid_dpop_proof"
	// CodeTokenTimeout: the token request (or the wait for it) ran out of time.
	CodeTokenTimeout = "token_timeout"
	// CodeTokenUnavailable: the token endpoint failed with 5xx or a network error after
	// every retry, or answered something unparseable.
	CodeTokenUnavailable = "token_unavailable"
	// CodeRateLimited: Okta answered 429.
	CodeRateLimited = "rate_limited"
	// CodeInvalidToken: a resource call was answered 401 (invalid, expired or revoked
	// token). The caller should [TokenSource.Invalidate] the integration.
	CodeInvalidToken = "invalid_token"
	// CodeTokenRejected: any other token-endpoint refusal (unsupported_grant_type,
	// access_denied, invalid_request, …); Description holds Okta's text.
	CodeTokenRejected = "token_rejected"
	// CodeInvalidCredential: the vault credential cannot be used (unknown type, missing
	// client id, unparseable private key). Nothing was sent to Okta.
	CodeInvalidCredential = "invalid_credential"
)

// ErrClosed is returned by [TokenSource.Authorize] after [TokenSource.Close].
var ErrClosed = errors.New("okta: token source closed")

// Error is a typed failure to authorize an Okta call. It never holds a secret, an
// assertion, a proof or a token: Description is Okta's error_description (or E-code
// summary) text, which describes the request, not its credentials.
type Error struct {
	Code        string // one of the Code* constants
	Scope       string // for insufficient_scope: the scope that is missing (space-separated if several)
	Status      int    // HTTP status Okta answered with; 0 when no answer was received
	Description string // Okta's error_description / errorSummary, if any
	// ClientSecret is set on invalid_client when the client authenticated with a client
	// secret (client_secret_basic): Okta's org authorization server only accepts
	// private_key_jwt for okta.* scopes, which the caller should say.
	ClientSecret bool
	// RetryAfter, on a temporary error from [TokenSource.Authorize], is how long the
	// source keeps answering with this error before it asks Okta again (its backoff, or
	// Okta's X-Rate-Limit-Reset for rate_limited; see [Config.FailureTTL]). From
	// [ClassifyResponse] it is unset. 0 means not known.
	RetryAfter time.Duration
	Err        error // underlying network or context error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("okta: ")
	b.WriteString(e.Code)
	if e.Scope != "" {
		fmt.Fprintf(&b, " (scope %s)", e.Scope)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// remembered returns the copy of a negatively cached error handed to one caller, so
// that no caller can change what the others see. left is the time until it expires.
func (e *Error) remembered(left time.Duration) *Error {
	c := *e
	if c.Temporary() {
		c.RetryAfter = left
	}
	return &c
}

// Temporary reports whether retrying later may succeed without any change to the
// credential or the app's configuration in Okta.
func (e *Error) Temporary() bool {
	switch e.Code {
	case CodeTokenTimeout, CodeTokenUnavailable, CodeRateLimited:
		return true
	}
	return false
}

// ClassifyResponse maps an Okta resource-server answer to an [*Error], or returns nil
// when the status is not one the token layer cares about:
//
//   - 401 → invalid_token (the caller should [TokenSource.Invalidate] and may retry once);
//   - 403 with WWW-Authenticate error="insufficient_scope" → insufficient_scope, Scope
//     parsed from the header's scope parameter (okta-api.md §2: the body is empty);
//   - 400/401 with WWW-Authenticate error="invalid_dpop_proof" → invalid_dpop_proof;
//   - 429 → rate_limited.
func ClassifyResponse(status int, header http.Header) *Error {
	params := map[string]string{}
	for _, v := range header.Values("Www-Authenticate") {
		for k, val := range oktaheader.AuthParams(v) {
			if _, ok := params[k]; !ok {
				params[k] = val
			}
		}
	}
	switch {
	case params["error"] == "invalid_dpop_proof" && (status == http.StatusBadRequest || status == http.StatusUnauthorized):
		return &Error{Code: CodeInvalidDPoPProof, Status: status, Description: params["error_description"]}
	case status == http.StatusUnauthorized:
		return &Error{Code: CodeInvalidToken, Status: status, Description: params["error_description"]}
	case status == http.StatusForbidden && params["error"] == "insufficient_scope":
		return &Error{Code: CodeInsufficientScope, Status: status, Scope: params["scope"], Description: params["error_description"]}
	case status == http.StatusTooManyRequests:
		return &Error{Code: CodeRateLimited, Status: status}
	}
	return nil
}
