package extproc

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/quantaseal/gateway/okta/oktaheader"
	"github.com/quantaseal/gateway/policy"
)

// stream is the state of one ext_proc stream (one HTTP request). Process handles
// its messages one at a time on one goroutine, so request- and response-side
// messages may interleave in any order without shared mutable state; each reply is
// typed after the message it answers (envoy-extproc.md §10 items 12, 13).
type stream struct {
	s   *Server
	srv extprocv3.ExternalProcessor_ProcessServer
	ctx context.Context
	call

	source        string        // authlimit source key from Envoy's source.address, or ""
	started       bool          // request_headers seen
	allowed       bool          // the intent event is committed and the request released (it may have been forwarded)
	pendingBody   bool          // transparent call with a body: intent and credential wait for the request_body
	authz         Authorization // the credential of a pendingBody call, injected in the body reply
	done          bool          // the final audit event is committed (or an ImmediateResponse was sent)
	overrideSent  bool          // override_message_timeout already sent for the current message
	envelope      bool          // the response body is replaced by an envelope
	hashResponse  bool          // the response body is buffered for response_sha256 only
	outboundBody  bool          // outbound: the request body was handled
	reqHeaders    headerList
	respHeaders   headerList
	callerOrigin  string
	reqHash       hash.Hash
	reqBytes      int64 // request body bytes hashed so far
	upstreamState int   // upstream :status, 0 until response headers
	bodyReserved  int64 // bytes of Server.bodies held for the response body
	slow          slowTimer
}

// Process implements the ext_proc ExternalProcessor service. A stream denied or failed
// before forwarding ends in exactly one committed audit event; a forwarded one in two,
// its intent (committed before the request is released) and its outcome; a denial is an
// ImmediateResponse with a status ≥ 400, never an OK close that Envoy would treat as
// "continue unprocessed" (envoy-extproc.md §10 item 2).
func (s *Server) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()
	st := &stream{s: s, srv: srv, ctx: srv.Context(), call: call{api: apiExtProc, start: time.Now()}}
	defer st.abort()
	defer st.slow.stop()
	defer st.releaseBodyBudget()
	for {
		req, err := srv.Recv()
		if err != nil {
			// Envoy ends streams with a half-close and a reset: io.EOF or Canceled are
			// the normal end, not errors (envoy-extproc.md §10 item 15).
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || st.ctx.Err() != nil {
				return nil
			}
			return err
		}
		st.overrideSent = false
		st.slow.received = time.Now()
		resp, err := st.handle(req)
		if err != nil {
			return err
		}
		err = srv.Send(resp)
		if st.done {
			// The reply that carried the response body (or replaced it) is written.
			st.releaseBodyBudget()
		}
		if err != nil {
			s.log.LogAttrs(st.ctx, slog.LevelDebug, "send failed", slog.String("request_id", st.requestID), slog.String("error", err.Error()))
			return nil
		}
		if resp.GetImmediateResponse() != nil {
			// Envoy sets processing_complete_ and closes the stream; nothing more comes.
			return nil
		}
	}
}

func (st *stream) handle(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		st.source = sourceOf(req)
		return st.onRequestHeaders(r.RequestHeaders)
	case *extprocv3.ProcessingRequest_RequestBody:
		return st.onRequestBody(r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return st.onResponseHeaders(r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return st.onResponseBody(r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	}
	// A message kind this server does not know (a newer Envoy): fail the stream with a
	// non-OK status so Envoy fails closed.
	return nil, status.Error(codes.Unimplemented, "extproc: unsupported ProcessingRequest")
}

// slowTimer sends override_message_timeout for a slow step. One timer serves the
// whole stream (it is re-armed per step, not re-allocated), so the fast path of a
// step — a cached key, integration or token, a group-committed audit event — costs
// no allocation.
type slowTimer struct {
	received time.Time // when the current message arrived: Envoy's timer runs per message
	timer    *time.Timer
	mu       sync.Mutex
	armed    bool // a step is running: the timer may send
	sent     bool // the timer sent the override during the current message
}

func (t *slowTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
	}
}

// slowly runs f; if the current message has not been answered after
// Config.OverrideAfter (counted from its arrival, as Envoy's per-message timer is),
// a reply carrying only override_message_timeout is sent first (once per message:
// Envoy honours one per state), and the real reply follows as a separate message
// (envoy-extproc.md §5 "Timeouts", §10 item 10).
//
// f runs on the calling goroutine and the override is sent from the stream's timer,
// so a step that finishes quickly costs no goroutine and no channel. The timer's Send
// never overlaps the stream's next Send: slowly returns only after the timer has
// been disarmed under the lock its Send holds.
func slowly[T any](st *stream, f func() (T, error)) (T, error) {
	if st.overrideSent {
		return f()
	}
	t := &st.slow
	wait := st.s.cfg.OverrideAfter - time.Since(t.received)
	if wait <= 0 {
		// Earlier steps of this message used the budget: ask for more now.
		st.overrideSent = true
		st.sendOverride()
		return f()
	}
	t.mu.Lock()
	t.armed = true
	t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(wait, st.overrideFromTimer)
	} else {
		t.timer.Reset(wait)
	}
	v, err := f()
	t.timer.Stop()
	t.mu.Lock()
	t.armed = false
	if t.sent {
		t.sent = false
		st.overrideSent = true
	}
	t.mu.Unlock()
	return v, err
}

