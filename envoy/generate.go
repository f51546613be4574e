package envoy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	reqwithoutqueryv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Well-known extension names used as "name:" of the typed configs below.
const (
	hcmName            = "envoy.filters.network.http_connection_manager"
	routerName         = "envoy.filters.http.router"
	tlsSocketName      = "envoy.transport_sockets.tls"
	stdoutLogName      = "envoy.access_loggers.stdout"
	reqNoQueryName     = "envoy.formatter.req_without_query"
	httpOptionsKey     = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	listenerName       = "quantaseal_okta"
	statPrefix         = "quantaseal"
	extAuthzMetadataNS = "envoy.filters.http.ext_authz" // where CheckResponse.dynamic_metadata lands (envoy-extproc.md §6)
)

// Generate builds the bootstrap for cfg. Errors for a bad cfg wrap [ErrInvalidConfig]. The
// result passes [Validate] (a test checks every mode).
func Generate(cfg Config) (*bootstrapv3.Bootstrap, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &generator{c: c}
	b := g.bootstrap()
	if g.err != nil {
		return nil, fmt.Errorf("build bootstrap: %w", g.err)
	}
	return b, nil
}

// ProcessorFilter returns the ext_proc (or, with AuthzOnly, ext_authz) HTTP filter that
// [Generate] puts in front of the router, pointed at cluster instead of
// [ProcessorCluster]: an Istio EnvoyFilter inserts it into a gateway whose clusters Istio
// owns ("outbound|9002||quantaseal.quantaseal.svc.cluster.local"). Errors for a bad cfg
// wrap [ErrInvalidConfig].
func ProcessorFilter(cfg Config, cluster string) (*hcmv3.HttpFilter, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cluster == "" {
		return nil, fmt.Errorf("%w: empty processor cluster name", ErrInvalidConfig)
	}
	g := &generator{c: c, extProcCluster: cluster}
	f := g.processorFilter()
	if g.err != nil {
		return nil, fmt.Errorf("build filter: %w", g.err)
	}
	return f, nil
}

// generator accumulates the first Any-packing error so the builders stay linear.
type generator struct {
	c              Config
	extProcCluster string // "" means ProcessorCluster
	err            error
}

func (g *generator) pack(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil && g.err == nil {
		g.err = fmt.Errorf("pack %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return a
}

func (g *generator) bootstrap() *bootstrapv3.Bootstrap {
	c := g.c
	adminHost, adminPort, _ := splitHostPort(c.AdminAddr) // checked by withDefaults
	clusters := []*clusterv3.Cluster{g.processorCluster()}
	for _, h := range c.OktaDomains {
		clusters = append(clusters, g.oktaCluster(h))
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: "quantaseal-" + string(c.Mode), Cluster: "quantaseal"},
		Admin: &bootstrapv3.Admin{
			// The admin interface can quit Envoy and dump config: loopback only.
			Address: socketAddress(adminHost, adminPort),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{g.listener()},
			Clusters:  clusters,
		},
	}
}

func (g *generator) listener() *listenerv3.Listener {
	c := g.c
	chain := &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{{
			Name:       hcmName,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: g.pack(g.hcm())},
		}},
	}
	if c.WorkloadMTLS {
		chain.TransportSocket = &corev3.TransportSocket{
			Name: tlsSocketName,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: g.pack(&tlsv3.DownstreamTlsContext{
				RequireClientCertificate: wrapperspb.Bool(true),
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsParams: tls12Minimum(),
					TlsCertificates: []*tlsv3.TlsCertificate{{
						CertificateChain: fileSource(c.TLSCertFile),
						PrivateKey:       fileSource(c.TLSKeyFile),
					}},
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
						ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: fileSource(c.ClientCAFile)},
					},
				},
			})},
		}
	}
	return &listenerv3.Listener{
		Name:    listenerName,
		Address: socketAddress(c.ListenAddr, c.ListenPort),
		// Bounds every BUFFERED body (envoy-extproc.md §3): past it a request gets 413 and
		// a response 500. The processor's gRPC receive limit must be at least this.
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(c.BufferLimit),
		FilterChains:                  []*listenerv3.FilterChain{chain},
	}
}

func (g *generator) hcm() *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		// Envoy is the first hop that sees the client: trust the peer address, not a
		// client-supplied X-Forwarded-For.
		UseRemoteAddress: wrapperspb.Bool(true),
		// RFC 3986 normalisation and slash merging before the processor's allow-list
		// sees :path; escaped slashes are kept as sent (okta-api.md §1.2: %2F must reach
		// the processor untouched, which rejects or routes it itself).
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED,
		// "example.okta.com:443" must match the virtual host "example.okta.com".
		StripPortMode:  &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: g.routes()},
		HttpFilters: []*hcmv3.HttpFilter{
			g.processorFilter(),
			{Name: routerName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: g.pack(&routerv3.Router{})}},
		},
		AccessLog: []*accesslogv3.AccessLog{g.accessLog()},
	}
}

