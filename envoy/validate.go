package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	// The extensions a shipped bootstrap may name in "@type" beyond those generate.go
	// imports for building: importing them registers their types, so protojson can resolve
	// the Any and the PGV validators can run on it. Extend this list deliberately.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
)

// MarshalYAML renders b as block-style YAML with snake_case keys in proto field order,
// the form Envoy's docs and `envoy -c` use. The output is deterministic.
func MarshalYAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal bootstrap: %w", err)
	}
	// JSON is YAML: parsing it into a node keeps protojson's key order; clearing the flow
	// styles turns it into block YAML. The encoder re-quotes any string that would
	// otherwise read as another type ("true", "443", "@type").
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("bootstrap JSON to YAML: %w", err)
	}
	clearStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func clearStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// Validate parses one YAML document strictly into a Bootstrap and checks it:
//
//  1. protojson with unknown fields rejected, so a misspelt field fails; every Any's
//     "@type" must be a type registered in this binary (this package imports every
//     extension QuantaSeal ships), so an unknown @type fails;
//  2. PGV ValidateAll on the bootstrap. The generated validators do not look inside an
//     Any (they type-assert the *anypb.Any, which has no validator), so every Any reachable
//     from the bootstrap, at any depth, is unpacked and validated too;
//  3. QuantaSeal's invariants (see [CheckMessage]).
//
// It does not run Envoy's own semantic checks (cluster references, listener conflicts).
func Validate(yamlBytes []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yamlToJSON(yamlBytes)
	if err != nil {
		return nil, err
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("parse bootstrap: %w", err)
	}
	if err := CheckMessage(b); err != nil {
		return nil, err
	}
	return b, nil
}

// yamlToJSON converts exactly one YAML document to JSON. Duplicate keys are an error
// (yaml.v3), and so are non-string keys.
func yamlToJSON(in []byte) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(in))
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse bootstrap: empty document")
		}
		return nil, fmt.Errorf("parse bootstrap YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse bootstrap YAML: more than one document")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("parse bootstrap YAML: top level is not a mapping")
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("parse bootstrap YAML: %w", err)
	}
	return js, nil
}

// CheckMessage runs the checks of [Validate] steps 2 and 3 on any parsed Envoy config
// message (a bootstrap, or an HttpFilter taken from an Istio EnvoyFilter patch):
// ValidateAll on m and on every Any reachable from it, and the invariants:
//   - ext_proc and ext_authz fail closed (failure_mode_allow false, also per route), and
//     ext_proc is not in observability mode (which ignores the processor's answers);
//   - no access log format names a credential header (Authorization, X-API-Key, DPoP,
//     Cookie) or the raw :path, which carries the query string.
func CheckMessage(m proto.Message) error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walk(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), &errs)
	return errors.Join(errs...)
}

// walk visits m and every message below it, unpacking Anys (and validating what they
// hold, since PGV cannot).
func walk(m protoreflect.Message, path string, errs *[]error) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: unpack %s: %w", path, a.GetTypeUrl(), err))
			return
		}
		path += "<" + string(inner.ProtoReflect().Descriptor().FullName()) + ">"
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
			}
		}
		m = inner.ProtoReflect()
	}
	if err := invariant(m.Interface()); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(mv.Message(), p+"["+k.String()+"]", errs)
				return true
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			l := v.List()
			for i := range l.Len() {
				walk(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), errs)
			}
		case fd.Message() != nil:
			walk(v.Message(), p, errs)
		}
		return true
	})
}

// forbiddenLogTokens may not appear in an access log format: credential headers, and the
// raw :path (use %REQ_WITHOUT_QUERY(:PATH)%). Compared case-insensitively.
var forbiddenLogTokens = []string{
	"(:PATH)%", "(:PATH?", "AUTHORIZATION", "X-API-KEY", "(DPOP)", "COOKIE", "%PATH(",
}

func invariant(m proto.Message) error {
	switch x := m.(type) {
	case *extprocfilterv3.ExternalProcessor:
		if x.GetFailureModeAllow() {
			return errors.New("ext_proc must fail closed (failure_mode_allow: false)")
		}
		if x.GetObservabilityMode() {
			return errors.New("ext_proc observability_mode ignores the processor's decisions")
		}
	case *extprocfilterv3.ExtProcOverrides:
		if x.GetFailureModeAllow().GetValue() {
			return errors.New("per-route ext_proc override must not fail open")
		}
	case *extauthzv3.ExtAuthz:
		if x.GetFailureModeAllow() {
			return errors.New("ext_authz must fail closed (failure_mode_allow: false)")
		}
	}
	if isAccessLogFormat(m) {
		js, err := protojson.Marshal(m)
		if err != nil {
			return fmt.Errorf("access log format: %w", err)
		}
		upper := strings.ToUpper(string(js))
		for _, tok := range forbiddenLogTokens {
			// REQ_WITHOUT_QUERY(:PATH)% is the one allowed spelling of the path.
			if strings.Contains(strings.ReplaceAll(upper, "REQ_WITHOUT_QUERY(:PATH)%", ""), tok) {
				return fmt.Errorf("access log format must not contain %s (credentials or query strings)", tok)
			}
		}
	}
	return nil
}

// isAccessLogFormat reports whether m holds an access log format.
func isAccessLogFormat(m proto.Message) bool {
	switch m.ProtoReflect().Descriptor().FullName() {
	case "envoy.config.core.v3.SubstitutionFormatString",
		"envoy.extensions.access_loggers.file.v3.FileAccessLog": // also has deprecated inline formats
		return true
	}
	return false
}