// overrideFromTimer is the stream timer's function. A firing left over from an
// earlier step finds the timer disarmed, or sends for the step now running, which
// is as early as that step may need it.
func (st *stream) overrideFromTimer() {
	t := &st.slow
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.armed || t.sent {
		return
	}
	t.sent = true
	st.sendOverride()
}

// sendOverride sends the reply that holds only override_message_timeout.
func (st *stream) sendOverride() {
	err := st.srv.Send(&extprocv3.ProcessingResponse{
		OverrideMessageTimeout: durationpb.New(st.s.cfg.MessageTimeoutOverride),
	})
	if err != nil {
		st.s.log.LogAttrs(st.ctx, slog.LevelDebug, "send override_message_timeout failed",
			slog.String("request_id", st.requestID), slog.String("error", err.Error()))
	}
}

// bodyModes is the per-request mode_override: request body buffered (outbound
// rewrite, request_sha256), response body buffered only when it must be read.
func bodyModes(response extprocfilterv3.ProcessingMode_BodySendMode) *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocfilterv3.ProcessingMode_BUFFERED,
		ResponseBodyMode:    response,
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
}

// MetadataNamespace is the dynamic-metadata namespace the processor writes; Envoy keeps
// it only if listed in metadata_options.receiving_namespaces.untyped (the shipped
// envoy/ configs list it), and access logs read %DYNAMIC_METADATA(quantaseal:operation)%
// (envoy-extproc.md §5, §10 item 14).
const MetadataNamespace = "quantaseal"

// metadata is {"quantaseal": {"operation", "integration_id", "decision", "code",
// "audit_event_id"}} for access logs; empty values are left out. See metadata.go for
// how it is attached.
func (c *call) metadata(decision, code, auditEventID string) metadataFields {
	return metadataFields{{"audit_event_id", auditEventID}, {"code", code}, {"decision", decision},
		{"integration_id", c.integ.ID}, {"operation", c.op.Name}}
}

func requestHeadersReply(cr *extprocv3.CommonResponse, mode *extprocfilterv3.ProcessingMode) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response:     &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: cr}},
		ModeOverride: mode,
	}
}

func responseHeadersReply(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: cr}}}
}

func requestBodyReply(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: cr}}}
}

func responseBodyReply(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: cr}}}
}

// immediate is the JSON error reply. The status is always set (a missing status means
// 200 to Envoy; envoy-extproc.md §10 item 4) and headers use raw_value only.
func immediate(f *failure, integrationID, auditEventID string) *extprocv3.ProcessingResponse {
	sets := []*corev3.HeaderValueOption{set("content-type", "application/json")}
	if auditEventID != "" {
		sets = append(sets, set(hdrAuditEvent, auditEventID))
	}
	if f.retryAfter > 0 {
		sets = append(sets, set("retry-after", strconv.FormatInt(retryAfterSeconds(f.retryAfter), 10)))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(f.httpStatus())},
			Headers: &extprocv3.HeaderMutation{SetHeaders: sets},
			Body:    f.body(integrationID, auditEventID),
			Details: "quantaseal_" + f.code,
		}}}
}

