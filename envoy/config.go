package envoy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Mode is the deployment pattern a bootstrap is generated for.
type Mode string

const (
	// ModeSidecar is one Envoy next to one application: the listener is on loopback and the
	// application's Okta org URL becomes http://127.0.0.1:10000.
	ModeSidecar Mode = "sidecar"
	// ModeGateway is a shared egress gateway for many workloads, optionally with
	// downstream mTLS.
	ModeGateway Mode = "gateway"
)

// Names shared with the processor and the deployment manifests.
const (
	// ProcessorCluster is the cluster of the quantaseal gRPC server (ext_proc / ext_authz).
	ProcessorCluster = "quantaseal_extproc"
	// MetadataNamespace is the only dynamic-metadata namespace the processor may write
	// (metadata_options.receiving_namespaces); the access log reads operation, decision and
	// audit_event_id from it.
	MetadataNamespace = "quantaseal"
	// OutboundPath is the outbound API, buffered in both directions by a per-route override.
	OutboundPath = "/api/v2/proxy/outbound"
	// ExtProcFilterName and ExtAuthzFilterName are the HTTP filter names, also the keys of
	// typed_per_filter_config.
	ExtProcFilterName  = "envoy.filters.http.ext_proc"
	ExtAuthzFilterName = "envoy.filters.http.ext_authz"
)

// Defaults applied by [Generate] to zero fields of [Config].
const (
	DefaultListenPort        = 10000
	DefaultProcessorAddr     = "127.0.0.1:9002"
	DefaultAdminAddr         = "127.0.0.1:9901"
	DefaultMessageTimeout    = 2 * time.Second
	DefaultMaxMessageTimeout = 10 * time.Second
	DefaultUpstreamTimeout   = 30 * time.Second
	DefaultBufferLimit       = 1 << 20 // Envoy's own default per_connection_buffer_limit_bytes
	DefaultCABundle          = "/etc/ssl/certs/ca-certificates.crt"
	DefaultTLSCertFile       = "/etc/quantaseal/tls/tls.crt"
	DefaultTLSKeyFile        = "/etc/quantaseal/tls/tls.key"
	DefaultClientCAFile      = "/etc/quantaseal/tls/ca.crt"
)

// ErrInvalidConfig is wrapped by every error [Generate] returns for a bad [Config]; callers
// map it to a usage error.
var ErrInvalidConfig = errors.New("invalid envoy config")

// Config describes one deployment. Zero fields take the Default* values; ListenAddr
// defaults to 127.0.0.1 for a sidecar and 0.0.0.0 for a gateway.
type Config struct {
	Mode Mode
	// OktaDomains are the Okta hosts this Envoy may reach, e.g. "example.okta.com". An
	// https:// origin is accepted and reduced to its host. A sidecar takes exactly one.
	OktaDomains []string
	// AuthzOnly selects the ext_authz filter instead of ext_proc: token injection and the
	// allow-list only, no outbound API rewrite, no envelopes (envoy-extproc.md §6).
	AuthzOnly bool

	ListenAddr string // IP address of the application-facing listener
	ListenPort uint32
	// ProcessorAddr is the quantaseal gRPC server as host:port; an IP gives a STATIC
	// cluster, a name a STRICT_DNS one (a headless Service resolves to every replica).
	ProcessorAddr string
	AdminAddr     string // host:port of the Envoy admin interface; keep it on loopback

	MessageTimeout    time.Duration // ext_proc per-message budget (default 200ms in Envoy is too short)
	MaxMessageTimeout time.Duration // ceiling for override_message_timeout (cold token fetch); also the ext_authz Check timeout
	UpstreamTimeout   time.Duration // route timeout for the Okta call
	// BufferLimit is per_connection_buffer_limit_bytes: BUFFERED bodies past it get 413
	// (request) or 500 (response). Envoy sends a buffered body in one gRPC message, so
	// quantaseal's server.max_message_bytes (16 MiB by default) must stay above it.
	BufferLimit uint32

	CABundle string // CA bundle for the Okta upstream certificate

	// WorkloadMTLS (gateway only) requires a client certificate from every workload; the
	// processor receives the peer URI SAN (mesh identity) as an attribute.
	WorkloadMTLS bool
	TLSCertFile  string
	TLSKeyFile   string
	ClientCAFile string
}

