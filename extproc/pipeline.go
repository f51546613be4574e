package extproc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/policy"
)

// OutboundPath is the documented outbound API (ARCHITECTURE.md "Two ways to call").
const OutboundPath = "/api/v2/proxy/outbound"

// APIKeyPrefix starts every tenant API key.
const APIKeyPrefix = "qs_live_"

// API and mode label values.
const (
	apiExtProc      = "ext_proc"
	apiExtAuthz     = "ext_authz"
	modeTransparent = "transparent"
	modeOutbound    = "outbound"
)

// Audit decisions.
const (
	decisionAllow = "allow"
	decisionDeny  = "deny"
)

// call is what the pipeline learns about one request. An ext_proc stream and an
// ext_authz check each own one; it is never shared between goroutines.
type call struct {
	api, mode   string
	requestID   string
	caller      Caller
	integ       Integration
	op          policy.Operation
	method      string // upstream method (as requested until rewritten)
	path, query string // upstream path without query, and the raw query
	requestSHA  string
	querySHA    [2]string // {query, its hex SHA-256}: a forwarded call's two events hash it once
	policySHA   string
	scopes      []string // of every operation the integration allows (allowedScopes); read-only
	intentID    string   // the committed intent event of a forwarded call; outcome events name it
	start       time.Time
}

// audit builds the event for this call with the given outcome.
func (c *call) audit(decision, reason string, status int) AuditRecord {
	r := AuditRecord{
		TenantID:      c.caller.TenantID,
		IntegrationID: c.integ.ID,
		Operation:     c.op.Name,
		Caller:        c.caller.KeyID,
		Method:        c.method,
		Path:          c.path,
		RequestSHA256: c.requestSHA,
		PolicySHA256:  c.policySHA,
		Decision:      decision,
		Reason:        reason,
		Status:        status,
		IntentID:      c.intentID,
	}
	if c.query != "" {
		if c.querySHA[0] != c.query || c.querySHA[1] == "" {
			c.querySHA = [2]string{c.query, sha256Hex([]byte(c.query))}
		}
		r.QuerySHA256 = c.querySHA[1]
	}
	return r
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// splitQuery splits a raw :path into path and raw query.
func splitQuery(rawPath string) (path, query string) {
	path, query, _ = strings.Cut(rawPath, "?")
	return path, query
}

// apiKey extracts the caller's key from Authorization (SSWS or Bearer, what the Okta
// SDKs send in API-token mode) or X-API-Key. The error never contains the key.
func apiKey(l headerList) (secret.Secret, *failure) {
	var keys []string
	if v, n := l.get("authorization"); n > 0 {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
		if !ok || !(strings.EqualFold(scheme, "SSWS") || strings.EqualFold(scheme, "Bearer")) {
			return secret.Secret{}, fail(CodeInvalidAPIKey, errors.New("authorization scheme is not SSWS or Bearer"))
		}
		keys = append(keys, strings.TrimSpace(tok))
	}
	if v, n := l.get("x-api-key"); n > 0 {
		keys = append(keys, strings.TrimSpace(v))
	}
	switch {
	case len(keys) == 0:
		return secret.Secret{}, fail(CodeInvalidAPIKey, errors.New("no API key"))
	case len(keys) == 2 && subtle.ConstantTimeCompare([]byte(keys[0]), []byte(keys[1])) != 1:
		return secret.Secret{}, &failure{code: CodeInvalidRequest, detail: "Authorization and X-API-Key carry different keys.",
			cause: errors.New("two different API keys")}
	case !strings.HasPrefix(keys[0], APIKeyPrefix):
		// Never forward (or look up) a caller credential that is not ours, such as a
		// real Okta token.
		return secret.Secret{}, fail(CodeInvalidAPIKey, errors.New("not a qs_live_ key"))
	}
	return secret.New(keys[0]), nil
}

// authenticate runs the API-key step of the pipeline, answering from the cache when
// the key was authenticated within Config.AuthCacheTTL.
func (s *Server) authenticate(ctx context.Context, l headerList) (Caller, error) {
	key, f := apiKey(l)
	if f != nil {
		return Caller{}, f
	}
	h := sha256.Sum256(key.Bytes())
	caller, gen, ok := s.cache.caller(h)
	if ok {
		return caller, nil
	}
	defer s.metrics.observe(phaseAuthenticate, time.Now())
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	defer cancel()
	caller, err := s.deps.Authenticator.Authenticate(ctx, key)
	if err != nil {
		return Caller{}, err
	}
	if caller.TenantID == "" {
		return Caller{}, fail(CodeUnavailable, errors.New("authenticator returned no tenant"))
	}
	s.cache.putCaller(h, caller, gen)
	return caller, nil
}

// resolve finds the integration: the one asked for (header or outbound body), else
// the key's bound integration, else the tenant's integration for host. A key bound
// to one integration cannot ask for another.
func (s *Server) resolve(ctx context.Context, c *call, requested, host string) error {
	if bound := c.caller.IntegrationID; bound != "" {
		if requested != "" && requested != bound {
			return fail(CodeIntegrationNotAllowed, errors.New("key is bound to another integration"))
		}
		requested = bound
	}
	tenant := c.caller.TenantID
	r, gen, ok := s.cache.integration(tenant, requested, host)
	if !ok {
		var err error
		if r, err = s.lookupIntegration(ctx, tenant, requested, host); err != nil {
			return err
		}
		s.cache.putIntegration(tenant, requested, host, r, gen)
	}
	if r.integ.TenantID != tenant {
		// Defence in depth: never use another tenant's integration.
		return fail(CodeIntegrationNotFound, errors.New("resolver returned a foreign integration"))
	}
	c.integ = r.integ
	c.policySHA = r.policySHA
	c.scopes = r.scopes
	return nil
}

// lookupIntegration asks the resolver and checks its answer.
func (s *Server) lookupIntegration(ctx context.Context, tenantID, requested, host string) (resolved, error) {
	defer s.metrics.observe(phaseResolve, time.Now())
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout)
	defer cancel()
	integ, err := s.deps.Integrations.ResolveIntegration(ctx, tenantID, requested, host)
	if err != nil {
		return resolved{}, err
	}
	if integ.TenantID != tenantID || integ.ID == "" {
		// Defence in depth: never use another tenant's integration.
		return resolved{}, fail(CodeIntegrationNotFound, errors.New("resolver returned a foreign or empty integration"))
	}
	if originHost(integ.OktaOrigin) == "" {
		return resolved{}, fail(CodeUnavailable, errors.New("integration has no usable Okta origin"))
	}
	return resolved{
		integ:     integ,
		policySHA: policy.Hash(integ.AllowedOperations, integ.Envelope),
		scopes:    allowedScopes(integ),
	}, nil
}

