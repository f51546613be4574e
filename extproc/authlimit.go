package extproc

import (
	"context"
	"errors"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/quantaseal/gateway/internal/authlimit"
)

// attributesNamespace is where Envoy puts the request_attributes it was asked for
// (envoy-extproc.md §5, "Attributes").
const attributesNamespace = "envoy.filters.http.ext_proc"

// sourceOf returns the downstream peer Envoy reports in the source.address request
// attribute (the shipped bootstrap asks for it), as an authlimit source key; "" when
// Envoy sends no such attribute. Client headers such as X-Forwarded-For are never used:
// a guesser could rotate them freely.
func sourceOf(req *extprocv3.ProcessingRequest) string {
	v := req.GetAttributes()[attributesNamespace].GetFields()["source.address"].GetStringValue()
	if v == "" {
		return ""
	}
	return authlimit.SourceFromAddr(v)
}

// authenticateFrom is authenticate behind the per-source limit of failed attempts
// (Config.AuthLimiter): a source over its budget is refused with 429 too_many_requests
// before its key is looked at, and each wrong key spends one attempt. A call without a
// source (Envoy not configured to send source.address) is not limited.
func (s *Server) authenticateFrom(ctx context.Context, l headerList, source string) (Caller, error) {
	if source != "" {
		if ok, wait := s.limiter.Allow(source); !ok {
			return Caller{}, &failure{code: CodeTooManyRequests, retryAfter: wait, cause: errors.New("too many failed API-key attempts from " + source)}
		}
	}
	caller, err := s.authenticate(ctx, l)
	var f *failure
	presented := l.value("authorization") != "" || l.value("x-api-key") != ""
	if source != "" && presented && (errors.Is(err, ErrInvalidAPIKey) || errors.As(err, &f) && f.code == CodeInvalidAPIKey) {
		s.limiter.Failure(source)
	}
	return caller, err
}

// retryAfterSeconds renders a wait as a Retry-After value (whole seconds, at least 1).
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
