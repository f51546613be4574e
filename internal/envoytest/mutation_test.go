package envoytest

import (
	"strings"
	"testing"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Design §2 Checker: the decision for each operation, header and value.
func TestCheckerDecisions(t *testing.T) {
	routing := rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes })
	isErr := rules(func(r *mutationrulesv3.HeaderMutationRules) { r.DisallowIsError = yes })
	tests := []struct {
		rules *mutationrulesv3.HeaderMutationRules
		op    checkOp
		name  string
		value string
		want  checkResult
	}{
		{nil, opSet, "x-custom", "v", checkOK},
		{nil, opSet, ":path", "/x", checkOK},
		{nil, opSet, ":status", "404", checkOK},
		{nil, opSet, ":status", "199", checkIgnore},
		{nil, opSet, ":status", "20x", checkIgnore},
		{nil, opSet, ":method", "PUT", checkIgnore},
		{nil, opSet, ":scheme", "https", checkIgnore},
		{nil, opSet, "host", "a.example", checkIgnore},
		{nil, opSet, ":authority", "a.example", checkIgnore},
		{nil, opSet, "x-envoy-original-path", "/", checkIgnore},
		{routing, opSet, ":method", "PUT", checkOK},
		{routing, opSet, ":scheme", "https", checkOK},
		{routing, opSet, ":scheme", "gopher", checkIgnore},
		{routing, opSet, "host", "a.example:443", checkOK},
		{routing, opSet, ":authority", "a example", checkIgnore},
		{routing, opRemove, ":authority", "", checkIgnore},
		{routing, opRemove, "host", "", checkIgnore},
		{routing, opAppend, ":path", "/y", checkIgnore},
		{nil, opAppend, "x-custom", "v", checkOK},
		{nil, opRemove, "x-custom", "", checkOK},
		{isErr, opSet, ":method", "PUT", checkFail},
		{isErr, opRemove, ":path", "", checkFail},
		{isErr, opSet, "x-custom", "v", checkOK},
		{rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.AllowExpression = &matcherv3.RegexMatcher{Regex: ":method"}
		}), opSet, ":method", "PUT", checkOK},
		{rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.AllowExpression = &matcherv3.RegexMatcher{Regex: "x-envoy-.*"}
		}), opSet, "x-envoy-foo", "1", checkOK},
		{rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.DisallowExpression = &matcherv3.RegexMatcher{Regex: "authorization"}
		}), opSet, "authorization", "x", checkIgnore},
		{rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.DisallowExpression = &matcherv3.RegexMatcher{Regex: "auth"} // full match only
		}), opSet, "authorization", "x", checkOK},
	}
	for _, tc := range tests {
		c, err := newChecker(tc.rules)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.check(tc.op, tc.name, tc.value); got != tc.want {
			t.Errorf("rules %v op %d %s=%q: got %d, want %d", tc.rules, tc.op, tc.name, tc.value, got, tc.want)
		}
	}
}

func TestNewCheckerRejectsBadRegex(t *testing.T) {
	for _, r := range []*mutationrulesv3.HeaderMutationRules{
		{AllowExpression: &matcherv3.RegexMatcher{Regex: "("}},
		{DisallowExpression: &matcherv3.RegexMatcher{Regex: "["}},
	} {
		if _, err := newChecker(r); err == nil {
			t.Errorf("newChecker(%v) accepted a bad regex", r)
		}
	}
}

