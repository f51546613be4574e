//lint:file-ignore SA1019 ext_proc uses the deprecated append field; the tests read it.

package extproc

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/policy"
)

func TestTransparentAllowed(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	resp := x.do(reqHeaders(true, get("/api/v1/users?limit=1",
		"authorization", "SSWS "+testKey, "x-quantaseal-integration", integID, "connection", "keep-alive, x-foo",
		"keep-alive", "timeout=5", "x-foo", "1", "dpop", "caller-proof")...))
	rh, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders)
	if !ok {
		t.Fatalf("reply %T, want RequestHeaders", resp.GetResponse())
	}
	if st := rh.RequestHeaders.GetResponse().GetStatus(); st != extprocv3.CommonResponse_CONTINUE {
		t.Errorf("status %v", st)
	}
	sets := setsOf(resp)
	want := map[string][]string{
		"authorization":   {"Bearer " + testToken},
		":authority":      {"acme.okta.com"},
		"accept-encoding": {"identity"},
	}
	if diff := cmp.Diff(want, sets); diff != "" {
		t.Errorf("set_headers (-want +got):\n%s", diff)
	}
	for _, hvo := range allSets(resp) {
		if hvo.GetAppend() != nil && hvo.GetAppend().GetValue() {
			t.Errorf("%s appended; pseudo-headers and credentials must be overwritten", hvo.GetHeader().GetKey())
		}
	}
	wantRemoved := []string{"x-quantaseal-integration", "connection", "keep-alive", "x-foo", "dpop"}
	if diff := cmp.Diff(wantRemoved, removesOf(resp), cmpSorted); diff != "" {
		t.Errorf("remove_headers (-want +got):\n%s", diff)
	}
	md := resp.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields()
	if len(resp.GetDynamicMetadata().GetFields()) != 1 || md["operation"].GetStringValue() != "list_users" ||
		md["integration_id"].GetStringValue() != integID || md["decision"].GetStringValue() != "allow" {
		t.Errorf("dynamic_metadata %v; want {%q: {operation, integration_id}}", resp.GetDynamicMetadata(), MetadataNamespace)
	}
	mo := resp.GetModeOverride()
	if mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_NONE || mo.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SEND {
		t.Errorf("mode_override = %v; a call without envelope needs no response buffering", mo)
	}
	if got := e.tokens.requests[0]; got.Scope != "okta.users.read" || got.URL != oktaOrigin+"/api/v1/users" || got.Method != "GET" ||
		!slices.Equal(got.Scopes, []string{"okta.logs.read", "okta.users.manage", "okta.users.read"}) {
		t.Errorf("AuthorizeRequest = %+v", got)
	}
	wantIntent := AuditRecord{
		TenantID: tenantID, IntegrationID: integID, Operation: "list_users", Caller: "key_01TEST",
		Method: "GET", Path: "/api/v1/users", QuerySHA256: sha256Hex([]byte("limit=1")),
		PolicySHA256: policy.Hash(testIntegration().AllowedOperations, EnvelopeOnRequest),
		Decision:     "allow", Reason: "forwarded", Status: 0,
	}
	if diff := cmp.Diff([]AuditRecord{wantIntent}, e.rec.records()); diff != "" {
		t.Fatalf("a read must commit its intent before it is released (-want +got):\n%s", diff)
	}
	if got := md["audit_event_id"].GetStringValue(); got != e.rec.ids[0] {
		t.Errorf("request metadata audit_event_id %q, want the intent %q", got, e.rec.ids[0])
	}

	resp = x.do(respHeaders(false, ":status", "200", "content-type", "application/json",
		"link", `<https://acme.okta.com/api/v1/users?limit=1>; rel="self"`,
		"link", `<https://acme.okta.com/api/v1/users?after=00u2&limit=1>; rel="next"`))
	if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_ResponseHeaders); !ok {
		t.Fatalf("reply %T, want ResponseHeaders", resp.GetResponse())
	}
	recs := e.rec.waitRecords(t, 2)
	sets = setsOf(resp)
	if diff := cmp.Diff([]string{`<http://127.0.0.1:10000/api/v1/users?limit=1>; rel="self"`,
		`<http://127.0.0.1:10000/api/v1/users?after=00u2&limit=1>; rel="next"`}, sets["link"]); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
	links := allSets(resp)
	if links[0].GetAppend().GetValue() || !links[1].GetAppend().GetValue() {
		t.Error("first link must overwrite, the second append")
	}
	if diff := cmp.Diff([]string{e.rec.ids[1]}, sets[hdrAuditEvent]); diff != "" {
		t.Errorf("audit header (-want +got):\n%s", diff)
	}
	wantRec := wantIntent
	wantRec.Reason, wantRec.Status, wantRec.IntentID = "ok", 200, e.rec.ids[0]
	if diff := cmp.Diff([]AuditRecord{wantIntent, wantRec}, recs); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	x.close()
	time.Sleep(20 * time.Millisecond)
	if n := len(e.rec.records()); n != 2 {
		t.Errorf("a completed stream recorded %d events, want exactly 2 (intent, outcome)", n)
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
})

