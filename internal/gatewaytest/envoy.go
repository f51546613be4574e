package gatewaytest

import (
	"net/url"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/envoy"
	"github.com/quantaseal/gateway/internal/envoytest"
)

// NewEnvoy runs a fake Envoy (internal/envoytest) configured from the shipped sidecar
// bootstrap (envoy.Generate), with the processor at grpcAddr and every request routed to
// upstream (the Okta double or a [Front]) with its host as the rewritten :authority.
// envoy.Generate accepts only https Okta hosts, so the bootstrap names a placeholder
// host; the fake's upstream and host rewrite are the plain-HTTP double's.
func NewEnvoy(t testing.TB, grpcAddr, upstream string) *envoytest.Envoy {
	t.Helper()
	b, err := envoy.Generate(envoy.Config{
		Mode:          envoy.ModeSidecar,
		OktaDomains:   []string{"gatewaytest.okta.com"},
		ProcessorAddr: grpcAddr,
	})
	if err != nil {
		t.Fatalf("envoy.Generate: %v", err)
	}
	return NewEnvoyFrom(t, b, grpcAddr, upstream)
}

// NewEnvoyFrom runs a fake Envoy configured from bootstrap b (for example a shipped
// example file parsed with envoy.Validate), with the processor at grpcAddr and every
// request routed to upstream with its host as the rewritten :authority: the bootstrap's
// filter settings (processing mode, mutation rules, timeouts, buffer limit) apply as
// written, only the addresses are the test's.
func NewEnvoyFrom(t testing.TB, b *bootstrapv3.Bootstrap, grpcAddr, upstream string) *envoytest.Envoy {
	t.Helper()
	cfg, err := envoytest.FromBootstrap(b)
	if err != nil {
		t.Fatalf("envoytest.FromBootstrap: %v", err)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Processor = conn
	cfg.Upstream = upstream
	cfg.HostRewrite = u.Host
	return envoytest.New(t, cfg)
}