func (g *generator) processorFilter() *hcmv3.HttpFilter {
	if g.c.AuthzOnly {
		return &hcmv3.HttpFilter{Name: ExtAuthzFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: g.pack(g.extAuthz())}}
	}
	return &hcmv3.HttpFilter{Name: ExtProcFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: g.pack(g.extProc())}}
}

// grpcService points at the quantaseal gRPC server through Envoy's own gRPC client.
func (g *generator) grpcService(timeout time.Duration) *corev3.GrpcService {
	cluster := g.extProcCluster
	if cluster == "" {
		cluster = ProcessorCluster
	}
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}},
		Timeout:         durationpb.New(timeout),
	}
}

func (g *generator) extProc() *extprocfilterv3.ExternalProcessor {
	c := g.c
	attrs := []string{"request.id", "source.address", "xds.route_name"}
	if c.WorkloadMTLS {
		attrs = append(attrs, "connection.uri_san_peer_certificate") // the workload's mesh identity
	}
	return &extprocfilterv3.ExternalProcessor{
		// One stream lives as long as its HTTP request: upstream time plus one
		// (possibly overridden) message budget per direction.
		GrpcService:      g.grpcService(c.UpstreamTimeout + 2*c.MaxMessageTimeout),
		FailureModeAllow: false, // fail closed: no processor, no Okta call
		ProcessingMode:   processingMode(extprocfilterv3.ProcessingMode_NONE),
		// Per message; Envoy's 200ms default is too short for an audit commit. A cold
		// token fetch asks for more with override_message_timeout, up to the maximum.
		MessageTimeout:    durationpb.New(c.MessageTimeout),
		MaxMessageTimeout: durationpb.New(c.MaxMessageTimeout),
		// The processor rewrites :method and :authority on the outbound API and sets
		// :authority on transparent calls; nothing else needs lifting. A blocked
		// mutation is an error (500), never silently dropped (envoy-extproc.md §2).
		MutationRules: &mutationrulesv3.HeaderMutationRules{
			AllowAllRouting: wrapperspb.Bool(true),
			DisallowIsError: wrapperspb.Bool(true),
		},
		// The processor switches bodies to BUFFERED for responses it must envelope; see
		// the package doc for why allowed_override_modes stays empty.
		AllowModeOverride: true,
		// Re-resolve the route after every request-side reply that mutates headers, so
		// the route follows the :authority the processor set (see routes). No
		// route-dependent filter (RBAC) runs before ext_proc, so recomputing is safe.
		RouteCacheAction:  extprocfilterv3.ExternalProcessor_CLEAR,
		RequestAttributes: attrs,
		MetadataOptions: &extprocfilterv3.MetadataOptions{
			ReceivingNamespaces: &extprocfilterv3.MetadataOptions_MetadataNamespaces{Untyped: []string{MetadataNamespace}},
		},
		// A processor that cannot be reached is an outage, not a server bug: 503.
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	}
}

// processingMode sends both header phases and uses body for both body phases; trailers
// are never needed.
func processingMode(body extprocfilterv3.ProcessingMode_BodySendMode) *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
		RequestBodyMode:     body,
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
		ResponseBodyMode:    body,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
}

func (g *generator) extAuthz() *extauthzv3.ExtAuthz {
	c := g.c
	return &extauthzv3.ExtAuthz{
		// One unary Check per request; it may include a cold token fetch and cannot ask
		// for more time, so it gets the full override ceiling.
		Services:            &extauthzv3.ExtAuthz_GrpcService{GrpcService: g.grpcService(c.MaxMessageTimeout)},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    false,
		StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		// Reject malformed header names/values from the server, and refuse (rather than
		// drop) mutations outside the rules; :authority may change so that a gateway
		// can be steered to the integration's host.
		ValidateMutations: true,
		DecoderHeaderMutationRules: &mutationrulesv3.HeaderMutationRules{
			AllowAllRouting: wrapperspb.Bool(true),
			DisallowIsError: wrapperspb.Bool(true),
		},
		// The authorization server steers the request by setting :authority; that takes
		// effect only if the route is recomputed (see routes).
		ClearRouteCache: true,
		// Unmerged headers with raw values (header_map) instead of the merged, UTF-8
		// sanitised map: the server sees exactly what Envoy will forward.
		EncodeRawHeaders:       true,
		IncludePeerCertificate: c.WorkloadMTLS,
	}
}

