package envoytest

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	// Types referenced by typed_config Anys in testdata/bootstrap.yaml.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

func loadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFromBootstrap(t *testing.T) {
	cfg, err := FromBootstrap(loadBootstrap(t, "testdata/bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HostRewrite != "example.okta.com" || cfg.BufferLimit != 1<<20 || cfg.RouteName != "okta_all" || cfg.ClusterName != "okta_upstream" {
		t.Errorf("route settings = %+v", cfg)
	}
	if cfg.Filter.GetMessageTimeout().AsDuration() != 2*time.Second || !cfg.Filter.GetMutationRules().GetAllowAllRouting().GetValue() ||
		cfg.Filter.GetProcessingMode().GetRequestBodyMode() != buffered {
		t.Errorf("filter = %v", cfg.Filter)
	}

	// The shipped settings end to end: the JSON-POST → REST rewrite in the
	// request_body reply, host_rewrite_literal upstream.
	fn := func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
		if isKind(req, "request_body") {
			hm := &extprocv3.HeaderMutation{
				SetHeaders:    []*corev3.HeaderValueOption{set(":method", "GET"), set(":path", "/api/v1/users?limit=1"), set("authorization", "SSWS t")},
				RemoveHeaders: []string{"content-length", "content-type"},
			}
			return []*extprocv3.ProcessingResponse{bodyReply(req, hm, clearBody)}, nil
		}
		return continueAll(req)
	}
	s := newSetup(t, &processor{fn: fn}, cfg, nil)
	res := s.do(t, "POST", "/v1/okta/listUsers", strings.NewReader(`{"limit":1}`), map[string][]string{"Content-Type": {"application/json"}})
	if res.err != nil || res.status != 200 {
		t.Fatalf("status %d (%v)", res.status, res.err)
	}
	got := s.up.requests()[0]
	if got.Method != "GET" || got.Path != "/api/v1/users?limit=1" || got.Host != "example.okta.com" || got.Body != "" || got.Header.Get("Authorization") != "SSWS t" {
		t.Errorf("upstream = %+v", got)
	}
	if diff := describeAll(s.e.LastExchange()); len(diff) != 4 {
		t.Errorf("messages = %v", diff)
	}
}

func TestFromBootstrapNoExtProc(t *testing.T) {
	if _, err := FromBootstrap(&bootstrapv3.Bootstrap{}); !errors.Is(err, ErrNoExtProc) {
		t.Errorf("err = %v, want ErrNoExtProc", err)
	}
}
