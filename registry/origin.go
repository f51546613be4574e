package registry

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrInvalidOrigin is wrapped by CheckOktaOrigin's errors.
var ErrInvalidOrigin = errors.New("invalid okta_domain")

// oktaSuffixes are the Okta-operated parent domains (ARCHITECTURE.md, "Integrations").
// An org host is exactly one or more labels under one of them.
var oktaSuffixes = []string{".okta.com", ".oktapreview.com", ".okta-emea.com", ".okta-gov.com", ".okta.mil"}

// CheckOktaOrigin validates an integration's okta_domain and returns its canonical
// origin ("https://host", lower-case, no trailing slash).
//
// Admitted: an https:// origin whose host is a subdomain of an Okta domain, or any origin
// listed in allowed (the operator's okta.allowed_domains). An allowed origin may be
// http:// only when its host is a loopback name (127.0.0.1, [::1], localhost): the
// gateway never sends a credential in clear text over a network. The value must be an
// origin: no userinfo, path, query, fragment, or explicit port on an Okta host.
func CheckOktaOrigin(origin string, allowed []string) (string, error) {
	canon, u, err := parseOrigin(origin)
	if err != nil {
		return "", err
	}
	for _, a := range allowed {
		ac, au, err := parseOrigin(a)
		if err != nil || ac != canon {
			continue
		}
		if au.Scheme == "http" && !isLoopback(au.Hostname()) {
			return "", fmt.Errorf("%w: http origin %q is allowed only on a loopback host", ErrInvalidOrigin, canon)
		}
		return canon, nil
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%w: %q must use https", ErrInvalidOrigin, canon)
	}
	if u.Port() != "" {
		return "", fmt.Errorf("%w: %q must not name a port", ErrInvalidOrigin, canon)
	}
	host := u.Hostname()
	for _, s := range oktaSuffixes {
		if label, ok := strings.CutSuffix(host, s); ok && validLabels(label) {
			return canon, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not an Okta host or an allowed origin", ErrInvalidOrigin, canon)
}

// parseOrigin accepts scheme://host[:port] with an optional single trailing "/".
func parseOrigin(s string) (string, *url.URL, error) {
	if s == "" {
		return "", nil, fmt.Errorf("%w: empty", ErrInvalidOrigin)
	}
	if len(s) > 253+len("https://:65535/") {
		return "", nil, fmt.Errorf("%w: too long", ErrInvalidOrigin)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '\\' || c == '%' {
			return "", nil, fmt.Errorf("%w: contains a forbidden character", ErrInvalidOrigin)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", nil, fmt.Errorf("%w: not a URL", ErrInvalidOrigin)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", nil, fmt.Errorf("%w: scheme must be https", ErrInvalidOrigin)
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" ||
		strings.Contains(s, "#") || (u.Path != "" && u.Path != "/") {
		return "", nil, fmt.Errorf("%w: must be an origin (scheme://host), without userinfo, path, query or fragment", ErrInvalidOrigin)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", nil, fmt.Errorf("%w: no host", ErrInvalidOrigin)
	}
	if strings.Contains(u.Host, "[") && net.ParseIP(host) == nil {
		return "", nil, fmt.Errorf("%w: bad IP literal", ErrInvalidOrigin)
	}
	if net.ParseIP(host) == nil && !validLabels(host) {
		return "", nil, fmt.Errorf("%w: bad host name", ErrInvalidOrigin)
	}
	hostport := host
	if strings.Contains(host, ":") {
		hostport = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		if !validPort(p) {
			return "", nil, fmt.Errorf("%w: bad port", ErrInvalidOrigin)
		}
		hostport += ":" + p
	} else if strings.HasSuffix(u.Host, ":") {
		return "", nil, fmt.Errorf("%w: empty port", ErrInvalidOrigin)
	}
	canon := u.Scheme + "://" + hostport
	cu := *u
	cu.Host = hostport
	cu.Path = ""
	return canon, &cu, nil
}

// validLabels reports whether s is a dot-separated list of LDH labels (RFC 1123), each
// 1–63 characters, not starting or ending with '-'.
func validLabels(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validPort(p string) bool {
	if len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