// allowedScopes returns the scopes of every operation integ allows, sorted and
// without duplicates, so that one cached token serves them all.
func allowedScopes(integ Integration) []string {
	var scopes []string
	for _, name := range integ.AllowedOperations {
		if op, ok := policy.Lookup(integ.SystemType, name); ok && op.Scope != "" {
			scopes = append(scopes, op.Scope)
		}
	}
	slices.Sort(scopes)
	return slices.Compact(scopes)
}

// decide applies the default-deny policy to c.op.
func decide(c *call) error {
	if d := policy.Decide(c.integ.AllowedOperations, c.op); !d.Allow {
		return fail(d.Reason, nil)
	}
	return nil
}

// authorize obtains the credential to inject for c.
func (s *Server) authorize(ctx context.Context, c *call) (Authorization, error) {
	defer s.metrics.observe(phaseToken, time.Now())
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TokenTimeout)
	defer cancel()
	a, err := s.deps.Tokens.Authorize(ctx, AuthorizeRequest{
		Integration: c.integ,
		Scopes:      slices.Clone(c.scopes), // c.scopes is shared with the cache
		Scope:       c.op.Scope,
		Method:      c.method,
		URL:         strings.TrimRight(c.integ.OktaOrigin, "/") + c.path,
	})
	if err != nil {
		f := classify(err)
		if f.code == CodeInsufficientScope && f.scope == "" {
			f.scope = c.op.Scope
		}
		return Authorization{}, f
	}
	if a.Header.IsZero() || strings.ContainsAny(a.Header.Reveal(), "\r\n") || strings.ContainsAny(a.DPoPProof.Reveal(), "\r\n") {
		return Authorization{}, fail(CodeUnavailable, errors.New("token source returned an unusable credential"))
	}
	return a, nil
}

// record appends an audit event. It runs under context.WithoutCancel plus its own
// timeout: a client that hangs up cannot skip its record (STYLE.md "Context").
func (s *Server) record(ctx context.Context, r AuditRecord) (string, error) {
	defer s.metrics.observe(phaseAudit, time.Now())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AuditTimeout)
	defer cancel()
	id, err := s.deps.Recorder.Record(ctx, r)
	if err == nil && id == "" {
		err = errors.New("recorder returned no event id")
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "audit append failed; failing closed",
			slog.String("integration_id", r.IntegrationID), slog.String("operation", r.Operation),
			slog.String("code", r.Reason), slog.String("error", err.Error()))
		return "", err
	}
	return id, nil
}

// finished logs and counts a call once its final event is committed. A call that was
// allowed and succeeded (code forwarded or ok) is logged at Debug: its audit event is
// the record, and formatting a line per call was a measurable share of the transparent
// path's CPU. Anything else — a denial, an upstream error, an aborted call — at Info.
func (s *Server) finished(ctx context.Context, c *call, decision, code string) {
	s.metrics.requests.WithLabelValues(c.api, c.mode, c.op.Name, decision, code).Inc()
	level := slog.LevelInfo
	if decision == decisionAllow && (code == ReasonOK || code == ReasonForwarded) {
		level = slog.LevelDebug
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	s.log.LogAttrs(ctx, level, "call",
		slog.String("request_id", c.requestID),
		slog.String("integration_id", c.integ.ID),
		slog.String("operation", c.op.Name),
		slog.String("decision", decision),
		slog.String("code", code),
		slog.Int64("duration_ms", time.Since(c.start).Milliseconds()))
}

// injectHeaders returns the request mutations shared by every mode: the real
// credential, the Okta host, identity encoding (so an envelope can hold the decoded
// JSON; envoy-extproc.md §9.1 notes), and the removal of the caller's credential,
// x-quantaseal-* and hop-by-hop headers.
func injectHeaders(c *call, a Authorization, l headerList, opt func(k, v string) *corev3.HeaderValueOption) ([]*corev3.HeaderValueOption, []string) {
	sets := []*corev3.HeaderValueOption{
		opt("authorization", a.Header.Reveal()),
		opt(":authority", originHost(c.integ.OktaOrigin)),
		opt("accept-encoding", "identity"),
	}
	removes := requestRemovals(l)
	if !a.DPoPProof.IsZero() {
		sets = append(sets, opt("dpop", a.DPoPProof.Reveal()))
	} else if _, n := l.get("dpop"); n > 0 {
		removes = append(removes, "dpop")
	}
	if wantsEnvelope(l.value("accept")) {
		// Okta only speaks JSON; the envelope is the gateway's business.
		sets = append(sets, opt("accept", "application/json"))
	}
	return sets, removes
}