// FuzzApplyHeaderMutation checks the invariants of the Checker on arbitrary
// mutations: pseudo-headers are never removed, no invalid value is ever
// applied, and disallow_all leaves the map untouched.
func FuzzApplyHeaderMutation(f *testing.F) {
	f.Add(":method", "DELETE", ":path", false, uint8(0))
	f.Add(":path", "/a?b=c", "host", true, uint8(1))
	f.Add("x-envoy-foo", "1", "x-in", false, uint8(2))
	f.Add("X-Upper", "a\r\nb", ":authority", false, uint8(4))
	f.Add(":status", "99", "", true, uint8(8))
	f.Fuzz(func(t *testing.T, key, value, remove string, appendMode bool, bits uint8) {
		r := &mutationrulesv3.HeaderMutationRules{
			AllowAllRouting: wrapperspb.Bool(bits&1 != 0),
			AllowEnvoy:      wrapperspb.Bool(bits&2 != 0),
			DisallowSystem:  wrapperspb.Bool(bits&4 != 0),
			DisallowAll:     wrapperspb.Bool(bits&8 != 0),
			DisallowIsError: wrapperspb.Bool(bits&16 != 0),
		}
		c, err := newChecker(r)
		if err != nil {
			t.Fatal(err)
		}
		orig := headerList{{":authority", "a.example"}, {":path", "/"}, {":method", "GET"}, {":scheme", "http"}, {"x-in", "old"}}
		m := &extprocv3.HeaderMutation{
			SetHeaders:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)}, Append: wrapperspb.Bool(appendMode)}},
			RemoveHeaders: []string{remove},
		}
		got, err := c.applyHeaderMutation(orig.clone(), m, mutationOpts{countRejected: func() {}})
		if err != nil {
			return
		}
		for _, p := range []string{":authority", ":path", ":method", ":scheme"} {
			if !got.has(p) {
				t.Fatalf("%s removed: %v", p, got)
			}
		}
		for _, h := range got {
			if !validHeaderValue(h.Value) || h.Key != strings.ToLower(h.Key) {
				t.Fatalf("invalid entry applied: %q", h)
			}
		}
		if bits&8 != 0 && len(got) != len(orig) {
			t.Fatalf("disallow_all changed the map: %v", got)
		}
	})
}

func rules(f func(r *mutationrulesv3.HeaderMutationRules)) *mutationrulesv3.HeaderMutationRules {
	r := &mutationrulesv3.HeaderMutationRules{}
	f(r)
	return r
}

var yes = wrapperspb.Bool(true)