// reject audits a denial or failure and answers with an ImmediateResponse. If the
// audit append fails the client gets 503 instead: nothing is answered unaudited.
func (st *stream) reject(f *failure) (*extprocv3.ProcessingResponse, error) {
	decision := decisionDeny
	id, err := slowly(st, func() (string, error) {
		return st.s.record(st.ctx, st.audit(decision, f.code, f.httpStatus()))
	})
	if err != nil {
		f, id = fail(CodeUnavailable, err), ""
	}
	st.done = true
	st.s.finished(st.ctx, &st.call, decision, f.code)
	if f.cause != nil && f.code == CodeUnavailable {
		st.s.log.LogAttrs(st.ctx, slog.LevelWarn, "dependency unavailable",
			slog.String("request_id", st.requestID), slog.String("integration_id", st.integ.ID),
			slog.String("code", f.code), slog.String("error", f.cause.Error()))
	}
	resp := immediate(f, st.integ.ID, id)
	setMetadata(resp, st.metadata(decision, f.code, id))
	return resp, nil
}

func (st *stream) rejectErr(err error) (*extprocv3.ProcessingResponse, error) {
	return st.reject(classify(err))
}

func (st *stream) onRequestHeaders(m *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if st.started {
		return nil, status.Error(codes.FailedPrecondition, "extproc: second request_headers on one stream")
	}
	st.started = true
	l := fromHeaderMap(m.GetHeaders())
	st.reqHeaders = l
	st.requestID = l.value("x-request-id")
	st.method = l.value(":method")
	rawPath := l.value(":path")
	st.path, st.query = splitQuery(rawPath)
	st.callerOrigin = callerOrigin(l)
	if f := l.validate(); f != nil {
		return st.reject(f)
	}
	caller, err := slowly(st, func() (Caller, error) { return st.s.authenticateFrom(st.ctx, l, st.source) })
	if err != nil {
		return st.rejectErr(err)
	}
	st.caller = caller

	if st.method == "POST" && st.path == OutboundPath {
		st.mode = modeOutbound
		st.envelope = true
		if m.GetEndOfStream() {
			return st.reject(&failure{code: CodeInvalidPayload, detail: "The outbound API needs a JSON body."})
		}
		// The rewrite happens in the request_body reply, once the JSON is known; the
		// headers are held until then (BUFFERED + SEND; envoy-extproc.md §3).
		return requestHeadersReply(nil, bodyModes(extprocfilterv3.ProcessingMode_BUFFERED)), nil
	}

	st.mode = modeTransparent
	if _, err := slowly(st, func() (struct{}, error) {
		return struct{}{}, st.s.resolve(st.ctx, &st.call, l.value(hdrIntegration), l.value(":authority"))
	}); err != nil {
		return st.rejectErr(err)
	}
	op, _, err := policy.Match(st.integ.SystemType, st.method, rawPath)
	if err != nil {
		return st.rejectErr(err)
	}
	st.op = op
	if err := decide(&st.call); err != nil {
		return st.rejectErr(err)
	}
	authz, err := slowly(st, func() (Authorization, error) { return st.s.authorize(st.ctx, &st.call) })
	if err != nil {
		return st.rejectErr(err)
	}
	switch st.integ.Envelope {
	case EnvelopeAlways:
		st.envelope = true
	case EnvelopeNever:
	default:
		st.envelope = wantsEnvelope(l.value("accept"))
	}
	st.hashResponse = !st.envelope && st.s.cfg.HashResponses
	respMode := extprocfilterv3.ProcessingMode_NONE
	if st.envelope || st.hashResponse {
		respMode = extprocfilterv3.ProcessingMode_BUFFERED
	}
	if f := st.reserveForWrite(); f != nil {
		return st.reject(f)
	}
	sets, removes := injectHeaders(&st.call, authz, l, set)
	if !m.GetEndOfStream() {
		// A body follows. Its intent must carry request_sha256, so it is committed in
		// the request_body reply, and the credential is injected there too: with
		// SEND + BUFFERED Envoy holds the headers until that reply and applies its
		// header mutation (envoy-extproc.md §3). Should Envoy release the headers
		// earlier (the mode_override not honoured), they leave without the caller's
		// key and without the real credential, and the early response is refused.
		st.pendingBody = true
		st.authz = authz
		if _, n := l.get("authorization"); n > 0 {
			removes = append(removes, "authorization") // set again in the body reply
		}
		return requestHeadersReply(&extprocv3.CommonResponse{HeaderMutation: headerMutation(nil, removes)}, bodyModes(respMode)), nil
	}
	if f := st.admit(); f != nil {
		return st.reject(f)
	}
	resp := requestHeadersReply(&extprocv3.CommonResponse{HeaderMutation: headerMutation(sets, removes)}, bodyModes(respMode))
	setMetadata(resp, st.metadata(decisionAllow, "", st.intentID))
	return resp, nil
}