func TestDenials(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*env)
		headers   []string
		status    int
		code      string
		msgHas    string
		audited   bool // the event exists and its id is in the body
		scope     string
		noIntegID bool
	}{
		{name: "no key", headers: get("/api/v1/users"), status: 401, code: "invalid_api_key", audited: true, noIntegID: true},
		{name: "unknown key", headers: get("/api/v1/users", "x-api-key", "qs_live_nope"), status: 401, code: "invalid_api_key", audited: true, noIntegID: true},
		{name: "okta token instead of key", headers: get("/api/v1/users", "authorization", "SSWS 00abcREALOKTA"), status: 401, code: "invalid_api_key", audited: true, noIntegID: true},
		{name: "basic scheme", headers: get("/api/v1/users", "authorization", "Basic "+testKey), status: 401, code: "invalid_api_key", audited: true, noIntegID: true},
		{name: "duplicate authorization", headers: get("/api/v1/users", "authorization", "SSWS "+testKey, "authorization", "SSWS "+testKey),
			status: 400, code: "invalid_request", audited: true, noIntegID: true},
		{name: "two different keys", headers: get("/api/v1/users", "authorization", "SSWS "+testKey, "x-api-key", testBoundKey),
			status: 400, code: "invalid_request", audited: true, noIntegID: true},
		{name: "CRLF in a value", headers: get("/api/v1/users", "x-api-key", testKey, "x-note", "a\r\nx-injected: 1"),
			status: 400, code: "invalid_request", audited: true, noIntegID: true},
		{name: "dot segments", headers: get("/api/v1/users/../groups", "x-api-key", testKey, "x-quantaseal-integration", integID),
			status: 403, code: "unknown_operation", audited: true},
		{name: "encoded slash", headers: get("/api/v1/users/a%2Fb", "x-api-key", testKey, "x-quantaseal-integration", integID),
			status: 403, code: "unknown_operation", audited: true},
		{name: "double slash", headers: get("/api//v1/users", "x-api-key", testKey, "x-quantaseal-integration", integID),
			status: 403, code: "unknown_operation", audited: true},
		{name: "not in catalogue", headers: get("/api/v1/users/00u1/appLinks", "x-api-key", testKey, "x-quantaseal-integration", integID),
			status: 403, code: "unknown_operation", audited: true},
		{name: "not allowed", headers: get("/api/v1/groups", "x-api-key", testKey, "x-quantaseal-integration", integID),
			status: 403, code: "operation_not_allowed", audited: true},
		{name: "integration not found", headers: get("/api/v1/users", "x-api-key", testKey, "x-quantaseal-integration", "int_other"),
			status: 404, code: "integration_not_found", audited: true, noIntegID: true},
		{name: "bound key asks for another integration", headers: get("/api/v1/users", "x-api-key", testBoundKey, "x-quantaseal-integration", "int_other"),
			status: 403, code: "integration_not_allowed", audited: true, noIntegID: true},
		{name: "invalid_client", setup: func(e *env) { e.tokens.err = &tokErr{code: "invalid_client"} },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 401, code: "invalid_client", msgHas: InvalidClientMessage, audited: true},
		{name: "insufficient_scope from token endpoint", setup: func(e *env) { e.tokens.err = &tokErr{code: "insufficient_scope"} },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 403, code: "insufficient_scope",
			msgHas: "required Okta Management API scope (okta.users.read)", scope: "okta.users.read", audited: true},
		{name: "token unavailable", setup: func(e *env) { e.tokens.err = &tokErr{code: "token_unavailable"} },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 503, code: "unavailable", audited: true},
		{name: "vault error without code", setup: func(e *env) { e.tokens.err = errStoreDown },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 503, code: "unavailable", audited: true},
		{name: "dpop refused", setup: func(e *env) { e.tokens.err = &tokErr{code: "invalid_dpop_proof"} },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 502, code: "upstream_error", audited: true},
		{name: "key store down", setup: func(e *env) { e.auth.err = errStoreDown },
			headers: get("/api/v1/users", "x-api-key", testKey), status: 503, code: "unavailable", audited: true, noIntegID: true},
		{name: "registry down", setup: func(e *env) { e.integs.err = errStoreDown },
			headers: get("/api/v1/users", "x-api-key", testKey), status: 503, code: "unavailable", audited: true, noIntegID: true},
		{name: "audit store down", setup: func(e *env) { e.rec.err = errStoreDown },
			headers: get("/api/v1/groups", "x-api-key", testBoundKey), status: 503, code: "unavailable", audited: false},
		// The intent of an allowed read cannot be committed: nothing is forwarded.
		{name: "audit store down on an allowed call", setup: func(e *env) { e.rec.err = errStoreDown },
			headers: get("/api/v1/users", "x-api-key", testBoundKey), status: 503, code: "unavailable", audited: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			if tc.setup != nil {
				tc.setup(e)
			}
			x := e.open(t)
			resp := x.do(reqHeaders(true, tc.headers...))
			status, body := mustImmediate(t, resp)
			if status != tc.status || body.Error != tc.code {
				t.Fatalf("got %d %q, want %d %q (%s)", status, body.Error, tc.status, tc.code, body.Message)
			}
			if body.Message == "" || (tc.msgHas != "" && !strings.Contains(body.Message, tc.msgHas)) {
				t.Errorf("message %q, want it to contain %q", body.Message, tc.msgHas)
			}
			if body.Scope != tc.scope {
				t.Errorf("scope = %q, want %q", body.Scope, tc.scope)
			}
			if (body.IntegrationID == "") != tc.noIntegID {
				t.Errorf("integration_id = %q", body.IntegrationID)
			}
			recs := e.rec.records()
			if !tc.audited {
				if len(recs) != 0 || body.AuditEventID != "" {
					t.Fatalf("audit failure still produced %d records / id %q", len(recs), body.AuditEventID)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			if body.AuditEventID != e.rec.ids[0] || setsOf(resp)[hdrAuditEvent][0] != body.AuditEventID {
				t.Errorf("audit_event_id %q, header %v, want %q", body.AuditEventID, setsOf(resp)[hdrAuditEvent], e.rec.ids[0])
			}
			if r := recs[0]; r.Decision != "deny" || r.Reason != tc.code || r.Status != tc.status {
				t.Errorf("audit %+v", r)
			}
			if md := resp.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields(); md["code"].GetStringValue() != tc.code ||
				md["audit_event_id"].GetStringValue() != body.AuditEventID || md["decision"].GetStringValue() != "deny" {
				t.Errorf("dynamic_metadata %v", resp.GetDynamicMetadata())
			}
			// After an ImmediateResponse the server ends the stream; never an OK close
			// instead of the ImmediateResponse (checked above: we got one first).
			if _, err := x.stream.Recv(); err == nil {
				t.Error("stream kept going after an ImmediateResponse")
			}
		})
	}
}

