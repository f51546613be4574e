package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PayloadError is a payload that fails the operation's schema. Field names the
// offending member ("" for the payload as a whole). The message never repeats the
// field's value, which may be a secret (a password in create_user credentials).
type PayloadError struct {
	Field   string
	Message string
}

func (e *PayloadError) Error() string {
	if e.Field == "" {
		return "invalid payload: " + e.Message
	}
	return fmt.Sprintf("invalid payload: %s: %s", e.Field, e.Message)
}

func payloadErr(field, format string, args ...any) *PayloadError {
	return &PayloadError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// UpstreamRequest is the Okta call an outbound-API payload becomes.
type UpstreamRequest struct {
	Method string
	// Path is the escaped path plus "?" and the URL-encoded query when there is one;
	// it round-trips through url.ParseRequestURI.
	Path string
	// Body is the JSON request body, nil when the call has none.
	Body []byte
}

// maxPayload bounds the payload handed to BuildRequest.
const maxPayload = 1 << 20

// BuildRequest validates payload against op's schema and builds the upstream request.
// A nil, empty or JSON null payload means {}. Errors are *PayloadError.
func BuildRequest(op Operation, payload json.RawMessage) (UpstreamRequest, error) {
	if op.Method == "" || op.PathTemplate == "" {
		return UpstreamRequest{}, payloadErr("operation", "unknown operation")
	}
	if len(payload) > maxPayload {
		return UpstreamRequest{}, payloadErr("", "larger than %d bytes", maxPayload)
	}
	fields, err := decodeObject(payload)
	if err != nil {
		return UpstreamRequest{}, err
	}
	for name := range fields {
		if _, ok := op.param(name); !ok {
			return UpstreamRequest{}, payloadErr(name, "unknown field")
		}
	}

	path := op.PathTemplate
	query := url.Values{}
	var body bodyMembers
	var userFilter string
	for _, p := range op.Params {
		raw, present := fields[p.Name]
		if !present || isNull(raw) {
			if p.Required {
				return UpstreamRequest{}, payloadErr(p.Name, "required")
			}
			continue
		}
		v, err := validateField(p, raw)
		if err != nil {
			return UpstreamRequest{}, err
		}
		switch p.In {
		case InPath:
			s := v.(string)
			if err := validPathValue(s); err != nil {
				return UpstreamRequest{}, payloadErr(p.Name, "%v", err)
			}
			path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(s), 1)
		case InQuery:
			query.Set(p.Name, queryString(v))
		case InBody:
			body = append(body, bodyMember{name: p.Name, raw: v.(json.RawMessage)})
		case InUserFilter:
			userFilter = v.(string)
		}
	}
	if userFilter != "" {
		if !validOktaID(userFilter) {
			return UpstreamRequest{}, payloadErr("user_id", "must be an Okta id (letters and digits)")
		}
		if query.Has("filter") {
			return UpstreamRequest{}, payloadErr("user_id", "cannot be combined with filter")
		}
		query.Set("filter", `user.id eq "`+userFilter+`"`)
	}
	if strings.Contains(path, "{") {
		// A template parameter without a matching Param: a catalogue bug, not the
		// caller's fault, but never send a literal "{id}" upstream.
		return UpstreamRequest{}, payloadErr("", "operation template has unfilled parameters")
	}

	req := UpstreamRequest{Method: op.Method, Path: path}
	if len(query) > 0 {
		req.Path += "?" + query.Encode() // Encode sorts keys: deterministic paths.
	}
	if hasBodyParams(op) {
		req.Body = body.encode()
	}
	return req, nil
}

// decodeObject decodes the top level of payload into its members, rejecting duplicate
// keys (which JSON parsers resolve differently) and trailing data.
func decodeObject(payload json.RawMessage) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return map[string]json.RawMessage{}, nil
	}
	if !utf8.Valid(trimmed) {
		return nil, payloadErr("", "not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, payloadErr("", "must be a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, payloadErr("", "malformed JSON")
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, payloadErr(name, "malformed JSON")
		}
		if _, dup := fields[name]; dup {
			return nil, payloadErr(name, "duplicate field")
		}
		fields[name] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, payloadErr("", "malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, payloadErr("", "trailing data after the JSON object")
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// validateField checks raw against p and returns a string, int64, bool or (for
// objects and arrays) compacted json.RawMessage.
func validateField(p Param, raw json.RawMessage) (any, error) {
	switch p.Kind {
	case KindString, KindTime:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, payloadErr(p.Name, "must be a string")
		}
		if s == "" {
			return nil, payloadErr(p.Name, "must not be empty")
		}
		if len(s) > maxString {
			return nil, payloadErr(p.Name, "longer than %d bytes", maxString)
		}
		if strings.ContainsFunc(s, isControl) {
			return nil, payloadErr(p.Name, "must not contain control characters")
		}
		if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
			return nil, payloadErr(p.Name, "must be one of %s", strings.Join(p.Enum, ", "))
		}
		if p.Kind == KindTime {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return nil, payloadErr(p.Name, "must be an RFC 3339 time")
			}
		}
		return s, nil
	case KindInt:
		if t := bytes.TrimSpace(raw); len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
			// Rejects "25": encoding/json would accept a numeric string as json.Number.
			return nil, payloadErr(p.Name, "must be an integer")
		}
		var n json.Number
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&n); err != nil {
			return nil, payloadErr(p.Name, "must be an integer")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			// Accept 25.0 and 2.5e1 as JSON allows, but only when integral.
			f, ferr := strconv.ParseFloat(n.String(), 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, payloadErr(p.Name, "must be an integer")
			}
			i = int64(f)
		}
		if i < p.Min || i > p.Max {
			return nil, payloadErr(p.Name, "must be between %d and %d", p.Min, p.Max)
		}
		return i, nil
	case KindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, payloadErr(p.Name, "must be true or false")
		}
		return b, nil
	case KindObject:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, payloadErr(p.Name, "must be a JSON object")
		}
		return compact(raw), nil
	case KindStringArray:
		var a []string
		if err := json.Unmarshal(raw, &a); err != nil || a == nil {
			return nil, payloadErr(p.Name, "must be an array of strings")
		}
		if p.Max > 0 && int64(len(a)) > p.Max {
			return nil, payloadErr(p.Name, "at most %d items", p.Max)
		}
		for _, s := range a {
			if s == "" || len(s) > maxString || strings.ContainsFunc(s, isControl) {
				return nil, payloadErr(p.Name, "items must be non-empty strings without control characters")
			}
		}
		return compact(raw), nil
	}
	return nil, payloadErr(p.Name, "unsupported field kind")
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw // unreachable: raw was decoded successfully above
	}
	return b.Bytes()
}

func queryString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(v)
}

// validOktaID accepts Okta object ids: 20 characters in practice, letters and digits.
// Anything else (quotes, spaces, operators) could change the filter expression.
func validOktaID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func hasBodyParams(op Operation) bool {
	return slices.ContainsFunc(op.Params, func(p Param) bool { return p.In == InBody })
}

type bodyMember struct {
	name string
	raw  json.RawMessage
}

type bodyMembers []bodyMember

// encode writes the members in catalogue order as a compact JSON object ("{}" when
// none were given).
func (m bodyMembers) encode() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, mem := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(mem.name) // catalogue names: plain ASCII
		b.Write(k)
		b.WriteByte(':')
		b.Write(mem.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}