// admit commits the intent event of a call — decision allow, reason forwarded,
// status 0 — and marks it allowed. It is the last step before the reply that
// releases the request upstream, in both modes and for every operation, reads
// included, so that nothing is forwarded without a committed event (audit-v1.md
// "Chains"); the outcome event names it in intent_id. It runs while Envoy holds the
// request, under the slow-step override.
func (st *stream) admit() *failure {
	id, err := slowly(st, func() (string, error) {
		return st.s.record(st.ctx, st.audit(decisionAllow, ReasonForwarded, 0))
	})
	if err != nil {
		return fail(CodeUnavailable, err)
	}
	st.intentID = id
	st.allowed = true
	return nil
}

func (st *stream) onRequestBody(m *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	switch {
	case st.done:
		return requestBodyReply(nil), nil
	case st.mode == modeOutbound && !st.outboundBody:
		st.outboundBody = true
		return st.outbound(m.GetBody())
	case st.mode == modeTransparent:
		if st.reqHash == nil {
			st.reqHash = sha256.New()
		}
		st.reqHash.Write(m.GetBody())
		st.reqBytes += int64(len(m.GetBody()))
		if st.pendingBody {
			// BUFFERED: this one message is the whole body (end_of_stream is false only
			// when trailers follow, and those are skipped).
			st.pendingBody = false
			return st.releaseBody()
		}
		if m.GetEndOfStream() && st.reqBytes > 0 {
			// Only reached when the body is not BUFFERED (more than one message).
			st.requestSHA = hex.EncodeToString(st.reqHash.Sum(nil))
		}
		return requestBodyReply(nil), nil
	case !st.started:
		// Request headers were skipped (a misconfigured filter): nothing was checked.
		return st.reject(fail(CodeUnavailable, errors.New("request body without request headers")))
	}
	return requestBodyReply(nil), nil
}

// releaseBody commits the intent of a transparent call with a body, bound to the
// body's hash, and injects the credential in the body reply that releases it.
func (st *stream) releaseBody() (*extprocv3.ProcessingResponse, error) {
	if st.reqBytes > 0 {
		st.requestSHA = hex.EncodeToString(st.reqHash.Sum(nil))
	}
	authz := st.authz
	st.authz = Authorization{}
	if f := st.admit(); f != nil {
		return st.reject(f)
	}
	sets, _ := injectHeaders(&st.call, authz, st.reqHeaders, set)
	resp := requestBodyReply(&extprocv3.CommonResponse{HeaderMutation: headerMutation(sets, nil)})
	setMetadata(resp, st.metadata(decisionAllow, "", st.intentID))
	return resp, nil
}

// outboundRequest is the documented outbound API body.
type outboundRequest struct {
	IntegrationID string          `json:"integration_id"`
	Operation     string          `json:"operation"`
	Payload       json.RawMessage `json:"payload"`
}

func decodeOutbound(body []byte) (outboundRequest, *failure) {
	var in outboundRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, &failure{code: CodeInvalidPayload, detail: "Invalid payload: the body must be a JSON object with integration_id, operation and payload.", cause: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return in, &failure{code: CodeInvalidPayload, detail: "Invalid payload: trailing data after the JSON object."}
	}
	if in.Operation == "" {
		return in, &failure{code: CodeInvalidPayload, field: "operation", detail: "Invalid payload: operation: required."}
	}
	return in, nil
}

