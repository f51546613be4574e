package extproc

import (
	"context"
	"github.com/quantaseal/gateway/internal/authlimit"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/quantaseal/gateway/policy"
)

// authorizer implements the ext_authz Authorization service on the Server's pipeline.
type authorizer struct{ s *Server }

// Check runs the transparent-mode pipeline for an authorization-only deployment:
// authenticate, resolve, match, decide, inject the credential. It cannot see the
// response, so there is no envelope and no outcome event: an allowed call's one
// event is its intent (allow/forwarded with status 0), committed before the OK that
// lets Envoy forward it; a denied call's is the denial and its status.
func (a authorizer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s := a.s
	hr := req.GetAttributes().GetRequest().GetHttp()
	l := checkHeaders(hr)
	c := &call{api: apiExtAuthz, mode: modeTransparent, start: time.Now(), requestID: hr.GetId()}
	c.method = hr.GetMethod()
	rawPath := hr.GetPath()
	c.path, c.query = splitQuery(rawPath)

	deny := func(f *failure) (*authv3.CheckResponse, error) {
		id, err := s.record(ctx, c.audit(decisionDeny, f.code, f.httpStatus()))
		if err != nil {
			f, id = fail(CodeUnavailable, err), ""
		}
		s.finished(ctx, c, decisionDeny, f.code)
		return denied(f, c.integ.ID, id), nil
	}

	if f := l.validate(); f != nil {
		return deny(f)
	}
	source := req.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	if source != "" {
		source = authlimit.SourceFromAddr(source)
	}
	caller, err := s.authenticateFrom(ctx, l, source)
	if err != nil {
		return deny(classify(err))
	}
	c.caller = caller
	if err := s.resolve(ctx, c, l.value(hdrIntegration), hr.GetHost()); err != nil {
		return deny(classify(err))
	}
	op, _, err := policy.Match(c.integ.SystemType, c.method, rawPath)
	if err != nil {
		return deny(classify(err))
	}
	c.op = op
	if err := decide(c); err != nil {
		return deny(classify(err))
	}
	authz, err := s.authorize(ctx, c)
	if err != nil {
		return deny(classify(err))
	}
	id, err := s.record(ctx, c.audit(decisionAllow, ReasonForwarded, 0))
	if err != nil {
		f := fail(CodeUnavailable, err)
		s.finished(ctx, c, decisionDeny, f.code)
		return denied(f, c.integ.ID, ""), nil
	}
	s.finished(ctx, c, decisionAllow, ReasonForwarded)
	sets, removes := injectHeaders(c, authz, l, authzHeader)
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:              sets,
			HeadersToRemove:      removes,
			ResponseHeadersToAdd: []*corev3.HeaderValueOption{authzHeader(hdrAuditEvent, id)},
		}},
	}, nil
}

// denied is the ext_authz denial: a non-OK gRPC status and the same JSON body and
// HTTP status as the ext_proc ImmediateResponse. ext_authz reads value, not raw_value.
func denied(f *failure, integrationID, auditEventID string) *authv3.CheckResponse {
	hs := []*corev3.HeaderValueOption{authzHeader("content-type", "application/json")}
	if auditEventID != "" {
		hs = append(hs, authzHeader(hdrAuditEvent, auditEventID))
	}
	if f.retryAfter > 0 {
		hs = append(hs, authzHeader("retry-after", strconv.FormatInt(retryAfterSeconds(f.retryAfter), 10)))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(f.grpcCode()), Message: f.code},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(f.httpStatus())},
			Headers: hs,
			Body:    string(f.body(integrationID, auditEventID)),
		}},
	}
}

// checkHeaders builds the header list of a CheckRequest: header_map (raw values, with
// encode_raw_headers) when present, else the merged headers map in key order, plus
// the pseudo-headers from the request attributes.
func checkHeaders(hr *authv3.AttributeContext_HttpRequest) headerList {
	l := headerList{
		{":method", hr.GetMethod()},
		{":path", hr.GetPath()},
		{":authority", hr.GetHost()},
		{":scheme", hr.GetScheme()},
	}
	if hm := hr.GetHeaderMap(); hm != nil {
		for _, h := range fromHeaderMap(hm) {
			if !strings.HasPrefix(h.key, ":") {
				l = append(l, h)
			}
		}
		return l
	}
	keys := make([]string, 0, len(hr.GetHeaders()))
	for k := range hr.GetHeaders() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if lk := strings.ToLower(k); !strings.HasPrefix(lk, ":") {
			l = append(l, header{lk, hr.GetHeaders()[k]})
		}
	}
	return l
}
