package envoytest

import (
	"errors"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Names of the filters FromBootstrap looks for.
const (
	hcmFilterName     = "envoy.filters.network.http_connection_manager"
	extprocFilterName = "envoy.filters.http.ext_proc"
)

// ErrNoExtProc is returned by FromBootstrap when no static listener has an
// HTTP connection manager with an ext_proc filter.
var ErrNoExtProc = errors.New("no static listener with an ext_proc http filter")

// FromBootstrap derives the filter and route settings of a Config from a
// bootstrap: the first static listener whose HCM has an ext_proc filter gives
// Filter, BufferLimit (per_connection_buffer_limit_bytes, overridden by the
// first route's request_body_buffer_limit / per_request_buffer_limit_bytes),
// HostRewrite (host_rewrite_literal), RouteName and ClusterName. Processor and
// Upstream are left for the caller to fill in.
func FromBootstrap(b *bootstrapv3.Bootstrap) (Config, error) {
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != hcmFilterName || f.GetTypedConfig() == nil {
					continue
				}
				hcm := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					return Config{}, fmt.Errorf("listener %q: http_connection_manager: %w", l.GetName(), err)
				}
				ep, err := extProcFilter(hcm)
				if err != nil {
					return Config{}, fmt.Errorf("listener %q: %w", l.GetName(), err)
				}
				if ep == nil {
					continue
				}
				cfg := Config{Filter: ep}
				if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
					cfg.BufferLimit = int(v.GetValue())
				}
				if r := firstRoute(hcm.GetRouteConfig()); r != nil {
					cfg.RouteName = r.GetName()
					cfg.HostRewrite = r.GetRoute().GetHostRewriteLiteral()
					cfg.ClusterName = r.GetRoute().GetCluster()
					if v := r.GetRequestBodyBufferLimit(); v != nil {
						cfg.BufferLimit = int(v.GetValue())
					} else if v := legacyRouteLimit(r); v > 0 {
						cfg.BufferLimit = v
					}
				}
				return cfg, nil
			}
		}
	}
	return Config{}, ErrNoExtProc
}

func extProcFilter(hcm *hcmv3.HttpConnectionManager) (*extprocfilterv3.ExternalProcessor, error) {
	for _, hf := range hcm.GetHttpFilters() {
		if hf.GetName() != extprocFilterName || hf.GetTypedConfig() == nil {
			continue
		}
		ep := &extprocfilterv3.ExternalProcessor{}
		if err := hf.GetTypedConfig().UnmarshalTo(ep); err != nil {
			return nil, fmt.Errorf("ext_proc filter: %w", err)
		}
		return ep, nil
	}
	return nil, nil
}

func firstRoute(rc *routev3.RouteConfiguration) *routev3.Route {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute() != nil {
				return r
			}
		}
	}
	return nil
}

// legacyRouteLimit reads the deprecated per_request_buffer_limit_bytes, which
// older bootstraps still use (design §3 "Buffer limit").
func legacyRouteLimit(r *routev3.Route) int {
	//lint:ignore SA1019 still honoured by Envoy when request_body_buffer_limit is unset.
	return int(r.GetPerRequestBufferLimitBytes().GetValue())
}
