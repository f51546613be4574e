package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/quantaseal/gateway/policy"
)

// This file is the one place where an error class becomes what the client sees: the
// HTTP status of the ImmediateResponse (ext_proc) or DeniedHttpResponse (ext_authz),
// the gRPC code of an ext_authz denial, and the stable machine code. The same code is
// the error member of the JSON body, the "code" metric label and the audit reason.

// Machine codes.
const (
	CodeInvalidAPIKey         = "invalid_api_key"
	CodeInvalidRequest        = "invalid_request"
	CodeIntegrationNotFound   = "integration_not_found"
	CodeIntegrationNotAllowed = "integration_not_allowed"
	CodeUnknownOperation      = policy.ReasonUnknownOperation
	CodeOperationNotAllowed   = policy.ReasonOperationNotAllowed
	CodeInvalidPayload        = "invalid_payload"
	CodePayloadTooLarge       = "payload_too_large"
	CodeInvalidClient         = "invalid_client"
	CodeInsufficientScope     = "insufficient_scope"
	CodeUpstreamError         = "upstream_error"
	CodeUnavailable           = "unavailable"
	CodeTooManyRequests       = "too_many_requests"
)

// Audit reasons that are not denials.
const (
	ReasonForwarded = "forwarded" // allowed and sent upstream (intent events, ext_authz)
	ReasonOK        = "ok"        // upstream answered 2xx or 3xx
	ReasonAborted   = "aborted"   // the stream ended before the call completed
)

// InvalidClientMessage is the documented text for invalid_client (ARCHITECTURE.md,
// "Credentials and tokens").
const InvalidClientMessage = "The OAuth2 client secret in QuantaVault is incorrect or has been rotated in Okta. " +
	"Generate a new client secret in the Okta Admin Console and update the vault entry."

// clientSecretNote is appended to InvalidClientMessage when the credential authenticated
// with a client secret: Okta's org authorization server only accepts private_key_jwt for
// okta.* scopes (okta-api.md §3, "Client authentication"), so a correct secret can be
// refused too.
const clientSecretNote = " Note: Okta's org authorization server accepts only private_key_jwt client " +
	"authentication for okta.* scopes; if the secret is correct, seal the app's private key instead."

// insufficientScopeMessage is the documented text for insufficient_scope; %s is the scope.
const insufficientScopeMessage = "The service app does not have the required Okta Management API scope (%s). " +
	"Add the missing scope in the Okta Admin Console under the app's OAuth2 scopes configuration."

var classes = map[string]struct {
	status  int
	grpc    codes.Code
	message string
}{
	CodeInvalidAPIKey: {http.StatusUnauthorized, codes.Unauthenticated,
		"A valid QuantaSeal API key is required: Authorization: SSWS qs_live_…, Authorization: Bearer qs_live_… or X-API-Key: qs_live_…."},
	CodeInvalidRequest: {http.StatusBadRequest, codes.InvalidArgument,
		"The request is malformed (duplicate credential headers, or control characters in a header value)."},
	CodeIntegrationNotFound: {http.StatusNotFound, codes.NotFound,
		"No integration of this tenant matches the X-QuantaSeal-Integration header, the API key or the request host."},
	CodeIntegrationNotAllowed: {http.StatusForbidden, codes.PermissionDenied,
		"This API key is bound to a different integration."},
	CodeUnknownOperation: {http.StatusForbidden, codes.PermissionDenied,
		"The request is not an operation of the catalogue."},
	CodeOperationNotAllowed: {http.StatusForbidden, codes.PermissionDenied,
		"The operation is not in the integration's allowed_operations."},
	CodeInvalidPayload: {http.StatusBadRequest, codes.InvalidArgument,
		"The payload does not match the operation's schema."},
	CodePayloadTooLarge: {http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		"The request body is too large."},
	CodeInvalidClient: {http.StatusUnauthorized, codes.Unauthenticated, InvalidClientMessage},
	CodeInsufficientScope: {http.StatusForbidden, codes.PermissionDenied,
		insufficientScopeMessage},
	CodeUpstreamError: {http.StatusBadGateway, codes.Unavailable,
		"Okta refused or failed the request."},
	CodeTooManyRequests: {http.StatusTooManyRequests, codes.ResourceExhausted,
		"Too many failed API-key attempts from this address; retry after the Retry-After delay."},
	CodeUnavailable: {http.StatusServiceUnavailable, codes.Unavailable,
		"A service the gateway depends on (vault, key management, token endpoint or audit store) is unavailable. Nothing was forwarded; retry later."},
}