// outbound turns the outbound-API JSON into the Okta call: :method, :path (with the
// encoded query), :authority, content-type, an exact content-length and the body, all
// in the request_body reply, where BUFFERED + SEND still lets header mutations apply
// (envoy-extproc.md §3, §10 items 6, 7).
func (st *stream) outbound(body []byte) (*extprocv3.ProcessingResponse, error) {
	if len(body) > st.s.cfg.MaxBodyBytes {
		return st.reject(fail(CodePayloadTooLarge, nil))
	}
	in, f := decodeOutbound(body)
	if f != nil {
		return st.reject(f)
	}
	requested := in.IntegrationID
	if requested == "" {
		requested = st.reqHeaders.value(hdrIntegration)
	}
	if _, err := slowly(st, func() (struct{}, error) {
		return struct{}{}, st.s.resolve(st.ctx, &st.call, requested, "")
	}); err != nil {
		return st.rejectErr(err)
	}
	op, ok := policy.Lookup(st.integ.SystemType, in.Operation)
	if !ok {
		return st.reject(fail(CodeUnknownOperation, nil))
	}
	st.op = op
	if err := decide(&st.call); err != nil {
		return st.rejectErr(err)
	}
	up, err := policy.BuildRequest(op, in.Payload)
	if err != nil {
		return st.rejectErr(err)
	}
	st.method = up.Method
	st.path, st.query = splitQuery(up.Path)
	if up.Body != nil {
		st.requestSHA = sha256Hex(up.Body)
	}
	authz, err := slowly(st, func() (Authorization, error) { return st.s.authorize(st.ctx, &st.call) })
	if err != nil {
		return st.rejectErr(err)
	}
	if f := st.reserveForWrite(); f != nil {
		return st.reject(f)
	}
	// The intent binds the rewritten request as sent upstream: method, path, query
	// and the hash of the new body.
	if f := st.admit(); f != nil {
		return st.reject(f)
	}

	sets, removes := injectHeaders(&st.call, authz, st.reqHeaders, set)
	sets = append(sets,
		set(":method", up.Method),
		set(":path", up.Path),
		set("accept", "application/json"),
		set("content-length", strconv.Itoa(len(up.Body))),
	)
	bm := &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}
	if up.Body != nil {
		sets = append(sets, set("content-type", "application/json"))
		bm = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: up.Body}}
	} else if _, n := st.reqHeaders.get("content-type"); n > 0 {
		removes = append(removes, "content-type")
	}
	resp := requestBodyReply(&extprocv3.CommonResponse{
		HeaderMutation: headerMutation(sets, removes),
		BodyMutation:   bm,
	})
	setMetadata(resp, st.metadata(decisionAllow, "", st.intentID))
	return resp, nil
}

func (st *stream) onResponseHeaders(m *extprocv3.HttpHeaders) (*extprocv3.ProcessingResponse, error) {
	if st.done {
		return responseHeadersReply(nil), nil
	}
	if !st.allowed {
		// The request went upstream without this processor allowing it (request
		// headers skipped, or a response that overtook a pending outbound body).
		return st.reject(fail(CodeUnavailable, errors.New("response for a request the processor did not allow")))
	}
	l := fromHeaderMap(m.GetHeaders())
	st.respHeaders = l
	st.upstreamState, _ = strconv.Atoi(l.value(":status"))
	switch st.upstreamState {
	case 401:
		// Our token was refused (expired early, revoked, rotated): fetch a new one next time.
		st.s.deps.Tokens.Invalidate(st.integ.ID)
	case 403:
		if scope, ok := insufficientScope(l.values("www-authenticate")); ok {
			if scope == "" {
				scope = st.op.Scope
			}
			return st.reject(&failure{code: CodeInsufficientScope, scope: scope})
		}
	}
	if m.GetEndOfStream() {
		// 204, 304, HEAD: no response_body will come (envoy-extproc.md §10 item 9), so
		// the envelope is applied here.
		return st.complete(nil, true, true)
	}
	if st.envelope || st.hashResponse {
		size := announcedBodySize(l, st.s.cfg.MaxBodyBytes)
		if size > int64(st.s.cfg.MaxBodyBytes) {
			if st.envelope {
				return st.reject(&failure{code: CodeUpstreamError, detail: "The Okta response is too large to seal.",
					cause: fmt.Errorf("content-length %d over the %d-byte body limit", size, st.s.cfg.MaxBodyBytes)})
			}
			// Hash-only and too large to hash (decodeBody would refuse it): let the body
			// stream to the client instead of buffering up to max_message_bytes of it
			// against a reservation sized for MaxBodyBytes, and record the outcome, with
			// no hash, now.
			st.releaseBodyBudget()
			resp, err := st.complete(nil, false, true)
			if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_ResponseHeaders); ok {
				resp.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE}
			}
			return resp, err
		}
		if st.bodyReserved == 0 {
			// Room for the body before it is asked for: Envoy keeps it until this
			// reply. (A state-changing call reserved before it was forwarded.)
			if f := st.reserveBody(size, bodyBudgetMessage); f != nil {
				return st.reject(f)
			}
		}
		// BUFFERED: the headers are held until the body reply, which carries the
		// header mutations.
		return responseHeadersReply(nil), nil
	}
	return st.complete(nil, false, true)
}

