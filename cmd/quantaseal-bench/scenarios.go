package main

import (
	"encoding/json"
	"fmt"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"github.com/quantaseal/gateway/internal/loadgen"
)

// Scenario names, in run order.
const (
	scNoop                = "noop"
	scTransparent         = "transparent"
	scTransparentEnvelope = "transparent_envelope"
	scOutbound            = "outbound"
	scEnvelopeMemory      = "envelope_memory" // memory.go
)

var allScenarios = []string{scNoop, scTransparent, scTransparentEnvelope, scOutbound, scEnvelopeMemory}

// gatewayScenarios are the scenarios run against the gateway, in run order. The memory
// scenario comes last: it leaves the gateway's RSS high, and every scenario's peak
// RSS is measured from where the previous one left it.
var gatewayScenarios = []string{scTransparent, scTransparentEnvelope, scOutbound, scEnvelopeMemory}

// targets: a scenario's throughput over its baseline (noop for transparent, the crypto
// ceiling of the same body for the envelope scenarios).
var targets = map[string]float64{scTransparent: 0.5, scTransparentEnvelope: 0.8, scOutbound: 0.8}

// listener is the Envoy listener the loadgen pretends the application called.
const listener = "127.0.0.1:10000"

// fixture is what the scenarios need from the seeded gateway.
type fixture struct {
	origin        string // the integration's okta_domain: a loopback origin nobody serves
	apiKey        string
	integrationID string
	usersPage     []byte
}

const usersPath = "/api/v1/users?limit=25"

// sidecarMode is the filter-level processing_mode of envoy/examples: headers only,
// the processor asks for bodies per request with mode_override.
func sidecarMode() *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestHeaderMode: extprocfilterv3.ProcessingMode_SEND, ResponseHeaderMode: extprocfilterv3.ProcessingMode_SEND,
		RequestTrailerMode: extprocfilterv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
}

// outboundMode is the route-level override of envoy/examples for POST
// /api/v2/proxy/outbound: both bodies buffered.
func outboundMode() *extprocfilterv3.ProcessingMode {
	m := sidecarMode()
	m.RequestBodyMode = extprocfilterv3.ProcessingMode_BUFFERED
	m.ResponseBodyMode = extprocfilterv3.ProcessingMode_BUFFERED
	return m
}

// transparentScenario is an Okta SDK's GET /api/v1/users?limit=25 in API-token mode
// through the sidecar; accept selects plain JSON or an envelope.
func transparentScenario(name string, f fixture, accept string) loadgen.Scenario {
	return getScenario(name, f, usersPath, accept, f.usersPage)
}

// getScenario is an Okta SDK's GET of path in API-token mode through the sidecar,
// answered by Okta with body; accept selects plain JSON or an envelope.
func getScenario(name string, f fixture, path, accept string, body []byte) loadgen.Scenario {
	return loadgen.Scenario{
		Name:              name,
		Mode:              sidecarMode(),
		AllowModeOverride: true,
		RequestHeaders: headers(
			":method", "GET", ":path", path, ":authority", listener, ":scheme", "http",
			"user-agent", "okta-sdk-golang/5.0.2 golang/go1.26.0 linux/amd64",
			"accept", accept,
			"authorization", "SSWS "+f.apiKey,
			"x-quantaseal-integration", f.integrationID,
			"x-forwarded-proto", "http",
		),
		ResponseStatus:  200,
		ResponseHeaders: loadgen.OktaResponseHeaders(f.origin, path, len(body)),
		ResponseBody:    body,
	}
}

// outboundScenario is the documented outbound API call for list_users.
func outboundScenario(f fixture) (loadgen.Scenario, error) {
	body, err := json.Marshal(map[string]any{
		"integration_id": f.integrationID,
		"operation":      "list_users",
		"payload":        map[string]any{"limit": 25, "search": `profile.department eq "Engineering"`},
	})
	if err != nil {
		return loadgen.Scenario{}, err
	}
	const upstreamPath = "/api/v1/users?limit=25&search=profile.department%20eq%20%22Engineering%22"
	return loadgen.Scenario{
		Name:              scOutbound,
		Mode:              outboundMode(),
		AllowModeOverride: true,
		RequestHeaders: headers(
			":method", "POST", ":path", "/api/v2/proxy/outbound", ":authority", listener, ":scheme", "http",
			"user-agent", "curl/8.5.0",
			"accept", "application/json",
			"content-type", "application/json",
			"content-length", fmt.Sprint(len(body)),
			"x-api-key", f.apiKey,
			"x-forwarded-proto", "http",
		),
		RequestBody:     body,
		ResponseStatus:  200,
		ResponseHeaders: loadgen.OktaResponseHeaders(f.origin, upstreamPath, len(f.usersPage)),
		ResponseBody:    f.usersPage,
	}, nil
}

// headers pairs up key, value, key, value, ...
func headers(kv ...string) []loadgen.Header {
	hs := make([]loadgen.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, loadgen.Header{Key: kv[i], Value: kv[i+1]})
	}
	return hs
}