// TestOutcomeCommitFails: the intent is committed and the call forwarded, then the
// store fails. The answer is withheld (503, no audit id) and the intent stays as the
// evidence of a call whose outcome is unknown.
func TestOutcomeCommitFails(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	if resp := x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...)); resp.GetImmediateResponse() != nil {
		t.Fatalf("denied: %v", resp)
	}
	e.rec.mu.Lock()
	e.rec.err = errStoreDown
	e.rec.mu.Unlock()
	status, body := mustImmediate(t, x.do(respHeaders(true, ":status", "200")))
	if status != 503 || body.Error != "unavailable" || body.AuditEventID != "" || body.Message != withheldMessage {
		t.Errorf("got %d %+v; the call was forwarded, and the message must say so", status, body)
	}
	if recs := e.rec.records(); len(recs) != 1 || recs[0].Reason != "forwarded" {
		t.Errorf("records %+v, want the intent only", recs)
	}
}

func TestEnvelopeBodilessResponse(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	resp := x.do(reqHeaders(true, append(get("/api/v1/users/00u1", "authorization", "Bearer "+testBoundKey),
		"accept", "application/vnd.quantaseal.envelope+json")...))
	if got := setsOf(resp)["accept"]; !slices.Equal(got, []string{"application/json"}) {
		t.Errorf("accept = %v; Okta only speaks JSON", got)
	}
	if m := resp.GetModeOverride().GetResponseBodyMode(); m != extprocfilterv3.ProcessingMode_BUFFERED {
		t.Errorf("response body mode %v, want BUFFERED for an envelope", m)
	}
	resp = x.do(respHeaders(true, ":status", "204", "etag", `"abc"`))
	rh, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_ResponseHeaders)
	if !ok {
		t.Fatalf("reply %T", resp.GetResponse())
	}
	cr := rh.ResponseHeaders.GetResponse()
	if cr.GetStatus() != extprocv3.CommonResponse_CONTINUE_AND_REPLACE || len(cr.GetBodyMutation().GetBody()) == 0 {
		t.Fatalf("a bodiless response must get its envelope in the headers reply: %v", cr)
	}
	sets := setsOf(resp)
	if sets[":status"][0] != "200" || sets["content-type"][0] != EnvelopeMediaType || sets[hdrAuditEvent][0] == "" {
		t.Errorf("sets %v", sets)
	}
	if _, ok := sets["content-length"]; ok {
		t.Error("content-length set on CONTINUE_AND_REPLACE (Envoy removes it)")
	}
	if !slices.Contains(removesOf(resp), "etag") {
		t.Error("etag of the upstream body kept")
	}
	recs := e.rec.waitRecords(t, 2)
	if r := recs[1]; !r.Envelope || r.Status != 200 || r.ResponseSHA256 != sha256Hex(nil) || r.ResponseBytes != 0 || r.IntentID != e.rec.ids[0] {
		t.Errorf("audit %+v", r)
	}
	if s := e.sealer.reqs[0]; s.Status != 204 || !s.Success || s.AuditEventID != e.rec.ids[1] {
		t.Errorf("seal %+v", s)
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEnvelopeBufferedGzip(t *testing.T) {
	e := newEnv(t, Config{})
	e.integs.integ.Envelope = EnvelopeAlways
	x := e.open(t)
	x.do(reqHeaders(true, get("/api/v1/users?limit=2", "x-api-key", testBoundKey)...))
	resp := x.do(respHeaders(false, ":status", "200", "content-encoding", "gzip", "content-length", "99",
		"link", `<https://acme.okta.com/api/v1/users?after=00u2bbb&limit=2>; rel="next"`))
	if cr := commonOf(resp); cr.GetHeaderMutation() != nil || cr.GetBodyMutation() != nil {
		t.Fatalf("headers reply must wait for the body: %v", cr)
	}
	if recs := e.rec.records(); len(recs) != 1 || recs[0].Reason != "forwarded" {
		t.Fatalf("outcome audited before the body was seen: %+v", recs)
	}
	plain := []byte(`[{"id":"00u1"},{"id":"00u2bbb"}]`)
	resp = x.do(respBody(gz(t, plain)))
	rb, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_ResponseBody)
	if !ok {
		t.Fatalf("reply %T", resp.GetResponse())
	}
	env := rb.ResponseBody.GetResponse().GetBodyMutation().GetBody()
	sets := setsOf(resp)
	if got := sets["content-length"]; len(got) != 1 || got[0] != itoa(len(env)) {
		t.Errorf("content-length %v, body %d bytes", got, len(env))
	}
	if !slices.Contains(removesOf(resp), "content-encoding") {
		t.Error("content-encoding kept on a decoded envelope")
	}
	seal := e.sealer.reqs[0]
	if !bytes.Equal(seal.Body, plain) || seal.Next != "00u2bbb" || seal.Status != 200 {
		t.Errorf("seal %+v", seal)
	}
	if r := e.rec.waitRecords(t, 2)[1]; r.ResponseSHA256 != sha256Hex(plain) || r.ResponseBytes != int64(len(plain)) || !r.Envelope {
		t.Errorf("audit %+v", r)
	}
	if got := sets["link"]; len(got) != 1 || !strings.HasPrefix(got[0], "<http://127.0.0.1:10000/api/v1/users?after=") {
		t.Errorf("link %v", got)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEnvelopeNeverIgnoresAccept(t *testing.T) {
	e := newEnv(t, Config{})
	e.integs.integ.Envelope = EnvelopeNever
	x := e.open(t)
	resp := x.do(reqHeaders(true, append(get("/api/v1/users", "x-api-key", testBoundKey), "accept", EnvelopeMediaType)...))
	if m := resp.GetModeOverride().GetResponseBodyMode(); m != extprocfilterv3.ProcessingMode_NONE {
		t.Errorf("response body mode %v", m)
	}
}

func TestHashResponses(t *testing.T) {
	e := newEnv(t, Config{HashResponses: true})
	x := e.open(t)
	resp := x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	if m := resp.GetModeOverride().GetResponseBodyMode(); m != extprocfilterv3.ProcessingMode_BUFFERED {
		t.Errorf("response body mode %v", m)
	}
	x.do(respHeaders(false, ":status", "200"))
	resp = x.do(respBody([]byte(`[]`)))
	if cr := commonOf(resp); cr.GetBodyMutation() != nil {
		t.Error("hash-only mode changed the body")
	}
	if _, ok := setsOf(resp)["content-length"]; ok {
		t.Error("content-length changed without a body change")
	}
	if r := e.rec.waitRecords(t, 2)[1]; r.ResponseSHA256 != sha256Hex([]byte(`[]`)) || r.ResponseBytes != 2 || r.Envelope {
		t.Errorf("audit %+v", r)
	}
}

func outboundHeaders(body []byte, extra ...string) *extprocv3.ProcessingRequest {
	return reqHeaders(false, append([]string{":authority", "gw.internal:10000", ":path", OutboundPath, ":method", "POST",
		":scheme", "https", "content-type", "application/json", "content-length", itoa(len(body)), "x-api-key", testKey}, extra...)...)
}

func TestOutbound(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantMethod string
		wantPath   string
		wantBody   string // "" = cleared
	}{
		{"list_users", `{"integration_id":"int_01TEST","operation":"list_users","payload":{"filter":"status eq \"ACTIVE\"","limit":25}}`,
			"GET", "/api/v1/users?filter=status+eq+%22ACTIVE%22&limit=25", ""},
		{"create_user", `{"integration_id":"int_01TEST","operation":"create_user","payload":{"profile":{"login":"a@example.com"},"activate":false}}`,
			"POST", "/api/v1/users?activate=false", `{"profile":{"login":"a@example.com"}}`},
		{"deactivate_user", `{"integration_id":"int_01TEST","operation":"deactivate_user","payload":{"id":"a.b+c@example.com"}}`,
			"POST", "/api/v1/users/a.b+c@example.com/lifecycle/deactivate", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			x := e.open(t)
			resp := x.do(outboundHeaders([]byte(tc.body)))
			if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders); !ok || commonOf(resp) != nil {
				t.Fatalf("headers reply %v", resp)
			}
			mo := resp.GetModeOverride()
			if mo.GetRequestBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED || mo.GetResponseBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
				t.Errorf("mode_override %v", mo)
			}
			resp = x.do(reqBody([]byte(tc.body)))
			if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestBody); !ok {
				t.Fatalf("reply %T", resp.GetResponse())
			}
			sets := setsOf(resp)
			for k, want := range map[string]string{":method": tc.wantMethod, ":path": tc.wantPath, ":authority": "acme.okta.com",
				"authorization": "Bearer " + testToken, "content-length": itoa(len(tc.wantBody)), "accept": "application/json"} {
				if got := sets[k]; len(got) != 1 || got[0] != want {
					t.Errorf("%s = %v, want %q", k, got, want)
				}
			}
			bm := commonOf(resp).GetBodyMutation()
			if tc.wantBody == "" {
				if !bm.GetClearBody() {
					t.Errorf("body not cleared: %v", bm)
				}
				if !slices.Contains(removesOf(resp), "content-type") {
					t.Error("content-type kept on a bodiless request")
				}
			} else if string(bm.GetBody()) != tc.wantBody || sets["content-type"][0] != "application/json" {
				t.Errorf("body %q", bm.GetBody())
			}
			if !slices.Contains(removesOf(resp), "x-api-key") {
				t.Error("x-api-key forwarded")
			}
			// Reads and writes alike: the intent binds the rewritten request as sent.
			recs := e.rec.records()
			if len(recs) != 1 || recs[0].Reason != "forwarded" || recs[0].Status != 0 || recs[0].Decision != "allow" || recs[0].IntentID != "" {
				t.Fatalf("intent not committed before forwarding: %+v", recs)
			}
			path, query, _ := strings.Cut(tc.wantPath, "?")
			if in := recs[0]; in.Method != tc.wantMethod || in.Path != path || in.QuerySHA256 != querySHA(query) || in.RequestSHA256 != bodySHA(tc.wantBody) {
				t.Errorf("intent %+v does not bind the upstream request", in)
			}
			if md := resp.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields(); md["audit_event_id"].GetStringValue() != e.rec.ids[0] {
				t.Errorf("dynamic_metadata %v, want the intent id", resp.GetDynamicMetadata())
			}

			x.do(respHeaders(false, ":status", "404", "content-type", "application/json"))
			resp = x.do(respBody([]byte(`{"errorCode":"E0000007"}`)))
			env := commonOf(resp).GetBodyMutation().GetBody()
			if len(env) == 0 || setsOf(resp)["content-type"][0] != EnvelopeMediaType {
				t.Fatalf("outbound answers are always envelopes: %v", resp)
			}
			if s := e.sealer.reqs[0]; s.Success || s.Status != 404 {
				t.Errorf("seal %+v", s)
			}
			recs = e.rec.waitRecords(t, 2)
			out := recs[1]
			if out.Method != tc.wantMethod || out.Reason != "upstream_error" || out.Status != 404 || !out.Envelope || out.RequestSHA256 != recs[0].RequestSHA256 {
				t.Errorf("outcome %+v", out)
			}
			if out.IntentID != e.rec.ids[0] {
				t.Errorf("intent_id %q, want %q", out.IntentID, e.rec.ids[0])
			}
		})
	}
}

func TestOutboundErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"not JSON", `nope`, 400, "invalid_payload", ""},
		{"unknown member", `{"operation":"list_users","x":1}`, 400, "invalid_payload", ""},
		{"no operation", `{"integration_id":"int_01TEST"}`, 400, "invalid_payload", "operation"},
		{"bad limit", `{"integration_id":"int_01TEST","operation":"list_users","payload":{"limit":500}}`, 400, "invalid_payload", "limit"},
		{"unknown field", `{"integration_id":"int_01TEST","operation":"list_users","payload":{"expand":"x"}}`, 400, "invalid_payload", "expand"},
		{"unknown operation", `{"integration_id":"int_01TEST","operation":"delete_user","payload":{}}`, 403, "unknown_operation", ""},
		{"not allowed", `{"integration_id":"int_01TEST","operation":"list_groups","payload":{}}`, 403, "operation_not_allowed", ""},
		{"no integration", `{"integration_id":"int_nope","operation":"list_users"}`, 404, "integration_not_found", ""},
		{"too large", `{"operation":"list_users","payload":{"q":"` + strings.Repeat("a", 5<<20) + `"}}`, 413, "payload_too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			x := e.open(t)
			x.do(outboundHeaders([]byte(tc.body)))
			status, body := mustImmediate(t, x.do(reqBody([]byte(tc.body))))
			if status != tc.status || body.Error != tc.code || body.Field != tc.field {
				t.Errorf("got %d %q field %q (%s), want %d %q field %q", status, body.Error, body.Field, body.Message, tc.status, tc.code, tc.field)
			}
			if recs := e.rec.records(); len(recs) != 1 || recs[0].Reason != tc.code || body.AuditEventID == "" {
				t.Errorf("audit %+v", recs)
			}
		})
	}
	t.Run("no body", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		req := outboundHeaders(nil)
		req.GetRequestHeaders().EndOfStream = true
		if status, body := mustImmediate(t, x.do(req)); status != 400 || body.Error != "invalid_payload" {
			t.Errorf("got %d %q", status, body.Error)
		}
	})
}