// Design §2 Checker rules, raw_value handling and append semantics (§10.1,
// §10.5, §10.17). Mutations are sent in the request_headers reply.
func TestHeaderMutationRules(t *testing.T) {
	tests := []struct {
		name         string
		rules        *mutationrulesv3.HeaderMutationRules
		status       extprocv3.CommonResponse_ResponseStatus
		mutation     *extprocv3.HeaderMutation
		wantStatus   int
		wantMethod   string
		wantPath     string
		wantHost     string
		wantHeader   map[string][]string // exact values upstream, nil slice = absent
		wantRejected int64
	}{
		{name: "value only gives an empty header",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "authorization", Value: "Bearer x"}}}},
			wantStatus: 200, wantHeader: map[string][]string{"authorization": {""}}},
		{name: "value and raw_value is a 500",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "authorization", Value: "a", RawValue: []byte("a")}}}},
			wantStatus: 500, wantRejected: 1},
		{name: ":method dropped by default",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "DELETE")}},
			wantStatus: 200, wantMethod: "GET", wantRejected: 1},
		{name: ":method applied with allow_all_routing", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "DELETE")}},
			wantStatus: 200, wantMethod: "DELETE"},
		{name: ":method applied with CONTINUE_AND_REPLACE", status: extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "DELETE")}},
			wantStatus: 200, wantMethod: "DELETE"},
		{name: ":path allowed by default",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":path", "/api/v1/users?limit=2")}},
			wantStatus: 200, wantPath: "/api/v1/users?limit=2"},
		{name: ":authority dropped by default",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":authority", "evil.example")}},
			wantStatus: 200, wantRejected: 1},
		{name: ":authority applied with allow_all_routing", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":authority", "example.okta.com")}},
			wantStatus: 200, wantHost: "example.okta.com"},
		{name: "invalid authority dropped even with allow_all_routing", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":authority", "bad host")}},
			wantStatus: 200, wantRejected: 1},
		{name: "x-envoy dropped by default",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-envoy-retry-on", "5xx")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-envoy-retry-on": nil}, wantRejected: 1},
		{name: "x-envoy applied with allow_envoy", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowEnvoy = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-envoy-retry-on", "5xx")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-envoy-retry-on": {"5xx"}}},
		{name: "removing :path is always ignored", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes }),
			mutation:   &extprocv3.HeaderMutation{RemoveHeaders: []string{":path"}},
			wantStatus: 200, wantPath: "/users", wantRejected: 1},
		{name: "removing host is always ignored",
			mutation:   &extprocv3.HeaderMutation{RemoveHeaders: []string{"host"}},
			wantStatus: 200, wantRejected: 1},
		{name: "appending to :path is always ignored",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: ":path", RawValue: []byte("/x")}, Append: yes}}},
			wantStatus: 200, wantPath: "/users", wantRejected: 1},
		{name: "remove then set instead of overwrite", mutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"x-in"}, SetHeaders: []*corev3.HeaderValueOption{set("x-in", "new")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-in": {"new"}}},
		{name: "append unset overwrites",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-in", "new")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-in": {"new"}}},
		{name: "append true adds a value",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-in", RawValue: []byte("new")}, Append: yes}}},
			wantStatus: 200, wantHeader: map[string][]string{"x-in": {"old", "new"}}},
		{name: "upper-case key is lower-cased",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("X-New", "v")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-new": {"v"}}},
		{name: "disallow_all blocks everything", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.DisallowAll = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-new", "v"), set(":path", "/y")}},
			wantStatus: 200, wantPath: "/users", wantHeader: map[string][]string{"x-new": nil}, wantRejected: 2},
		{name: "disallow_system blocks :path", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.DisallowSystem = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":path", "/y"), set("x-new", "v")}},
			wantStatus: 200, wantPath: "/users", wantHeader: map[string][]string{"x-new": {"v"}}, wantRejected: 1},
		{name: "allow_expression overrides disallow_all", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.DisallowAll = yes
			r.AllowExpression = &matcherv3.RegexMatcher{Regex: "x-ok.*"}
		}),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-ok-1", "v"), set("x-no", "v")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-ok-1": {"v"}, "x-no": nil}, wantRejected: 1},
		{name: "disallow_expression beats allow_expression", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) {
			r.AllowExpression = &matcherv3.RegexMatcher{Regex: "x-.*"}
			r.DisallowExpression = &matcherv3.RegexMatcher{Regex: "x-secret"}
		}),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-secret", "v"), set("x-fine", "v")}},
			wantStatus: 200, wantHeader: map[string][]string{"x-secret": nil, "x-fine": {"v"}}, wantRejected: 1},
		{name: "disallow_is_error turns a blocked mutation into 500", rules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.DisallowIsError = yes }),
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "DELETE")}},
			wantStatus: 500, wantRejected: 1},
		{name: "invalid header value is a 500",
			mutation:   &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("x-new", "a\r\nb")}},
			wantStatus: 500, wantRejected: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_headers") {
					return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{Status: tc.status, HeaderMutation: tc.mutation}, req)}, nil
				}
				return continueAll(req)
			}
			s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{MutationRules: tc.rules}}, nil)
			res := s.do(t, "GET", "/users", nil, map[string][]string{"X-In": {"old"}})
			if res.err != nil || res.status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.status, res.err, tc.wantStatus)
			}
			if got := s.e.Stats().RejectedHeaderMutations; got != tc.wantRejected {
				t.Errorf("rejected_header_mutations = %d, want %d", got, tc.wantRejected)
			}
			if tc.wantStatus != 200 {
				if len(s.up.requests()) != 0 {
					t.Errorf("request went upstream after a failed mutation")
				}
				return
			}
			u, _ := s.e.LastUpstreamRequest()
			got := s.up.requests()[0]
			if tc.wantMethod != "" && (u.Method != tc.wantMethod || got.Method != tc.wantMethod) {
				t.Errorf("method = %q / %q, want %q", u.Method, got.Method, tc.wantMethod)
			}
			if tc.wantPath != "" && got.Path != tc.wantPath {
				t.Errorf("path = %q, want %q", got.Path, tc.wantPath)
			}
			wantHost := strings.TrimPrefix(s.e.URL(), "http://")
			if tc.wantHost != "" {
				wantHost = tc.wantHost
			}
			if got.Host != wantHost {
				t.Errorf("host = %q, want %q", got.Host, wantHost)
			}
			for k, want := range tc.wantHeader {
				var have []string
				for _, f := range u.Headers {
					if f.Key == k {
						have = append(have, f.Value)
					}
				}
				if diff := cmp.Diff(want, have); diff != "" {
					t.Errorf("header %s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

// Design §2: :status must be numeric and >= 200; :status is otherwise mutable.
func TestResponseStatusMutation(t *testing.T) {
	for _, tc := range []struct {
		value    string
		want     int
		rejected int64
	}{{"201", 201, 0}, {"99", 200, 1}, {"abc", 200, 1}} {
		t.Run(tc.value, func(t *testing.T) {
			fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "response_headers") {
					return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":status", tc.value)}}}, req)}, nil
				}
				return continueAll(req)
			}
			s := newSetup(t, &processor{fn: fn}, Config{}, nil)
			if res := s.do(t, "GET", "/", nil, nil); res.status != tc.want {
				t.Errorf("status = %d, want %d", res.status, tc.want)
			}
			if got := s.e.Stats().RejectedHeaderMutations; got != tc.rejected {
				t.Errorf("rejected = %d, want %d", got, tc.rejected)
			}
		})
	}
}