// routes builds one virtual host per Okta host (domains: that host) and a catch-all for
// requests addressed to Envoy itself (the sidecar's 127.0.0.1:10000, the gateway's
// service name), whose routes never reach an upstream. The processor sets :authority to
// the integration's Okta host (extproc's injectHeaders, for ext_proc and ext_authz alike)
// and Envoy then re-resolves the route (route_cache_action CLEAR / clear_route_cache):
// the request goes to that host's cluster if it is configured, and ends in a 404
// otherwise. So Envoy, not only the processor, guarantees that a credential reaches no
// host but the one the processor named, and only a configured one.
func (g *generator) routes() *routev3.RouteConfiguration {
	var vhosts []*routev3.VirtualHost
	for _, h := range g.c.OktaDomains {
		vhosts = append(vhosts, &routev3.VirtualHost{
			Name: "okta:" + h,
			// strip_any_host_port only applies to the client's :authority, not to the
			// processor's later mutation, so the explicit-port form is listed too.
			Domains: []string{h, h + ":443"},
			Routes:  []*routev3.Route{g.outboundRoute(h), g.oktaRoute(h)},
		})
	}
	vhosts = append(vhosts, &routev3.VirtualHost{
		Name:    "default",
		Domains: []string{"*"},
		Routes:  []*routev3.Route{g.outboundRoute(""), unroutedRoute()},
	})
	return &routev3.RouteConfiguration{Name: "quantaseal_okta", VirtualHosts: vhosts}
}

func (g *generator) oktaRoute(host string) *routev3.Route {
	return &routev3.Route{
		Name:   "okta:" + host,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: g.toOkta(host),
	}
}

// toOkta forwards to host's cluster; host_rewrite_literal is applied by the router after
// the processor ran, so the upstream :authority, SNI and SAN are always that host.
func (g *generator) toOkta(host string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: g.clusterName(host)},
		HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: host},
		Timeout:              durationpb.New(g.c.UpstreamTimeout),
	}}
}

// outboundRoute matches the outbound API. With ext_proc it buffers both bodies on this
// route only; host "" (the catch-all) forwards nowhere: the :authority the processor sets
// in its request_body reply re-resolves the route (otherwise the request ends in a 404).
// With ext_authz the outbound API cannot work (no body rewrite), so Envoy answers 501.
func (g *generator) outboundRoute(host string) *routev3.Route {
	name := "outbound:" + host
	if host == "" {
		name = "outbound:unpinned"
	}
	r := &routev3.Route{
		Name:  name,
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: OutboundPath}},
	}
	if g.c.AuthzOnly {
		r.Action = directResponse(501, `{"error":"unsupported","message":"the outbound API needs the ext_proc deployment; this Envoy runs ext_authz only"}`)
		r.ResponseHeadersToAdd = jsonContentType()
		return r
	}
	if host == "" {
		r.Action = directResponse(404, `{"error":"no_okta_route","message":"the processor did not select a configured Okta host"}`)
		r.ResponseHeadersToAdd = jsonContentType()
	} else {
		r.Action = g.toOkta(host)
	}
	r.TypedPerFilterConfig = map[string]*anypb.Any{
		ExtProcFilterName: g.pack(&extprocfilterv3.ExtProcPerRoute{
			Override: &extprocfilterv3.ExtProcPerRoute_Overrides{Overrides: &extprocfilterv3.ExtProcOverrides{
				ProcessingMode: processingMode(extprocfilterv3.ProcessingMode_BUFFERED),
			}},
		}),
	}
	return r
}

// unroutedRoute answers requests whose :authority is no configured Okta host.
func unroutedRoute() *routev3.Route {
	return &routev3.Route{
		Name:                 "unrouted",
		Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action:               directResponse(404, `{"error":"no_okta_route","message":"the request's host is not a configured Okta host"}`),
		ResponseHeadersToAdd: jsonContentType(),
	}
}

// jsonContentType labels a direct response's JSON body (Envoy would send text/plain).
func jsonContentType() []*corev3.HeaderValueOption {
	return []*corev3.HeaderValueOption{{
		Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}
}

func directResponse(status uint32, body string) *routev3.Route_DirectResponse {
	return &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
		Status: status,
		Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}},
	}}
}