func TestSlowTokenSendsOverrideFirst(t *testing.T) {
	e := newEnv(t, Config{OverrideAfter: 20 * time.Millisecond, MessageTimeoutOverride: 7 * time.Second})
	e.tokens.delay = 200 * time.Millisecond
	x := e.open(t)
	resp := x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	if len(x.all) != 2 {
		t.Fatalf("got %d replies, want override then the real reply", len(x.all))
	}
	ov := x.all[0]
	if ov.GetResponse() != nil || ov.GetOverrideMessageTimeout().AsDuration() != 7*time.Second || ov.GetModeOverride() != nil {
		t.Errorf("first reply must carry only override_message_timeout: %v", ov)
	}
	if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders); !ok {
		t.Errorf("second reply %T", resp.GetResponse())
	}
}

// TestOverrideCountsTheWholeMessage: Envoy's message_timeout runs per message, so
// the override budget counts every step of the request_headers message — token and
// intent commit together — not each step afresh.
func TestOverrideCountsTheWholeMessage(t *testing.T) {
	tests := []struct {
		name                string
		tokenDelay, rcDelay time.Duration
	}{
		{"slow intent commit", 0, 150 * time.Millisecond},
		{"two steps each under the budget", 60 * time.Millisecond, 60 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{OverrideAfter: 80 * time.Millisecond, MessageTimeoutOverride: 7 * time.Second})
			e.tokens.delay = tc.tokenDelay
			e.rec.delay = tc.rcDelay
			x := e.open(t)
			resp := x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
			if len(x.all) != 2 || x.all[0].GetOverrideMessageTimeout().AsDuration() != 7*time.Second || x.all[0].GetResponse() != nil {
				t.Fatalf("got %d replies (%v), want override then the real reply", len(x.all), x.all)
			}
			if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders); !ok || len(e.rec.records()) != 1 {
				t.Errorf("second reply %T, records %d", resp.GetResponse(), len(e.rec.records()))
			}
		})
	}
}

