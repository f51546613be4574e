package extproc

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/quantaseal/gateway/internal/envoytest"
)

// shippedFilter mirrors the ext_proc filter the envoy/ package ships: headers SEND,
// body modes left at NONE and switched per request with mode_override
// (allow_mode_override), routing mutations allowed, blocked mutations an error.
func shippedFilter() *extprocfilterv3.ExternalProcessor {
	return &extprocfilterv3.ExternalProcessor{
		FailureModeAllow:  false,
		MessageTimeout:    durationpb.New(2 * time.Second),
		MaxMessageTimeout: durationpb.New(10 * time.Second),
		ProcessingMode: &extprocfilterv3.ProcessingMode{
			RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocfilterv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
			ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
			ResponseBodyMode:    extprocfilterv3.ProcessingMode_NONE,
			ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
		},
		AllowModeOverride: true,
		MetadataOptions: &extprocfilterv3.MetadataOptions{
			ReceivingNamespaces: &extprocfilterv3.MetadataOptions_MetadataNamespaces{Untyped: []string{MetadataNamespace}},
		},
		MutationRules: &mutationrulesv3.HeaderMutationRules{
			AllowAllRouting: wrapperspb.Bool(true),
			DisallowIsError: wrapperspb.Bool(true),
		},
	}
}

// fakeOkta is a minimal Okta Management API double that records what reached it.
type fakeOkta struct {
	mu   sync.Mutex
	seen []*http.Request
	body [][]byte
	gzip bool
}

func (f *fakeOkta) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, r)
	f.body = append(f.body, b)
	useGzip := f.gzip
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/users":
		w.Header().Add("Link", `<https://acme.okta.com/api/v1/users?limit=2>; rel="self"`)
		w.Header().Add("Link", `<https://acme.okta.com/api/v1/users?after=00u2&limit=2>; rel="next"`)
		payload := []byte(`[{"id":"00u1"},{"id":"00u2"}]`)
		if useGzip {
			w.Header().Set("Content-Encoding", "gzip")
			var buf bytes.Buffer
			zw := newGzip(&buf)
			zw.Write(payload)
			zw.Close()
			payload = buf.Bytes()
		}
		w.Write(payload)
	case r.Method == "POST" && r.URL.Path == "/api/v1/users":
		w.Write([]byte(`{"id":"00unew","status":"STAGED"}`))
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/lifecycle/deactivate"):
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errorCode":"E0000007"}`))
	}
}

func (f *fakeOkta) requests() ([]*http.Request, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.seen...), append([][]byte(nil), f.body...)
}

type e2e struct {
	*env
	okta  *fakeOkta
	envoy *envoytest.Envoy
}

func newE2E(t *testing.T, cfg Config, filter ...func(*extprocfilterv3.ExternalProcessor)) *e2e {
	t.Helper()
	f := shippedFilter()
	for _, fn := range filter {
		fn(f)
	}
	e := newEnv(t, cfg)
	okta := &fakeOkta{}
	up := httptest.NewServer(okta)
	t.Cleanup(up.Close)
	return &e2e{env: e, okta: okta, envoy: envoytest.New(t, envoytest.Config{Processor: e.conn, Upstream: up.URL, Filter: f})}
}