// failure is a call the gateway answers itself, with a JSON error.
type failure struct {
	code   string
	field  string // invalid_payload: the offending member
	scope  string // insufficient_scope: the missing scope
	detail string // a safe, specific message replacing the class default ("" = default)
	cause  error  // for logs only; never holds a secret
	// retryAfter, when positive, is sent as Retry-After (too_many_requests, and
	// unavailable when the token source knows when it will ask Okta again).
	retryAfter time.Duration
}

func (f *failure) Error() string {
	if f.cause != nil {
		return f.code + ": " + f.cause.Error()
	}
	return f.code
}

func (f *failure) Unwrap() error { return f.cause }

func (f *failure) httpStatus() int {
	if c, ok := classes[f.code]; ok {
		return c.status
	}
	return http.StatusServiceUnavailable
}

func (f *failure) grpcCode() codes.Code {
	if c, ok := classes[f.code]; ok {
		return c.grpc
	}
	return codes.Unavailable
}

func (f *failure) message() string {
	if f.detail != "" {
		return f.detail
	}
	c, ok := classes[f.code]
	if !ok {
		return classes[CodeUnavailable].message
	}
	if f.code == CodeInsufficientScope {
		return fmt.Sprintf(c.message, f.scope)
	}
	return c.message
}

func fail(code string, cause error) *failure { return &failure{code: code, cause: cause} }

// classify maps an error from a dependency (or from policy) to its failure. Unknown
// errors become unavailable: the gateway fails closed.
func classify(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	var pe *policy.PayloadError
	var te TokenError
	switch {
	case errors.As(err, &pe):
		msg := "Invalid payload: " + pe.Message + "."
		if pe.Field != "" {
			msg = "Invalid payload: " + pe.Field + ": " + pe.Message + "."
		}
		return &failure{code: CodeInvalidPayload, field: pe.Field, detail: msg, cause: err}
	case errors.Is(err, policy.ErrUnknownOperation):
		return fail(CodeUnknownOperation, err)
	case errors.Is(err, ErrInvalidAPIKey):
		return fail(CodeInvalidAPIKey, err)
	case errors.Is(err, ErrIntegrationNotFound):
		return fail(CodeIntegrationNotFound, err)
	case errors.As(err, &te):
		switch te.Code() {
		case "invalid_client":
			var cs interface{ ClientSecret() bool }
			if errors.As(err, &cs) && cs.ClientSecret() {
				return &failure{code: CodeInvalidClient, detail: InvalidClientMessage + clientSecretNote, cause: err}
			}
			return fail(CodeInvalidClient, err)
		case "insufficient_scope", "invalid_scope":
			return &failure{code: CodeInsufficientScope, scope: te.Scope(), cause: err}
		case "token_timeout", "token_unavailable", "rate_limited":
			// A token source that remembers the failure says for how long; pass it on
			// as Retry-After so well-behaved clients do not retry into it.
			f := fail(CodeUnavailable, err)
			var ra interface{ RetryAfter() time.Duration }
			if errors.As(err, &ra) {
				f.retryAfter = ra.RetryAfter()
			}
			return f
		default: // invalid_dpop_proof, token_rejected, invalid_credential, …
			return fail(CodeUpstreamError, err)
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fail(CodeUnavailable, err)
	}
	return fail(CodeUnavailable, err)
}

// errorBody is the documented JSON error: {"error", "message", …, "audit_event_id"}.
func (f *failure) body(integrationID, auditEventID string) []byte {
	v := struct {
		Error         string `json:"error"`
		Message       string `json:"message"`
		Field         string `json:"field,omitempty"`
		Scope         string `json:"scope,omitempty"`
		IntegrationID string `json:"integration_id,omitempty"`
		AuditEventID  string `json:"audit_event_id,omitempty"`
	}{f.code, f.message(), f.field, f.scope, integrationID, auditEventID}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // cannot fail: strings only
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