func TestFastTokenNoOverride(t *testing.T) {
	e := newEnv(t, Config{OverrideAfter: time.Second})
	x := e.open(t)
	x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
	if len(x.all) != 1 {
		t.Errorf("a cached token must be answered in one reply, got %d", len(x.all))
	}
}

func TestAbortedStream(t *testing.T) {
	t.Run("after forwarding", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
		x.close() // client gone / upstream reset: Envoy closes the stream
		recs := e.rec.waitRecords(t, 2)
		if recs[0].Reason != "forwarded" {
			t.Errorf("intent %+v", recs[0])
		}
		if r := recs[1]; r.Reason != "aborted" || r.Decision != "allow" || r.Operation != "list_users" || r.IntentID != e.rec.ids[0] {
			t.Errorf("outcome %+v", r)
		}
		// EOF / Canceled is how Envoy ends every stream: not an error (gotcha 15).
		if logs := e.logs.String(); strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, `"level":"WARN"`) {
			t.Errorf("stream end logged as a problem:\n%s", logs)
		}
	})
	t.Run("state-changing: intent then aborted outcome", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		x.do(reqHeaders(true, ":authority", "127.0.0.1:10000", ":path", "/api/v1/users/00u1/lifecycle/deactivate",
			":method", "POST", ":scheme", "http", "content-length", "0", "x-api-key", testBoundKey))
		if recs := e.rec.records(); len(recs) != 1 || recs[0].Reason != "forwarded" {
			t.Fatalf("intent %+v", recs)
		}
		x.close()
		recs := e.rec.waitRecords(t, 2)
		if recs[1].Reason != "aborted" || recs[1].IntentID != e.rec.ids[0] {
			t.Errorf("outcome %+v", recs[1])
		}
	})
	t.Run("outbound before the body", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		x.do(outboundHeaders([]byte(`{}`)))
		x.close()
		if r := e.rec.waitRecords(t, 1)[0]; r.Reason != "aborted" || r.Decision != "deny" {
			t.Errorf("audit %+v", r)
		}
	})
}