// reserveForWrite reserves room for the response body of a state-changing call that
// will buffer it (envelope or hashed) before the call is forwarded, sized for the
// largest body accepted: a call shed at its response would leave the client a 503 for
// an operation that happened upstream, and a retry could repeat it. Shed here, nothing
// has been forwarded. Reads reserve at their response_headers, when the size is known.
func (st *stream) reserveForWrite() *failure {
	if !st.op.StateChanging || !(st.envelope || st.hashResponse) || st.bodyReserved > 0 {
		return nil
	}
	return st.reserveBody(int64(st.s.cfg.MaxBodyBytes), bodyBudgetBeforeMessage)
}

// reserveBody waits, under the slow-step override, for size bytes of the body budget;
// past Config.BodyWait the call fails unavailable with Retry-After and message.
func (st *stream) reserveBody(size int64, message string) *failure {
	n, err := slowly(st, func() (int64, error) { return st.s.bodies.reserve(st.ctx, size, st.s.cfg.BodyWait) })
	if err != nil {
		return &failure{code: CodeUnavailable, detail: message, retryAfter: time.Second, cause: err}
	}
	st.bodyReserved = n
	return nil
}

// releaseBodyBudget returns the stream's share of the body budget.
func (st *stream) releaseBodyBudget() {
	st.s.bodies.release(st.bodyReserved)
	st.bodyReserved = 0
}

func (st *stream) onResponseBody(m *extprocv3.HttpBody) (*extprocv3.ProcessingResponse, error) {
	if st.done || !(st.envelope || st.hashResponse) {
		return responseBodyReply(nil), nil
	}
	// BUFFERED: this is the whole body (eos is false only when trailers follow, which
	// are skipped).
	body, err := decodeBody(st.respHeaders.value("content-encoding"), m.GetBody(), st.s.cfg.MaxBodyBytes)
	if err != nil {
		if st.envelope {
			return st.reject(&failure{code: CodeUpstreamError, detail: "The Okta response could not be decoded.", cause: err})
		}
		// Hash-only: pass the body through untouched; the event carries no hash.
		return st.complete(nil, false, false)
	}
	return st.complete(body, true, false)
}

// decodeBody undoes a gzip content-encoding (the processor asks for identity, but a
// server may ignore it). Other encodings are refused. The decoded size is bounded.
func decodeBody(encoding string, body []byte, limit int) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		if len(body) > limit {
			// Envoy's buffer limit normally stops such a body first; a raised limit
			// (or a missing content-length) must not let one stream hold more.
			return nil, fmt.Errorf("body larger than %d bytes", limit)
		}
		return body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if len(out) > limit {
			return nil, fmt.Errorf("decoded body larger than %d bytes", limit)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported content-encoding %q", encoding)
}

