package extproc

import (
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/quantaseal/gateway/okta/oktaheader"
)

// header is one header entry as Envoy sent it: lower-case key, value from raw_value.
type header struct{ key, value string }

// headerList keeps Envoy's order and repeated keys (headersToProto does not merge
// them; envoy-extproc.md §2).
type headerList []header

// fromHeaderMap reads raw_value, falling back to value only for Envoys older than 1.27
// that do not fill raw_value (envoy-extproc.md §2).
func fromHeaderMap(m *corev3.HeaderMap) headerList {
	if m == nil {
		return nil
	}
	out := make(headerList, 0, len(m.GetHeaders()))
	for _, h := range m.GetHeaders() {
		v := string(h.GetRawValue())
		if len(h.GetRawValue()) == 0 {
			v = h.GetValue()
		}
		out = append(out, header{strings.ToLower(h.GetKey()), v})
	}
	return out
}

// get returns the first value of key and how many entries have that key.
func (l headerList) get(key string) (string, int) {
	var first string
	n := 0
	for _, h := range l {
		if h.key == key {
			if n == 0 {
				first = h.value
			}
			n++
		}
	}
	return first, n
}

func (l headerList) value(key string) string {
	v, _ := l.get(key)
	return v
}

func (l headerList) values(key string) []string {
	var out []string
	for _, h := range l {
		if h.key == key {
			out = append(out, h.value)
		}
	}
	return out
}

// validate rejects header maps that could smuggle a second credential or split a
// header: CR, LF or NUL in any value, and repeated credential headers.
func (l headerList) validate() *failure {
	for _, h := range l {
		if strings.ContainsAny(h.value, "\r\n\x00") || strings.ContainsAny(h.key, "\r\n\x00 :") && !strings.HasPrefix(h.key, ":") {
			return &failure{code: CodeInvalidRequest, detail: "A header name or value contains CR, LF or NUL."}
		}
	}
	for _, k := range []string{"authorization", "x-api-key", hdrIntegration, ":path", ":method", ":authority"} {
		if _, n := l.get(k); n > 1 {
			return &failure{code: CodeInvalidRequest, detail: "The request carries more than one " + k + " header."}
		}
	}
	return nil
}

// Header names the processor reads or writes.
const (
	hdrIntegration = "x-quantaseal-integration"
	hdrAuditEvent  = "x-quantaseal-audit-event"
	quantasealPfx  = "x-quantaseal-"
)

// EnvelopeMediaType is the media type of a HybridCryptoEnvelope (envelope-v1.md); a
// client asks for one with Accept.
const EnvelopeMediaType = "application/vnd.quantaseal.envelope+json"

// hopByHop are the RFC 9110 §7.6.1 connection-specific headers that must not be
// forwarded; te and transfer-encoding are left to Envoy's codec, which owns framing.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "upgrade"}

// requestRemovals lists the request headers to strip before forwarding: the caller's
// credential headers, all x-quantaseal-* headers, hop-by-hop headers and any header
// the Connection header names. Only headers present are listed.
func requestRemovals(l headerList) []string {
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if k != "" && !strings.HasPrefix(k, ":") && k != "host" && !seen[k] {
			if _, n := l.get(k); n > 0 {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	add("x-api-key")
	for _, h := range l {
		if strings.HasPrefix(h.key, quantasealPfx) {
			add(h.key)
		}
	}
	for _, k := range hopByHop {
		add(k)
	}
	for _, v := range l.values("connection") {
		for _, k := range strings.Split(v, ",") {
			k = strings.ToLower(strings.TrimSpace(k))
			if k != "authorization" && k != "accept-encoding" {
				add(k)
			}
		}
	}
	return out
}

// set is a single overwrite (append unset, so false): the only way to change a
// pseudo-header (envoy-extproc.md §10 item 17). Values go in raw_value only (item 1).
func set(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)}}
}

// add appends another entry of key.
func add(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
		//lint:ignore SA1019 ext_proc reads only the deprecated append field, not append_action (envoy-extproc.md §2).
		Append: wrapperspb.Bool(true),
	}
}

// authzHeader is the ext_authz form: the ext_authz gRPC client reads value, not
// raw_value (envoy-extproc.md §2, ext_authz_grpc_impl.cc).
func authzHeader(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// wantsEnvelope reports whether an Accept header value lists the envelope media type.
func wantsEnvelope(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), EnvelopeMediaType) {
			return true
		}
	}
	return false
}

// originHost returns the host[:port] of an origin such as "https://acme.okta.com".
func originHost(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		return ""
	}
	return u.Host
}

// callerOrigin is the origin the client used to reach the gateway, for rewriting
// Link headers so pagination keeps going through the gateway.
func callerOrigin(l headerList) string {
	scheme := l.value(":scheme")
	if scheme != "http" && scheme != "https" {
		scheme = "http"
	}
	return scheme + "://" + l.value(":authority")
}

// nextCursor returns the after parameter of the first rel="next" link that parses, or "".
func nextCursor(values []string) string {
	for _, l := range oktaheader.ParseLinks(values) {
		if !l.HasRel("next") {
			continue
		}
		u, err := url.Parse(l.URL)
		if err != nil {
			continue
		}
		return u.Query().Get("after")
	}
	return ""
}

// insufficientScope parses a 403's WWW-Authenticate challenges (okta-api.md §2) and
// reports whether one says error="insufficient_scope", with its scope parameter.
func insufficientScope(values []string) (scope string, ok bool) {
	for _, v := range values {
		params := oktaheader.AuthParams(v)
		if params["error"] == "insufficient_scope" {
			return params["scope"], true
		}
	}
	return "", false
}

// headerMutation builds a HeaderMutation, or nil when empty.
func headerMutation(sets []*corev3.HeaderValueOption, removes []string) *extprocv3.HeaderMutation {
	if len(sets) == 0 && len(removes) == 0 {
		return nil
	}
	return &extprocv3.HeaderMutation{SetHeaders: sets, RemoveHeaders: removes}
}
