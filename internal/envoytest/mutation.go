package envoytest

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	mutationrulesv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// HeaderField is one header entry as Envoy's HeaderMap holds it: a lower-case key
// and its raw value. Repeated keys are separate entries, never merged
// (design §2 "Which headers the processor sees").
type HeaderField struct {
	Key   string
	Value string
}

// headerList is an ordered header map with pseudo-headers first.
type headerList []HeaderField

func (h headerList) get(key string) (string, bool) {
	for _, f := range h {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

func (h headerList) has(key string) bool {
	_, ok := h.get(key)
	return ok
}

func (h headerList) remove(key string) headerList {
	out := h[:0]
	for _, f := range h {
		if f.Key != key {
			out = append(out, f)
		}
	}
	return out
}

// set models HeaderMap::setCopy: every existing entry is removed and one entry
// with the new value takes the place of the first one (pseudo-headers keep
// their position in front).
func (h headerList) set(key, value string) headerList {
	idx := -1
	for i, f := range h {
		if f.Key == key {
			idx = i
			break
		}
	}
	if idx < 0 {
		return h.add(key, value)
	}
	h[idx].Value = value
	out := h[:idx+1]
	for _, f := range h[idx+1:] {
		if f.Key != key {
			out = append(out, f)
		}
	}
	return out
}

// add models HeaderMap::addCopy; pseudo-headers are kept in front.
func (h headerList) add(key, value string) headerList {
	if strings.HasPrefix(key, ":") {
		i := 0
		for i < len(h) && strings.HasPrefix(h[i].Key, ":") {
			i++
		}
		h = append(h, HeaderField{})
		copy(h[i+1:], h[i:])
		h[i] = HeaderField{Key: key, Value: value}
		return h
	}
	return append(h, HeaderField{Key: key, Value: value})
}

func (h headerList) clone() headerList { return append(headerList(nil), h...) }

func (h headerList) proto() *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for _, f := range h {
		// Envoy ≥1.27 sends raw_value only (design §2, runtime guard send_header_raw_value).
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: f.Key, RawValue: []byte(f.Value)})
	}
	return m
}

func (h headerList) byteSize() int {
	n := 0
	for _, f := range h {
		n += len(f.Key) + len(f.Value)
	}
	return n
}

// Envoy's HCM defaults (max_request_headers_count, max_request_headers_kb) that
// applyHeaderMutations enforces (design §2 "Size limits").
const (
	maxHeadersCount = 100
	maxHeadersBytes = 60 * 1024
)

type checkOp int

const (
	opSet checkOp = iota
	opAppend
	opRemove
)

type checkResult int

const (
	checkOK checkResult = iota
	checkIgnore
	checkFail
)

// checker is the port of mutation_rules.cc Checker (design §2 "What the
// processor may change").
type checker struct {
	allowAllRouting, allowEnvoy, disallowSystem, disallowAll, disallowIsError bool
	allowExpr, disallowExpr                                                   *regexp.Regexp
}

func newChecker(r *mutationrulesv3.HeaderMutationRules) (*checker, error) {
	c := &checker{}
	if r == nil {
		return c, nil
	}
	c.allowAllRouting = r.GetAllowAllRouting().GetValue()
	c.allowEnvoy = r.GetAllowEnvoy().GetValue()
	c.disallowSystem = r.GetDisallowSystem().GetValue()
	c.disallowAll = r.GetDisallowAll().GetValue()
	c.disallowIsError = r.GetDisallowIsError().GetValue()
	var err error
	if re := r.GetAllowExpression().GetRegex(); re != "" {
		// Envoy matches the whole header name (RE2 full match).
		if c.allowExpr, err = regexp.Compile("^(?:" + re + ")$"); err != nil {
			return nil, fmt.Errorf("allow_expression: %w", err)
		}
	}
	if re := r.GetDisallowExpression().GetRegex(); re != "" {
		if c.disallowExpr, err = regexp.Compile("^(?:" + re + ")$"); err != nil {
			return nil, fmt.Errorf("disallow_expression: %w", err)
		}
	}
	return c, nil
}

func (c *checker) check(op checkOp, name, value string) checkResult {
	fail := checkIgnore
	if c.disallowIsError {
		fail = checkFail
	}
	if !c.allowed(op, name) {
		return fail
	}
	if op != opRemove && !validValue(name, value) {
		return fail
	}
	return checkOK
}