// querySHA and bodySHA are the audit hashes of a raw query and a request body ("" for
// none).
func querySHA(q string) string {
	if q == "" {
		return ""
	}
	return sha256Hex([]byte(q))
}

func bodySHA(b string) string { return querySHA(b) }

// TestInterleaved sends response_headers before the request body, as Envoy can when
// the request body is not BUFFERED (the mode_override not honoured): the headers went
// upstream without the real credential and without an intent, so the response is
// refused with 503 and the call is recorded once, as a denial.
func TestInterleaved(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	resp := x.do(reqHeaders(false, ":authority", "127.0.0.1:10000", ":path", "/api/v1/users?activate=false", ":method", "POST",
		":scheme", "http", "content-type", "application/json", "x-api-key", testBoundKey))
	if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders); !ok {
		t.Fatalf("reply %T", resp.GetResponse())
	}
	if _, ok := setsOf(resp)["authorization"]; ok {
		t.Fatal("credential injected before the intent was committed")
	}
	status, body := mustImmediate(t, x.do(respHeaders(true, ":status", "200")))
	if status != 503 || body.Error != "unavailable" {
		t.Errorf("got %d %q, want 503 unavailable", status, body.Error)
	}
	recs := e.rec.waitRecords(t, 1)
	if r := recs[0]; r.Decision != "deny" || r.Reason != "unavailable" || r.IntentID != "" || body.AuditEventID != e.rec.ids[0] {
		t.Errorf("audit %+v", r)
	}
}

// TestTransparentRequestBody covers a transparent call with a body (create_user):
// Envoy holds the headers (SEND + BUFFERED), so the intent is committed in the
// request_body reply, bound to the body's hash, and that reply injects the
// credential; the headers reply only strips the caller's credential.
func TestTransparentRequestBody(t *testing.T) {
	const body = `{"profile":{"login":"x"}}`
	open := func(t *testing.T, e *env) *exchange {
		x := e.open(t)
		resp := x.do(reqHeaders(false, ":authority", "127.0.0.1:10000", ":path", "/api/v1/users?activate=false", ":method", "POST",
			":scheme", "http", "content-type", "application/json", "authorization", "SSWS "+testBoundKey))
		if _, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_RequestHeaders); !ok {
			t.Fatalf("reply %T", resp.GetResponse())
		}
		if sets := setsOf(resp); len(sets) != 0 {
			t.Errorf("headers reply sets %v before the intent is committed", sets)
		}
		if !slices.Contains(removesOf(resp), "authorization") {
			t.Error("the caller's key is not removed in the headers reply")
		}
		if m := resp.GetModeOverride().GetRequestBodyMode(); m != extprocfilterv3.ProcessingMode_BUFFERED {
			t.Errorf("request body mode %v: the headers must be held until the body reply", m)
		}
		if recs := e.rec.records(); len(recs) != 0 {
			t.Fatalf("intent committed before the body was hashed: %+v", recs)
		}
		return x
	}
	t.Run("forwarded", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := open(t, e)
		resp := x.do(reqBody([]byte(body)))
		cr := commonOf(resp)
		if cr.GetBodyMutation() != nil {
			t.Errorf("transparent body changed: %v", cr)
		}
		if sets := setsOf(resp); sets["authorization"][0] != "Bearer "+testToken || sets[":authority"][0] != "acme.okta.com" {
			t.Errorf("body reply sets %v, want the credential and the Okta host", sets)
		}
		recs := e.rec.records()
		if len(recs) != 1 {
			t.Fatalf("%d records before release, want the intent", len(recs))
		}
		in := recs[0]
		if in.Reason != "forwarded" || in.Status != 0 || in.Operation != "create_user" || in.RequestSHA256 != sha256Hex([]byte(body)) ||
			in.QuerySHA256 != sha256Hex([]byte("activate=false")) {
			t.Errorf("intent %+v", in)
		}
		if md := resp.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields(); md["audit_event_id"].GetStringValue() != e.rec.ids[0] {
			t.Errorf("dynamic_metadata %v", resp.GetDynamicMetadata())
		}
		x.do(respHeaders(true, ":status", "200"))
		recs = e.rec.waitRecords(t, 2)
		if out := recs[1]; out.RequestSHA256 != in.RequestSHA256 || out.IntentID != e.rec.ids[0] || out.Reason != "ok" {
			t.Errorf("outcome %+v", out)
		}
	})
	t.Run("audit store down at the body", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := open(t, e)
		e.rec.mu.Lock()
		e.rec.err = errStoreDown
		e.rec.mu.Unlock()
		status, b := mustImmediate(t, x.do(reqBody([]byte(body))))
		if status != 503 || b.Error != "unavailable" || b.AuditEventID != "" {
			t.Errorf("got %d %+v", status, b)
		}
		if recs := e.rec.records(); len(recs) != 0 {
			t.Errorf("records %+v", recs)
		}
	})
	t.Run("aborted before the body", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := open(t, e)
		x.close()
		if r := e.rec.waitRecords(t, 1)[0]; r.Reason != "aborted" || r.Decision != "deny" || r.IntentID != "" {
			t.Errorf("a call never released is a denial: %+v", r)
		}
	})
}