// withDefaults returns c with zero fields filled and the Okta domains normalised to hosts.
// It returns every problem at once, each wrapping ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}
	switch c.Mode {
	case ModeSidecar:
		if c.ListenAddr == "" {
			c.ListenAddr = "127.0.0.1"
		}
		if c.WorkloadMTLS {
			bad("workload mTLS is a gateway option: a sidecar listens on loopback")
		}
	case ModeGateway:
		if c.ListenAddr == "" {
			c.ListenAddr = "0.0.0.0"
		}
	default:
		bad("mode %q: must be %q or %q", c.Mode, ModeSidecar, ModeGateway)
	}
	if c.ListenPort == 0 {
		c.ListenPort = DefaultListenPort
	}
	if c.ProcessorAddr == "" {
		c.ProcessorAddr = DefaultProcessorAddr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.MaxMessageTimeout == 0 {
		c.MaxMessageTimeout = DefaultMaxMessageTimeout
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.BufferLimit == 0 {
		c.BufferLimit = DefaultBufferLimit
	}
	if c.CABundle == "" {
		c.CABundle = DefaultCABundle
	}
	if c.WorkloadMTLS {
		if c.TLSCertFile == "" {
			c.TLSCertFile = DefaultTLSCertFile
		}
		if c.TLSKeyFile == "" {
			c.TLSKeyFile = DefaultTLSKeyFile
		}
		if c.ClientCAFile == "" {
			c.ClientCAFile = DefaultClientCAFile
		}
	}

	if _, err := netip.ParseAddr(c.ListenAddr); err != nil {
		bad("listen address %q: must be an IP address", c.ListenAddr)
	}
	if c.ListenPort > 65535 {
		bad("listen port %d out of range", c.ListenPort)
	}
	if _, _, err := splitHostPort(c.ProcessorAddr); err != nil {
		bad("processor address: %v", err)
	}
	if host, _, err := splitHostPort(c.AdminAddr); err != nil {
		bad("admin address: %v", err)
	} else if _, err := netip.ParseAddr(host); err != nil {
		bad("admin address %q: host must be an IP address", c.AdminAddr)
	}
	if c.MessageTimeout < time.Millisecond {
		bad("message timeout %v: must be at least 1ms", c.MessageTimeout)
	}
	if c.MaxMessageTimeout < c.MessageTimeout {
		bad("max message timeout %v is below the message timeout %v", c.MaxMessageTimeout, c.MessageTimeout)
	}
	if c.UpstreamTimeout < time.Millisecond {
		bad("upstream timeout %v: must be at least 1ms", c.UpstreamTimeout)
	}

	given := len(c.OktaDomains)
	seen := map[string]bool{}
	hosts := make([]string, 0, len(c.OktaDomains))
	for _, d := range c.OktaDomains {
		h, err := oktaHost(d)
		if err != nil {
			bad("okta domain %q: %v", d, err)
			continue
		}
		if seen[h] {
			continue
		}
		seen[h] = true
		hosts = append(hosts, h)
	}
	c.OktaDomains = hosts
	switch {
	case given == 0:
		bad("at least one Okta domain is required")
	case c.Mode == ModeSidecar && len(hosts) > 1:
		bad("a sidecar serves exactly one Okta domain, got %d; use gateway mode for several", len(hosts))
	}
	return c, errors.Join(errs...)
}

// oktaHost reduces "example.okta.com" or "https://example.okta.com" to a lower-case DNS
// host. Ports, paths and plain http are refused: Envoy always originates TLS on 443.
func oktaHost(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", err
		}
		if u.Scheme != "https" {
			return "", errors.New("only https origins are supported")
		}
		if u.Port() != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return "", errors.New("must be a bare origin without port, path, query or user info")
		}
		s = u.Hostname()
	}
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if !validDNSName(s) {
		return "", errors.New("not a DNS host name")
	}
	return s, nil
}

// validDNSName reports whether s is a multi-label DNS name of letters, digits and hyphens.
func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	// An all-numeric last label would be an IP address, which has no certificate SAN to pin.
	last := s[strings.LastIndexByte(s, '.')+1:]
	if _, err := strconv.Atoi(last); err == nil {
		return false
	}
	return true
}

// splitHostPort parses host:port with a non-empty host and a port in 1..65535.
func splitHostPort(addr string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: empty host", addr)
	}
	return host, uint32(port), nil
}