// complete commits the outcome event and builds the reply that releases the
// response: Link origins rewritten to the caller's origin, X-QuantaSeal-Audit-Event
// added and, when required, the body replaced by the envelope. inHeaders says whether
// this answers response_headers (bodiless response or no buffering) or response_body.
func (st *stream) complete(body []byte, bodyKnown, inHeaders bool) (*extprocv3.ProcessingResponse, error) {
	upstream := st.upstreamState
	clientStatus := upstream
	if st.envelope && inHeaders && (upstream == 204 || upstream == 304) {
		// Those statuses cannot carry a body; the envelope holds the real status.
		clientStatus = 200
	}
	reason := ReasonOK
	if upstream >= 400 || upstream == 0 {
		reason = CodeUpstreamError
	}
	rec := st.audit(decisionAllow, reason, clientStatus)
	if bodyKnown {
		rec.ResponseSHA256 = sha256Hex(body)
		rec.ResponseBytes = int64(len(body))
	}
	rec.Envelope = st.envelope
	id, err := slowly(st, func() (string, error) { return st.s.record(st.ctx, rec) })
	if err != nil {
		return st.failAfterRecord(fail(CodeUnavailable, err), "")
	}
	st.done = true

	var sets []*corev3.HeaderValueOption
	var removes []string
	for i, v := range oktaheader.RewriteLinks(st.respHeaders.values("link"), st.integ.OktaOrigin, st.callerOrigin) {
		if i == 0 {
			sets = append(sets, set("link", v)) // overwrite every upstream Link header
		} else {
			sets = append(sets, add("link", v))
		}
	}
	sets = append(sets, set(hdrAuditEvent, id))

	md := st.metadata(decisionAllow, reason, id)
	if !st.envelope {
		st.s.finished(st.ctx, &st.call, decisionAllow, reason)
		cr := &extprocv3.CommonResponse{HeaderMutation: headerMutation(sets, removes)}
		var resp *extprocv3.ProcessingResponse
		if inHeaders {
			resp = responseHeadersReply(cr)
		} else {
			resp = responseBodyReply(cr)
		}
		setMetadata(resp, md)
		return resp, nil
	}

	env, err := slowly(st, func() ([]byte, error) {
		defer st.s.metrics.observe(phaseSeal, time.Now())
		ctx, cancel := context.WithTimeout(st.ctx, st.s.cfg.SealTimeout)
		defer cancel()
		return st.s.deps.Sealer.Seal(ctx, st.caller.TenantID, SealRequest{
			Success:      upstream >= 200 && upstream <= 299,
			Status:       upstream,
			Next:         nextCursor(st.respHeaders.values("link")),
			AuditEventID: id,
			Body:         body,
		})
	})
	if err != nil {
		// The event (already committed) says what the call did upstream; the client
		// gets 503 and that event's id.
		return st.failAfterRecord(fail(CodeUnavailable, err), id)
	}
	st.s.finished(st.ctx, &st.call, decisionAllow, reason)
	sets = append(sets, set("content-type", EnvelopeMediaType))
	for _, k := range []string{"content-encoding", "etag", "content-md5", "digest", "content-digest"} {
		if _, n := st.respHeaders.get(k); n > 0 {
			removes = append(removes, k)
		}
	}
	bm := &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: env}}
	if inHeaders {
		if clientStatus != upstream {
			sets = append(sets, set(":status", strconv.Itoa(clientStatus)))
		}
		// CONTINUE_AND_REPLACE gives a bodiless response a body; Envoy drops
		// content-length itself (envoy-extproc.md §3).
		resp := responseHeadersReply(&extprocv3.CommonResponse{
			Status:         extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
			HeaderMutation: headerMutation(sets, removes),
			BodyMutation:   bm,
		})
		setMetadata(resp, md)
		return resp, nil
	}
	// BUFFERED + SEND keeps content-length and checks it against the new body after
	// this reply's header mutation (envoy-extproc.md §10 item 6).
	sets = append(sets, set("content-length", strconv.Itoa(len(env))))
	resp := responseBodyReply(&extprocv3.CommonResponse{
		HeaderMutation: headerMutation(sets, removes),
		BodyMutation:   bm,
	})
	setMetadata(resp, md)
	return resp, nil
}

// withheldMessage answers a forwarded call whose response could not be released.
const withheldMessage = "A service the gateway depends on (audit store or envelope sealing) failed after the Okta call was made; its response was withheld. Retry only if the operation is safe to repeat."

// failAfterRecord answers 503 when the outcome could not be recorded or sealed.
func (st *stream) failAfterRecord(f *failure, auditID string) (*extprocv3.ProcessingResponse, error) {
	st.done = true
	if f.detail == "" {
		// The generic unavailable message says nothing was forwarded; here it was.
		f.detail = withheldMessage
	}
	st.s.finished(st.ctx, &st.call, decisionDeny, f.code)
	if f.cause != nil {
		st.s.log.LogAttrs(st.ctx, slog.LevelWarn, "response withheld",
			slog.String("request_id", st.requestID), slog.String("integration_id", st.integ.ID),
			slog.String("code", f.code), slog.String("error", f.cause.Error()))
	}
	return immediate(f, st.integ.ID, auditID), nil
}

// abort records the event of a stream that ended before its final event: the client
// went away, the upstream reset, or Envoy gave up (reason aborted).
func (st *stream) abort() {
	if st.done || !st.started {
		return
	}
	decision := decisionDeny
	if st.allowed {
		decision = decisionAllow
	}
	if st.reqBytes > 0 && st.requestSHA == "" {
		st.requestSHA = hex.EncodeToString(st.reqHash.Sum(nil))
	}
	rec := st.audit(decision, ReasonAborted, st.upstreamState)
	if _, err := st.s.record(st.ctx, rec); err != nil {
		return // record logged it
	}
	st.done = true
	st.s.finished(st.ctx, &st.call, decision, ReasonAborted)
}