func TestUpstreamAuthErrors(t *testing.T) {
	t.Run("403 insufficient_scope", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		x.do(reqHeaders(true, get("/api/v1/logs", "x-api-key", testBoundKey)...))
		status, body := mustImmediate(t, x.do(respHeaders(true, ":status", "403", "www-authenticate",
			`Bearer authorization_uri="https://acme.okta.com/oauth2/v1/authorize", realm="https://acme.okta.com", scope="okta.logs.read", error="insufficient_scope", error_description="The access token provided does not contain the required scopes."`)))
		if status != 403 || body.Error != "insufficient_scope" || body.Scope != "okta.logs.read" ||
			!strings.Contains(body.Message, "(okta.logs.read)") {
			t.Errorf("got %d %+v", status, body)
		}
	})
	t.Run("401 invalidates the token", func(t *testing.T) {
		e := newEnv(t, Config{})
		x := e.open(t)
		x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...))
		resp := x.do(respHeaders(true, ":status", "401"))
		if resp.GetImmediateResponse() != nil {
			t.Error("an upstream 401 is passed through")
		}
		if !slices.Equal(e.tokens.invalidated, []string{integID}) {
			t.Errorf("invalidated %v", e.tokens.invalidated)
		}
		if r := e.rec.waitRecords(t, 2)[1]; r.Reason != "upstream_error" || r.Status != 401 || r.IntentID != e.rec.ids[0] {
			t.Errorf("audit %+v", r)
		}
	})
}

func TestDPoPInjected(t *testing.T) {
	e := newEnv(t, Config{})
	e.tokens.dpop = true
	x := e.open(t)
	sets := setsOf(x.do(reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...)))
	if sets["authorization"][0] != "DPoP "+testToken || sets["dpop"][0] != testProof {
		t.Errorf("sets %v", sets)
	}
}

func TestResolveByHost(t *testing.T) {
	e := newEnv(t, Config{})
	x := e.open(t)
	resp := x.do(reqHeaders(true, ":authority", "acme.okta.com", ":path", "/api/v1/users", ":method", "GET",
		":scheme", "https", "authorization", "SSWS "+testKey))
	if resp.GetImmediateResponse() != nil {
		t.Fatalf("denied: %s", resp.GetImmediateResponse().GetBody())
	}
	if got := e.integs.asked; !slices.Equal(got, []string{"|acme.okta.com"}) {
		t.Errorf("asked %v", got)
	}
}

func TestLargeMessageWithinLimit(t *testing.T) {
	// A 5 MiB buffered body is above grpc-go's 4 MiB default: it must reach the
	// server (MaxRecvMsgSize) and be refused as 413, not a RESOURCE_EXHAUSTED stream
	// error (envoy-extproc.md §10 item 16).
	e := newEnv(t, Config{})
	x := e.open(t)
	body := bytes.Repeat([]byte("a"), 5<<20)
	x.do(outboundHeaders(body))
	if status, b := mustImmediate(t, x.do(reqBody(body))); status != 413 || b.Error != "payload_too_large" {
		t.Errorf("got %d %q", status, b.Error)
	}
}