func bodyReply(req *extprocv3.ProcessingRequest, hm *extprocv3.HeaderMutation, bm *extprocv3.BodyMutation) *extprocv3.ProcessingResponse {
	return common(&extprocv3.CommonResponse{HeaderMutation: hm, BodyMutation: bm}, req)
}

func newBody(b string) *extprocv3.BodyMutation {
	return &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte(b)}}
}

var clearBody = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}

// Design §3 and §10.6/§10.7/§10.11: content-length validation after the same
// reply's header mutation, stripping in STREAMED/SKIP modes, and
// CONTINUE_AND_REPLACE on headers draining the body.
func TestBodyMutationAndContentLength(t *testing.T) {
	rewrite := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "PUT"), set(":path", "/api/v1/users/1")}}
	tests := []struct {
		name       string
		mode       *extprocfilterv3.ProcessingMode
		fn         script
		wantStatus int
		wantMsgs   []string
		wantMethod string
		wantBody   string
		wantCL     string
	}{
		{name: "stale content-length is a 500", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					return []*extprocv3.ProcessingResponse{bodyReply(req, nil, newBody(`{"a":"longer"}`))}, nil
				}
				return continueAll(req)
			}, wantStatus: 500},
		{name: "content-length fixed in the same reply", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "PUT"), set("content-length", "14")}}
					return []*extprocv3.ProcessingResponse{bodyReply(req, hm, newBody(`{"a":"longer"}`))}, nil
				}
				return continueAll(req)
			}, wantStatus: 200, wantMethod: "PUT", wantBody: `{"a":"longer"}`, wantCL: "14"},
		{name: "clear_body with content-length is a 500", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					return []*extprocv3.ProcessingResponse{bodyReply(req, nil, clearBody)}, nil
				}
				return continueAll(req)
			}, wantStatus: 500},
		{name: "clear_body with content-length 0 rewrites to GET", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set(":method", "GET"), set("content-length", "0")}}
					return []*extprocv3.ProcessingResponse{bodyReply(req, hm, clearBody)}, nil
				}
				return continueAll(req)
			}, wantStatus: 200, wantMethod: "GET", wantBody: "", wantCL: "0"},
		{name: "rewrite in the body reply applies in SEND/BUFFERED", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					return []*extprocv3.ProcessingResponse{bodyReply(req, rewrite, nil)}, nil
				}
				return continueAll(req)
			}, wantStatus: 200, wantMethod: "PUT", wantBody: `{"a":1}`, wantCL: "7"},
		{name: "header mutations in STREAMED body replies are ignored, content-length stripped", mode: pm(send, streamed, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_body") {
					return []*extprocv3.ProcessingResponse{bodyReply(req, rewrite, newBody("XY"))}, nil
				}
				return continueAll(req)
			}, wantStatus: 200, wantMethod: "POST", wantBody: "XY"},
		{name: "SKIP/BUFFERED ignores header mutations", mode: pm(skip, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				return []*extprocv3.ProcessingResponse{bodyReply(req, rewrite, newBody("XY"))}, nil
			}, wantStatus: 200, wantMethod: "POST", wantBody: "XY"},
		{name: "content-length in set_headers skipped in STREAMED", mode: pm(send, streamed, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				if isKind(req, "request_headers") {
					return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("content-length", "7")}}}, req)}, nil
				}
				return continueAll(req)
			}, wantStatus: 200, wantMethod: "POST", wantBody: `{"a":1}`},
		{name: "CONTINUE_AND_REPLACE on headers replaces and drains the body", mode: pm(send, buffered, skip, none),
			fn: func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
				return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE_AND_REPLACE, BodyMutation: newBody("replaced")}, req)}, nil
			}, wantStatus: 200, wantMsgs: []string{"request_headers eos=false"}, wantMethod: "POST", wantBody: "replaced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSetup(t, &processor{fn: tc.fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: tc.mode, MutationRules: rules(func(r *mutationrulesv3.HeaderMutationRules) { r.AllowAllRouting = yes })}}, nil)
			res := s.do(t, "POST", "/rpc", strings.NewReader(`{"a":1}`), map[string][]string{"Content-Type": {"application/json"}})
			if res.err != nil || res.status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", res.status, res.err, tc.wantStatus)
			}
			if tc.wantMsgs != nil {
				if diff := cmp.Diff(tc.wantMsgs, describeAll(s.e.LastExchange())); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
			if tc.wantStatus != 200 {
				if len(s.up.requests()) != 0 {
					t.Error("request went upstream")
				}
				if d := s.e.LastExchange().Details; !strings.Contains(d, "mismatch_between_content_length") {
					t.Errorf("details = %q", d)
				}
				return
			}
			got := s.up.requests()[0]
			u, _ := s.e.LastUpstreamRequest()
			cl, _ := u.Header("content-length")
			if got.Method != tc.wantMethod || got.Body != tc.wantBody || cl != tc.wantCL {
				t.Errorf("upstream %s %q content-length %q, want %s %q %q", got.Method, got.Body, cl, tc.wantMethod, tc.wantBody, tc.wantCL)
			}
			if got.Header.Get("Content-Length") != "" && got.ContentLength != int64(len(got.Body)) {
				t.Errorf("inconsistent upstream content-length %d for %d bytes", got.ContentLength, len(got.Body))
			}
		})
	}
}

