package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Header is one HTTP header as Envoy hands it to the processor: a lower-case key and
// the value (sent as raw_value).
type Header struct {
	Key, Value string
}

// Scenario is one kind of HTTP request, as Envoy would present it to the processor,
// together with the upstream answer Envoy would receive for it.
type Scenario struct {
	// Name labels the results.
	Name string
	// Mode is the processing_mode Envoy applies to the route (the filter's, or the
	// route's ExtProcPerRoute override). Nil means Envoy's defaults: headers SEND,
	// bodies NONE, trailers SKIP (processing_mode.proto).
	Mode *extprocfilterv3.ProcessingMode
	// AllowModeOverride mirrors the filter's allow_mode_override: without it a
	// mode_override in a reply is ignored.
	AllowModeOverride bool
	// RequestHeaders are the downstream request headers: pseudo-headers first
	// (:method, :path with the query, :authority, :scheme), then the others, all keys
	// lower-case. Run adds a fresh x-request-id to each request unless one is given.
	RequestHeaders []Header
	// RequestBody is the request body; nil or empty means the request headers carry
	// end_of_stream and no request_body is ever sent.
	RequestBody []byte
	// ResponseStatus is the upstream :status (default 200).
	ResponseStatus int
	// ResponseHeaders are the upstream response headers other than :status.
	ResponseHeaders []Header
	// ResponseBody is the upstream body; empty means response_headers carry
	// end_of_stream.
	ResponseBody []byte
}

// validate checks the scenario against what Envoy would send (envoy-extproc.md §2
// "Which headers the processor sees").
func (sc *Scenario) validate() error {
	var errs []error
	seenRegular := false
	have := map[string]bool{}
	for _, h := range sc.RequestHeaders {
		if h.Key == "" || h.Key != strings.ToLower(h.Key) {
			errs = append(errs, fmt.Errorf("request header %q: keys must be lower-case and non-empty", h.Key))
		}
		if strings.HasPrefix(h.Key, ":") {
			if seenRegular {
				errs = append(errs, fmt.Errorf("request header %q: pseudo-headers must come first", h.Key))
			}
		} else {
			seenRegular = true
		}
		have[h.Key] = true
	}
	for _, k := range []string{":method", ":path", ":authority", ":scheme"} {
		if !have[k] {
			errs = append(errs, fmt.Errorf("request headers lack %s", k))
		}
	}
	for _, h := range sc.ResponseHeaders {
		if h.Key == "" || h.Key != strings.ToLower(h.Key) || strings.HasPrefix(h.Key, ":") {
			errs = append(errs, fmt.Errorf("response header %q: keys must be lower-case, non-empty, not pseudo-headers (:status is ResponseStatus)", h.Key))
		}
	}
	if sc.ResponseStatus != 0 && (sc.ResponseStatus < 100 || sc.ResponseStatus > 599) {
		errs = append(errs, fmt.Errorf("response status %d is not an HTTP status", sc.ResponseStatus))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("loadgen: scenario %q: %w", sc.Name, err)
	}
	return nil
}

// prepared is a scenario turned into the reusable parts of its messages. The header
// values are shared, read-only, by every stream (Envoy builds them per request; the
// bytes on the wire are the same).
type prepared struct {
	sc          *Scenario
	mode        *extprocfilterv3.ProcessingMode
	reqHeaders  []*corev3.HeaderValue // without x-request-id
	addID       bool
	idAt        int // index at which x-request-id is inserted: after the pseudo-headers
	respHeaders *extprocv3.HttpHeaders
	reqBody     *extprocv3.HttpBody
	respBody    *extprocv3.HttpBody
}

func prepare(sc *Scenario) (*prepared, error) {
	if err := sc.validate(); err != nil {
		return nil, err
	}
	p := &prepared{sc: sc, mode: sc.Mode, addID: true}
	if p.mode == nil {
		p.mode = &extprocfilterv3.ProcessingMode{}
	}
	for _, h := range sc.RequestHeaders {
		if h.Key == "x-request-id" {
			p.addID = false
		}
		if strings.HasPrefix(h.Key, ":") {
			p.idAt++
		}
		p.reqHeaders = append(p.reqHeaders, raw(h))
	}
	status := sc.ResponseStatus
	if status == 0 {
		status = 200
	}
	resp := []*corev3.HeaderValue{raw(Header{":status", strconv.Itoa(status)})}
	for _, h := range sc.ResponseHeaders {
		resp = append(resp, raw(h))
	}
	p.respHeaders = &extprocv3.HttpHeaders{
		Headers:     &corev3.HeaderMap{Headers: resp},
		EndOfStream: len(sc.ResponseBody) == 0,
	}
	if len(sc.RequestBody) > 0 {
		p.reqBody = &extprocv3.HttpBody{Body: sc.RequestBody, EndOfStream: true}
	}
	if len(sc.ResponseBody) > 0 {
		p.respBody = &extprocv3.HttpBody{Body: sc.ResponseBody, EndOfStream: true}
	}
	return p, nil
}

// raw is a header as Envoy ≥ 1.27 sends it: raw_value only (envoy-extproc.md §2).
func raw(h Header) *corev3.HeaderValue {
	return &corev3.HeaderValue{Key: h.Key, RawValue: []byte(h.Value)}
}

// requestHeaders builds the request_headers message of one request.
func (p *prepared) requestHeaders(requestID string) *extprocv3.HttpHeaders {
	hs := p.reqHeaders
	if p.addID {
		hs = make([]*corev3.HeaderValue, 0, len(p.reqHeaders)+1)
		hs = append(hs, p.reqHeaders[:p.idAt]...)
		hs = append(hs, raw(Header{"x-request-id", requestID}))
		hs = append(hs, p.reqHeaders[p.idAt:]...)
	}
	return &extprocv3.HttpHeaders{
		Headers:     &corev3.HeaderMap{Headers: hs},
		EndOfStream: p.reqBody == nil,
	}
}

// modes is the processing state of one stream: the static mode, then any override.
type modes struct {
	reqHeaders, respHeaders bool
	reqBody, respBody       extprocfilterv3.ProcessingMode_BodySendMode
}

func initialModes(m *extprocfilterv3.ProcessingMode) modes {
	return modes{
		reqHeaders:  m.GetRequestHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		respHeaders: m.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		reqBody:     m.GetRequestBodyMode(),
		respBody:    m.GetResponseBodyMode(),
	}
}

// override applies a mode_override the way Envoy's processor state does
// (setProcessingMode): header modes other than SKIP mean send, the body modes replace
// the current ones; request_header_mode is ignored because the headers have gone.
func (m *modes) override(o *extprocfilterv3.ProcessingMode) {
	m.respHeaders = o.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP
	m.reqBody = o.GetRequestBodyMode()
	m.respBody = o.GetResponseBodyMode()
}
