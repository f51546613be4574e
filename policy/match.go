package policy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Machine reasons for a denial; the same strings appear in error bodies, metrics and
// audit events.
const (
	ReasonUnknownOperation    = "unknown_operation"
	ReasonOperationNotAllowed = "operation_not_allowed"
)

// ErrUnknownOperation is returned (wrapped in a *MatchError) by [Match] when the
// method and path name no catalogue operation, including every malformed path.
var ErrUnknownOperation = errors.New(ReasonUnknownOperation)

// MatchError says why a request matched no operation. It unwraps to
// [ErrUnknownOperation]. Detail never contains the request's path parameters.
type MatchError struct {
	Detail string
}

func (e *MatchError) Error() string { return "unknown operation: " + e.Detail }

// Unwrap returns [ErrUnknownOperation].
func (e *MatchError) Unwrap() error { return ErrUnknownOperation }

func unknown(format string, args ...any) error {
	return &MatchError{Detail: fmt.Sprintf(format, args...)}
}

// Match maps a transparent-mode request (method and raw :path, query included) to its
// catalogue operation and decoded path parameters. The query is ignored. The error is
// a *MatchError (errors.Is ErrUnknownOperation) for anything that is not exactly a
// catalogue operation; see the package doc for the path rules.
func Match(systemType, method, rawPath string) (Operation, map[string]string, error) {
	ops, ok := catalogues[systemType]
	if !ok {
		return Operation{}, nil, unknown("unknown system type")
	}
	segs, err := splitPath(rawPath)
	if err != nil {
		return Operation{}, nil, err
	}
	for _, op := range ops {
		if op.Method != method {
			continue
		}
		if params, ok := matchTemplate(op.PathTemplate, segs); ok {
			return op.clone(), params, nil
		}
	}
	return Operation{}, nil, unknown("no operation for this method and path")
}

// splitPath validates rawPath (query stripped) and returns its raw segments.
func splitPath(rawPath string) ([]string, error) {
	p, _, _ := strings.Cut(rawPath, "?")
	// A fragment never reaches a server; if one does, refuse rather than guess.
	if strings.Contains(p, "#") {
		return nil, unknown("fragment in path")
	}
	if !strings.HasPrefix(p, "/") {
		return nil, unknown("path is not absolute")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return nil, unknown("control character in path")
		case c == '\\':
			return nil, unknown("backslash in path")
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return nil, unknown("bad percent-encoding in path")
			}
			switch strings.ToUpper(p[i+1 : i+3]) {
			case "2F", "5C":
				return nil, unknown("encoded slash in path")
			}
		}
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		if s == "" {
			return nil, unknown("empty path segment")
		}
		dec, err := url.PathUnescape(s)
		if err != nil {
			return nil, unknown("bad percent-encoding in path")
		}
		if dec == "." || dec == ".." {
			return nil, unknown("dot segment in path")
		}
		if strings.ContainsFunc(dec, isControl) {
			return nil, unknown("control character in path")
		}
	}
	return segs, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// matchTemplate matches raw segments against a template such as
// /api/v1/users/{id}/lifecycle/deactivate. Literal segments compare byte for byte on
// the raw form (so "%75sers" is not "users"); parameters are percent-decoded.
func matchTemplate(tmpl string, segs []string) (map[string]string, bool) {
	tsegs := strings.Split(tmpl[1:], "/")
	if len(tsegs) != len(segs) {
		return nil, false
	}
	var params map[string]string
	for i, t := range tsegs {
		if name, ok := strings.CutPrefix(t, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			v, err := url.PathUnescape(segs[i])
			if err != nil || validPathValue(v) != nil {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 1)
			}
			params[name] = v
			continue
		}
		if t != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// validPathValue checks a decoded path parameter (a user id or a login). Logins with
// '/' or '?' can only be addressed by id (okta-api.md §1.2).
func validPathValue(v string) error {
	switch {
	case v == "":
		return errors.New("must not be empty")
	case v == "." || v == "..":
		return errors.New("must not be a dot segment")
	case len(v) > maxString:
		return fmt.Errorf("longer than %d bytes", maxString)
	case strings.ContainsAny(v, "/\\?#"):
		return errors.New("must not contain '/', '\\', '?' or '#'")
	case strings.ContainsFunc(v, isControl):
		return errors.New("must not contain control characters")
	case !utf8.ValidString(v):
		return errors.New("must be valid UTF-8")
	}
	return nil
}

// Decision is the outcome of [Decide].
type Decision struct {
	Allow  bool
	Reason string // "" when allowed, else ReasonOperationNotAllowed
}

// Decide applies an integration's allowed_operations to op. Anything not listed is
// denied: the default is deny.
func Decide(allowed []string, op Operation) Decision {
	if op.Name != "" && slices.Contains(allowed, op.Name) {
		return Decision{Allow: true}
	}
	return Decision{Reason: ReasonOperationNotAllowed}
}