// accessLog writes one JSON line per request to stdout. It never records a header that
// can carry a credential (Authorization, X-API-Key, DPoP) nor the query string, which
// holds Okta search expressions: the path is logged through the req_without_query
// formatter. Operation and decision come from the processor's dynamic metadata.
func (g *generator) accessLog() *accesslogv3.AccessLog {
	ns := MetadataNamespace
	if g.c.AuthzOnly {
		ns = extAuthzMetadataNS
	}
	fields := map[string]any{
		"time":           "%START_TIME%",
		"request_id":     "%REQ(X-REQUEST-ID)%",
		"method":         "%REQ(:METHOD)%",
		"path":           "%REQ_WITHOUT_QUERY(:PATH)%",
		"authority":      "%REQ(:AUTHORITY)%",
		"route":          "%ROUTE_NAME%",
		"status":         "%RESPONSE_CODE%",
		"details":        "%RESPONSE_CODE_DETAILS%",
		"flags":          "%RESPONSE_FLAGS%",
		"duration_ms":    "%DURATION%",
		"upstream_host":  "%UPSTREAM_HOST%",
		"bytes_received": "%BYTES_RECEIVED%",
		"bytes_sent":     "%BYTES_SENT%",
	}
	for _, k := range []string{"operation", "decision", "code", "integration_id", "audit_event_id"} {
		fields[k] = "%DYNAMIC_METADATA(" + ns + ":" + k + ")%"
	}
	js, err := structpb.NewStruct(fields)
	if err != nil && g.err == nil {
		g.err = fmt.Errorf("access log format: %w", err)
	}
	return &accesslogv3.AccessLog{
		Name: stdoutLogName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: g.pack(&streamv3.StdoutAccessLog{
			AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js},
				Formatters: []*corev3.TypedExtensionConfig{{
					Name:        reqNoQueryName,
					TypedConfig: g.pack(&reqwithoutqueryv3.ReqWithoutQuery{}),
				}},
			}},
		})},
	}
}

// processorCluster reaches quantaseal's gRPC port over h2c. gRPC health checks take a
// draining replica (NOT_SERVING) out of rotation before it stops.
func (g *generator) processorCluster() *clusterv3.Cluster {
	host, port, _ := splitHostPort(g.c.ProcessorAddr) // checked by withDefaults
	typ, family := clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_V4_PREFERRED
	if _, err := netip.ParseAddr(host); err == nil {
		typ, family = clusterv3.Cluster_STATIC, clusterv3.Cluster_AUTO // no DNS involved
	}
	return &clusterv3.Cluster{
		Name:                 ProcessorCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		DnsLookupFamily:      family,
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment:       loadAssignment(ProcessorCluster, host, port),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpOptionsKey: g.pack(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}, // gRPC needs HTTP/2 (h2c)
						},
					},
				},
			}),
		},
		HealthChecks: []*corev3.HealthCheck{{
			Timeout:            durationpb.New(time.Second),
			Interval:           durationpb.New(5 * time.Second),
			UnhealthyThreshold: wrapperspb.UInt32(2),
			HealthyThreshold:   wrapperspb.UInt32(1),
			HealthChecker:      &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{}},
		}},
	}
}

func (g *generator) clusterName(host string) string {
	if len(g.c.OktaDomains) == 1 {
		return "okta_upstream"
	}
	return "okta_upstream_" + strings.NewReplacer(".", "_", "-", "_").Replace(host)
}

// oktaCluster originates TLS to one Okta host: SNI and the certificate SAN are pinned to
// host, the chain is checked against the system CA bundle, TLS 1.2 at least.
func (g *generator) oktaCluster(host string) *clusterv3.Cluster {
	name := g.clusterName(host)
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}, // one name, re-resolved
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment:       loadAssignment(name, host, 443),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpOptionsKey: g.pack(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamHttpProtocolOptions: &corev3.UpstreamHttpProtocolOptions{
					AutoSni:           true, // SNI from the (rewritten) :authority
					AutoSanValidation: true, // and the certificate must match it
				},
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
							HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
						},
					},
				},
			}),
		},
		TransportSocket: &corev3.TransportSocket{
			Name: tlsSocketName,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: g.pack(&tlsv3.UpstreamTlsContext{
				Sni: host,
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsParams: tls12Minimum(),
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
						ValidationContext: &tlsv3.CertificateValidationContext{
							TrustedCa: fileSource(g.c.CABundle),
							MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
								SanType: tlsv3.SubjectAltNameMatcher_DNS,
								Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: host}},
							}},
						},
					},
				},
			})},
		},
	}
}

func tls12Minimum() *tlsv3.TlsParameters {
	return &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2}
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func loadAssignment(cluster, host string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}},
		}},
	}
}
