package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/quantaseal/gateway/internal/secret"
)

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// secretField decodes a JSON string straight into a secret.Secret, so a decoded request
// that reaches a log or an error prints "[redacted]".
type secretField struct{ secret.Secret }

func (f *secretField) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// The error names the JSON type, never the value.
		return errors.New("must be a string")
	}
	f.Secret = secret.New(s)
	return nil
}

// decodeJSON reads exactly one JSON object from the body into dst.
//
// 415 for a Content-Type other than application/json; 413 past the body limit; 400 for
// malformed JSON, an unknown member, a wrong type, an empty body (unless allowEmpty),
// and trailing data after the object.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, allowEmpty bool) *apiError {
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	ct := r.Header.Get("Content-Type")
	if ct == "" && allowEmpty {
		// An empty POST without a content type is an empty object.
		n, err := io.Copy(io.Discard, io.LimitReader(body, 1))
		if err == nil && n == 0 {
			return nil
		}
		return tooLargeOr(err, &apiError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia,
			Message: "Content-Type must be application/json"})
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" || (params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia,
			Message: "Content-Type must be application/json"}
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			if allowEmpty {
				return nil
			}
			return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "empty body: a JSON object is required"}
		}
		return tooLargeOr(err, jsonError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tooLargeOr(err, &apiError{Status: http.StatusBadRequest, Code: CodeInvalidJSON,
			Message: "trailing data after the JSON object"})
	}
	return nil
}

func tooLargeOr(err error, other *apiError) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
			Message: "request body is larger than the limit"}
	}
	return other
}

// jsonError describes a decoding error without echoing any input value.
func jsonError(err error) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: "malformed JSON"}
	case errors.As(err, &te):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Field: te.Field,
			Message: "wrong JSON type, want " + te.Type.String()}
	}
	// DisallowUnknownFields reports `json: unknown field "name"`, naming only the member;
	// secretField errors say "must be a string". Neither carries a value.
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: msg}
}