// Design §3/§10.11: CONTINUE_AND_REPLACE on response headers drains the
// upstream body (no response_body) and removes content-length; a BUFFERED
// response_body reply can change headers and body together.
func TestResponseBodyMutation(t *testing.T) {
	t.Run("replace at headers", func(t *testing.T) {
		fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "response_headers") {
				return []*extprocv3.ProcessingResponse{common(&extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE_AND_REPLACE, BodyMutation: newBody("envelope")}, req)}, nil
			}
			return continueAll(req)
		}
		s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, buffered)}}, nil)
		res := s.do(t, "GET", "/", nil, nil)
		if res.body != "envelope" {
			t.Errorf("body = %q", res.body)
		}
		if diff := cmp.Diff([]string{"request_headers eos=true", "response_headers eos=false"}, describeAll(s.e.LastExchange())); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
	})
	t.Run("buffered body reply", func(t *testing.T) {
		fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "response_body") {
				hm := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{set("content-type", "application/x-envelope"), set(":status", "202")}, RemoveHeaders: []string{"content-length"}}
				return []*extprocv3.ProcessingResponse{bodyReply(req, hm, newBody("sealed"))}, nil
			}
			return continueAll(req)
		}
		s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, buffered)}}, nil)
		res := s.do(t, "GET", "/", nil, nil)
		if res.status != 202 || res.body != "sealed" || res.header.Get("Content-Type") != "application/x-envelope" {
			t.Errorf("got %d %q %v", res.status, res.body, res.header)
		}
	})
	t.Run("stale response content-length is a 500", func(t *testing.T) {
		fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
			if isKind(req, "response_body") {
				return []*extprocv3.ProcessingResponse{bodyReply(req, nil, newBody("a much longer body"))}, nil
			}
			return continueAll(req)
		}
		s := newSetup(t, &processor{fn: fn}, Config{Filter: &extprocfilterv3.ExternalProcessor{ProcessingMode: pm(send, none, send, buffered)}}, nil)
		if res := s.do(t, "GET", "/", nil, nil); res.status != 500 {
			t.Errorf("status = %d, want 500", res.status)
		}
	})
}
