package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// Error codes of the JSON error body.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidRequest   = "invalid_request"
	CodeInvalidAPIKey    = "invalid_api_key"
	CodeInvalidAdmin     = "invalid_admin_token"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeBodyTooLarge     = "body_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeTooManyRequests  = "too_many_requests"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// apiError is a response to send instead of a success. cause, when set, is logged
// (never sent): it may name hosts or constraint names.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	cause   error
	// retryAfter, when positive, is sent as Retry-After (whole seconds).
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(field, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: msg, Field: field}
}

func notFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found"}
}

// fromError maps an error of the registry, vault or audit layer to a response. It is the
// one place where those errors become HTTP statuses. Order matters: the vault wraps
// errors it does not know (such as registry.ErrConflict) in vault.ErrUnavailable too,
// so conflicts and not-found are checked before unavailability.
func fromError(what string, err error) *apiError {
	var ae *apiError
	var ve *vault.ValidationError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ve):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: ve.Message, Field: ve.Field, cause: err}
	case errors.Is(err, registry.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: CodeConflict, Message: what + " conflicts with existing state", cause: err}
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, vault.ErrNotFound), errors.Is(err, audit.ErrNotFound):
		e := notFound(what)
		e.cause = err
		return e
	case errors.Is(err, audit.ErrBadQuery):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: "invalid audit query (limit or cursor)", cause: err}
	case errors.Is(err, registry.ErrUnavailable), errors.Is(err, vault.ErrUnavailable), errors.Is(err, audit.ErrUnavailable):
		return unavailable(err)
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", cause: err}
}

func unavailable(cause error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
		Message: "a backing service (store, vault or key management) is unavailable; retry later", cause: cause}
}