func (e *e2e) do(t *testing.T, method, path string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.envoy.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := e.envoy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (e *e2e) checkStats(t *testing.T) {
	t.Helper()
	s := e.envoy.Stats()
	if s.SpuriousMsgsReceived != 0 || s.RejectedHeaderMutations != 0 || s.MessageTimeouts != 0 || s.StreamsFailed != 0 {
		t.Errorf("envoy stats %+v", s)
	}
}

func TestE2ETransparent(t *testing.T) {
	e := newE2E(t, Config{})
	resp, body := e.do(t, "GET", "/api/v1/users?limit=2", nil, "Authorization", "SSWS "+testBoundKey, "Accept-Encoding", "gzip")
	if resp.StatusCode != 200 || string(body) != `[{"id":"00u1"},{"id":"00u2"}]` {
		x := e.envoy.LastExchange()
		t.Fatalf("got %d %s details=%s sent=%v received=%v", resp.StatusCode, body, x.Details, x.Sent, x.Received)
	}
	links := resp.Header.Values("Link")
	origin := e.envoy.URL()
	if len(links) != 2 || !strings.HasPrefix(links[0], "<"+origin+"/api/v1/users?limit=2>") || !strings.HasPrefix(links[1], "<"+origin+"/api/v1/users?after=00u2") {
		t.Errorf("links %q (origin %s)", links, origin)
	}
	if resp.Header.Get("X-Quantaseal-Audit-Event") == "" {
		t.Error("no audit header")
	}
	if md := e.envoy.LastExchange().Metadata[MetadataNamespace]; md.GetFields()["operation"].GetStringValue() != "list_users" {
		t.Errorf("dynamic metadata %v", e.envoy.LastExchange().Metadata)
	}
	reqs, _ := e.okta.requests()
	up := reqs[0]
	if up.Header.Get("Authorization") != "Bearer "+testToken || up.Header.Get("X-Api-Key") != "" || up.Host != "acme.okta.com" ||
		up.Header.Get("Accept-Encoding") != "identity" || up.URL.RequestURI() != "/api/v1/users?limit=2" {
		t.Errorf("upstream saw %s %s host=%s headers=%v", up.Method, up.URL, up.Host, up.Header)
	}
	e.checkStats(t)
}

func TestE2EEnvelopeGzip(t *testing.T) {
	e := newE2E(t, Config{})
	e.okta.gzip = true // Okta ignoring accept-encoding: identity
	resp, body := e.do(t, "GET", "/api/v1/users", nil, "X-API-Key", testBoundKey, "Accept", EnvelopeMediaType)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != EnvelopeMediaType || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	var env struct {
		Ciphertext []byte `json:"ciphertext"`
		Next       string `json:"next"`
		AuditID    string `json:"audit_event_id"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if string(env.Ciphertext) != `[{"id":"00u1"},{"id":"00u2"}]` || env.Next != "00u2" || env.AuditID != resp.Header.Get("X-Quantaseal-Audit-Event") {
		t.Errorf("envelope %+v", env)
	}
	e.checkStats(t)
}

func TestE2EBodilessEnvelope(t *testing.T) {
	e := newE2E(t, Config{})
	e.integs.integ.Envelope = EnvelopeAlways
	resp, body := e.do(t, "POST", "/api/v1/users/00u1/lifecycle/deactivate?sendEmail=false", nil, "X-API-Key", testBoundKey)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != EnvelopeMediaType || !bytes.Contains(body, []byte(`"audit_event_id"`)) {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	recs := e.rec.waitRecords(t, 2)
	if recs[0].Reason != "forwarded" || recs[1].IntentID == "" || !recs[1].Envelope {
		t.Errorf("audit %+v", recs)
	}
	e.checkStats(t)
}

func TestE2EOutbound(t *testing.T) {
	e := newE2E(t, Config{})
	t.Run("list_users", func(t *testing.T) {
		resp, body := e.do(t, "POST", OutboundPath, []byte(`{"integration_id":"int_01TEST","operation":"list_users","payload":{"filter":"status eq \"ACTIVE\"","limit":25}}`),
			"X-API-Key", testKey, "Content-Type", "application/json")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != EnvelopeMediaType || len(body) == 0 {
			t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
		}
		reqs, bodies := e.okta.requests()
		up := reqs[len(reqs)-1]
		if up.Method != "GET" || up.URL.RequestURI() != "/api/v1/users?filter=status+eq+%22ACTIVE%22&limit=25" || len(bodies[len(bodies)-1]) != 0 ||
			up.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("upstream %s %s %v", up.Method, up.URL, up.Header)
		}
	})
	t.Run("create_user", func(t *testing.T) {
		resp, body := e.do(t, "POST", OutboundPath, []byte(`{"integration_id":"int_01TEST","operation":"create_user","payload":{"profile":{"login":"a@example.com"},"activate":false}}`),
			"X-API-Key", testKey, "Content-Type", "application/json")
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		reqs, bodies := e.okta.requests()
		up, b := reqs[len(reqs)-1], bodies[len(bodies)-1]
		if up.Method != "POST" || up.URL.RequestURI() != "/api/v1/users?activate=false" || string(b) != `{"profile":{"login":"a@example.com"}}` ||
			up.ContentLength != int64(len(b)) || up.Header.Get("Content-Type") != "application/json" {
			t.Errorf("upstream %s %s cl=%d %q", up.Method, up.URL, up.ContentLength, b)
		}
	})
	t.Run("denied", func(t *testing.T) {
		before, _ := e.okta.requests()
		resp, body := e.do(t, "POST", OutboundPath, []byte(`{"integration_id":"int_01TEST","operation":"list_groups"}`),
			"X-API-Key", testKey, "Content-Type", "application/json")
		var eb errorJSON
		if resp.StatusCode != 403 || json.Unmarshal(body, &eb) != nil || eb.Error != "operation_not_allowed" || eb.AuditEventID == "" {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
		if after, _ := e.okta.requests(); len(after) != len(before) {
			t.Error("a denied call reached Okta")
		}
	})
	e.checkStats(t)
}

func TestE2EDenied(t *testing.T) {
	e := newE2E(t, Config{})
	for _, tc := range []struct {
		path   string
		hdr    []string
		status int
		code   string
	}{
		{"/api/v1/groups", []string{"X-API-Key", testBoundKey}, 403, "operation_not_allowed"},
		{"/api/v1/users", nil, 401, "invalid_api_key"},
		{"/api/v1/users/a%2Fb", []string{"X-API-Key", testBoundKey}, 403, "unknown_operation"},
	} {
		resp, body := e.do(t, "GET", tc.path, nil, tc.hdr...)
		var eb errorJSON
		if resp.StatusCode != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error != tc.code || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: got %d %s", tc.path, resp.StatusCode, body)
		}
	}
	if reqs, _ := e.okta.requests(); len(reqs) != 0 {
		t.Errorf("%d denied calls reached Okta", len(reqs))
	}
	e.checkStats(t)
}

func TestE2ESlowToken(t *testing.T) {
	e := newE2E(t, Config{OverrideAfter: 50 * time.Millisecond}, func(f *extprocfilterv3.ExternalProcessor) {
		f.MessageTimeout = durationpb.New(500 * time.Millisecond)
	})
	e.tokens.delay = time.Second // twice the message_timeout
	resp, body := e.do(t, "GET", "/api/v1/users", nil, "X-API-Key", testBoundKey)
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if s := e.envoy.Stats(); s.OverrideMessageTimeoutReceived != 1 || s.MessageTimeouts != 0 {
		t.Errorf("stats %+v", s)
	}
}

func newGzip(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// TestE2EConfigWithoutAllowAllRouting documents gotcha 5: without allow_all_routing
// Envoy refuses the :method/:authority rewrite. With disallow_is_error (as shipped)
// that fails closed with a local 500 and nothing reaches Okta.
func TestE2EConfigWithoutAllowAllRouting(t *testing.T) {
	e := newE2E(t, Config{}, func(f *extprocfilterv3.ExternalProcessor) {
		f.MutationRules = &mutationrulesv3.HeaderMutationRules{DisallowIsError: wrapperspb.Bool(true)}
	})
	resp, _ := e.do(t, "POST", OutboundPath, []byte(`{"integration_id":"int_01TEST","operation":"list_users"}`),
		"X-API-Key", testKey, "Content-Type", "application/json")
	if resp.StatusCode != 500 {
		t.Errorf("status %d, want Envoy's status_on_error 500", resp.StatusCode)
	}
	if reqs, _ := e.okta.requests(); len(reqs) != 0 {
		t.Errorf("%d requests reached Okta", len(reqs))
	}
}

// TestE2ETransparentCreateUser sends a transparent call with a body through the fake
// Envoy: Okta receives the body untouched with the real credential, and the intent,
// committed before the release, carries the body's hash. Without allow_mode_override
// Envoy releases the headers after the headers reply: the request then reaches the
// upstream with neither the caller's key nor the real credential, and its answer is
// refused (fail closed).
func TestE2ETransparentCreateUser(t *testing.T) {
	const body = `{"profile":{"login":"a@example.com"}}`
	t.Run("shipped filter", func(t *testing.T) {
		e := newE2E(t, Config{})
		resp, got := e.do(t, "POST", "/api/v1/users?activate=false", []byte(body),
			"Authorization", "SSWS "+testBoundKey, "Content-Type", "application/json")
		if resp.StatusCode != 200 || string(got) != `{"id":"00unew","status":"STAGED"}` {
			t.Fatalf("got %d %s", resp.StatusCode, got)
		}
		reqs, bodies := e.okta.requests()
		if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+testToken || string(bodies[0]) != body || reqs[0].Host != "acme.okta.com" {
			t.Fatalf("upstream saw %d requests: %v %q", len(reqs), reqs[0].Header, bodies[0])
		}
		recs := e.rec.waitRecords(t, 2)
		if in := recs[0]; in.Reason != "forwarded" || in.RequestSHA256 != sha256Hex([]byte(body)) {
			t.Errorf("intent %+v", in)
		}
		if out := recs[1]; out.IntentID != e.rec.ids[0] || out.Status != 200 || resp.Header.Get("X-Quantaseal-Audit-Event") != e.rec.ids[1] {
			t.Errorf("outcome %+v", out)
		}
		e.checkStats(t)
	})
	t.Run("mode_override not honoured", func(t *testing.T) {
		e := newE2E(t, Config{}, func(f *extprocfilterv3.ExternalProcessor) { f.AllowModeOverride = false })
		resp, got := e.do(t, "POST", "/api/v1/users?activate=false", []byte(body),
			"Authorization", "SSWS "+testBoundKey, "Content-Type", "application/json")
		if resp.StatusCode != 503 {
			t.Errorf("got %d %s, want 503", resp.StatusCode, got)
		}
		reqs, _ := e.okta.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d upstream requests; this case is meant to show the early release", len(reqs))
		}
		for _, r := range reqs {
			if a := r.Header.Get("Authorization"); a != "" {
				t.Errorf("a request released before its intent carried Authorization %q", a)
			}
		}
		for _, r := range e.rec.records() {
			if r.Reason == "forwarded" || r.Decision == "allow" {
				t.Errorf("record %+v for a call that was never admitted", r)
			}
		}
	})
}