func (c *checker) allowed(op checkOp, name string) bool {
	system := strings.HasPrefix(name, ":")
	// Always blocked: removing ":" headers or host; appending to ":" headers.
	if op == opRemove && (system || name == "host") {
		return false
	}
	if op == opAppend && system {
		return false
	}
	if c.disallowExpr != nil && c.disallowExpr.MatchString(name) {
		return false
	}
	if c.allowExpr != nil && c.allowExpr.MatchString(name) {
		return true
	}
	if c.disallowAll {
		return false
	}
	if system && c.disallowSystem {
		return false
	}
	switch name {
	case ":authority", "host", ":method", ":scheme":
		if !c.allowAllRouting {
			return false
		}
	}
	if !c.allowEnvoy && strings.HasPrefix(name, "x-envoy") {
		return false
	}
	return true
}

func validValue(name, value string) bool {
	switch name {
	case ":authority", "host":
		return validAuthority(value)
	case ":scheme":
		v := strings.ToLower(value)
		return v == "http" || v == "https"
	case ":status":
		n, err := strconv.ParseUint(value, 10, 32)
		// Envoy only requires >= 200; the upper bound keeps net/http's WriteHeader from panicking.
		return err == nil && n >= 200 && n <= 999
	}
	return true
}

func validAuthority(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@[]%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	s := k
	if s[0] == ':' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	return !strings.ContainsAny(v, "\x00\r\n")
}

// errMutation is returned by applyHeaderMutation for the mutation errors that
// Envoy turns into a status_on_error local reply (not covered by failure_mode_allow).
var errMutation = errors.New("invalid header mutation")

type mutationOpts struct {
	replacing     bool // CONTINUE_AND_REPLACE: the :method check is skipped (mutation_utils.cc)
	removeCL      bool // content-length set_headers are silently skipped (shouldRemoveContentLength)
	countRejected func()
}

// applyHeaderMutation ports MutationUtils::applyHeaderMutations: removes first,
// then sets; raw_value only; both value and raw_value is an error.
func (c *checker) applyHeaderMutation(h headerList, m *extprocv3.HeaderMutation, o mutationOpts) (headerList, error) {
	if m == nil {
		return h, nil
	}
	if len(m.GetSetHeaders())+len(m.GetRemoveHeaders()) > maxHeadersCount {
		o.countRejected()
		return h, fmt.Errorf("%w: too many mutations", errMutation)
	}
	for _, name := range m.GetRemoveHeaders() {
		if !validHeaderName(name) {
			o.countRejected()
			return h, fmt.Errorf("%w: invalid character in remove_headers mutation", errMutation)
		}
		key := strings.ToLower(name)
		switch c.check(opRemove, key, "") {
		case checkOK:
			h = h.remove(key)
		case checkIgnore:
			o.countRejected()
		case checkFail:
			o.countRejected()
			return h, fmt.Errorf("%w: invalid attempt to remove %s", errMutation, key)
		}
	}
	for _, sh := range m.GetSetHeaders() {
		hv := sh.GetHeader()
		if hv == nil {
			continue
		}
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			o.countRejected()
			return h, fmt.Errorf("%w: only one of value or raw_value in the HeaderValue message should be set", errMutation)
		}
		if !validHeaderName(hv.GetKey()) {
			o.countRejected()
			return h, fmt.Errorf("%w: invalid character in set_headers mutation", errMutation)
		}
		key := strings.ToLower(hv.GetKey())
		// Envoy ≥1.27 reads raw_value only: a value-only header becomes empty (envoyproxy/envoy#31555).
		value := string(hv.GetRawValue())
		if !validHeaderValue(value) {
			o.countRejected()
			return h, fmt.Errorf("%w: invalid character in set_headers value of %s", errMutation, key)
		}
		if o.removeCL && key == "content-length" {
			continue
		}
		// append unset = false = overwrite (design §2 append semantics); ext_proc
		// reads the deprecated BoolValue, not append_action.
		//lint:ignore SA1019 ext_proc's mutation_utils.cc reads append, not append_action.
		appendMode := sh.GetAppend().GetValue()
		op := opSet
		if appendMode && h.has(key) {
			op = opAppend
		}
		res := c.check(op, key, value)
		if o.replacing && key == ":method" {
			res = checkOK
		}
		switch res {
		case checkOK:
			if appendMode {
				h = h.add(key, value)
			} else {
				h = h.set(key, value)
			}
		case checkIgnore:
			o.countRejected()
		case checkFail:
			o.countRejected()
			return h, fmt.Errorf("%w: invalid attempt to modify %s", errMutation, key)
		}
	}
	if len(h) > maxHeadersCount || h.byteSize() > maxHeadersBytes {
		return h, fmt.Errorf("%w: header map over the size limits after mutation", errMutation)
	}
	return h, nil
}
