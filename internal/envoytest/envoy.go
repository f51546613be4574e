package envoytest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Defaults taken from Envoy (design §3, §5).
const (
	DefaultBufferLimit    = 1 << 20                // listener per_connection_buffer_limit_bytes
	DefaultMessageTimeout = 200 * time.Millisecond // ext_proc message_timeout
	DefaultChunkSize      = 16 << 10               // STREAMED chunk size used by the harness
	maxBodyRead           = 64 << 20               // the harness reads at most this much of any body
)

// Config configures the fake Envoy.
type Config struct {
	// Processor is the connection to the ext_proc server under test. Required.
	Processor *grpc.ClientConn
	// Upstream is the base URL ("http://127.0.0.1:1234") of the route's cluster. Required.
	Upstream string
	// HostRewrite is the route's host_rewrite_literal; empty keeps :authority.
	HostRewrite string
	// Filter is the ext_proc filter config. Nil means all defaults.
	Filter *extprocfilterv3.ExternalProcessor
	// BufferLimit is per_connection_buffer_limit_bytes; 0 means 1 MiB.
	BufferLimit int
	// ChunkSize is the size of the request_body/response_body chunks sent in
	// STREAMED mode; 0 means 16 KiB.
	ChunkSize int
	// RouteName and ClusterName feed the xds.route_name and xds.cluster_name attributes.
	RouteName, ClusterName string
}

// Stats mirrors the filter statistics under http.<stat_prefix>.ext_proc. (design §5).
type Stats struct {
	StreamsStarted                 int64
	StreamMsgsSent                 int64
	StreamMsgsReceived             int64
	SpuriousMsgsReceived           int64
	StreamsFailed                  int64
	FailureModeAllowed             int64
	MessageTimeouts                int64
	RejectedHeaderMutations        int64
	OverrideMessageTimeoutReceived int64
	OverrideMessageTimeoutIgnored  int64
}

type statsBox struct {
	mu sync.Mutex
	s  Stats
}

func (b *statsBox) add(f func(*Stats)) {
	b.mu.Lock()
	f(&b.s)
	b.mu.Unlock()
}

// UpstreamRequest is exactly what the router sent to the upstream.
type UpstreamRequest struct {
	Method string
	// Path is the request target (":path", with the query).
	Path string
	// Host is the Host header sent (host_rewrite_literal or :authority).
	Host string
	// Headers are the non-pseudo headers in order, lower-case, unmerged.
	Headers  []HeaderField
	Body     []byte
	Trailers []HeaderField
}

// Header returns the first value of the lower-case header key.
func (u UpstreamRequest) Header(key string) (string, bool) { return headerList(u.Headers).get(key) }

// Exchange records one HTTP request through the fake Envoy.
type Exchange struct {
	// Sent are the ProcessingRequests sent to the processor, in order.
	Sent []*extprocv3.ProcessingRequest
	// Received are all ProcessingResponses received, including ignored ones.
	Received []*extprocv3.ProcessingResponse
	// Upstream is what went upstream; nil when the request was not forwarded.
	Upstream *UpstreamRequest
	// Status, Header and Body are what the client got. Header has lower-case keys.
	Status int
	Header []HeaderField
	Body   []byte
	// Details is %RESPONSE_CODE_DETAILS% for local replies; empty when proxied.
	Details string
	// Reset is true when the response had started downstream and Envoy reset the stream.
	Reset bool
	// Metadata is the accepted dynamic metadata by namespace.
	Metadata map[string]*structpb.Struct
}

// Envoy is a running fake Envoy.
type Envoy struct {
	cfg            Config
	client         extprocv3.ExternalProcessorClient
	checker        *checker
	srv            *httptest.Server
	upstream       *http.Client
	upstreamURL    *url.URL
	messageTimeout time.Duration
	statusOnError  int
	stats          statsBox

	mu        sync.Mutex
	idle      *sync.Cond
	inflight  int
	exchanges []*Exchange
}

// New starts a fake Envoy listening on a loopback httptest server; it is
// closed when the test ends. Configuration errors fail the test.
func New(t testing.TB, cfg Config) *Envoy {
	t.Helper()
	if cfg.Processor == nil {
		t.Fatal("envoytest: Config.Processor is required")
	}
	u, err := url.Parse(cfg.Upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("envoytest: Config.Upstream %q is not a base URL", cfg.Upstream)
	}
	if cfg.Filter == nil {
		cfg.Filter = &extprocfilterv3.ExternalProcessor{}
	}
	if err := unsupported(cfg.Filter); err != nil {
		t.Fatalf("envoytest: %v", err)
	}
	if cfg.BufferLimit <= 0 {
		cfg.BufferLimit = DefaultBufferLimit
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	ck, err := newChecker(cfg.Filter.GetMutationRules())
	if err != nil {
		t.Fatalf("envoytest: mutation_rules: %v", err)
	}
	e := &Envoy{
		cfg:            cfg,
		client:         extprocv3.NewExternalProcessorClient(cfg.Processor),
		checker:        ck,
		upstreamURL:    u,
		messageTimeout: DefaultMessageTimeout,
		statusOnError:  500,
	}
	if mt := cfg.Filter.GetMessageTimeout(); mt != nil {
		e.messageTimeout = mt.AsDuration() // 0 means fire immediately (design §5)
	}
	if c := int(cfg.Filter.GetStatusOnError().GetCode()); c >= 200 && c <= 999 {
		e.statusOnError = c
	}
	e.idle = sync.NewCond(&e.mu)
	tr := &http.Transport{DisableCompression: true, ForceAttemptHTTP2: false}
	e.upstream = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serveHTTP))
	t.Cleanup(func() {
		e.srv.Close()
		tr.CloseIdleConnections()
	})
	return e
}

func unsupported(f *extprocfilterv3.ExternalProcessor) error {
	pm := f.GetProcessingMode()
	for _, m := range []extprocfilterv3.ProcessingMode_BodySendMode{pm.GetRequestBodyMode(), pm.GetResponseBodyMode()} {
		if m == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED || m == extprocfilterv3.ProcessingMode_GRPC {
			return fmt.Errorf("body mode %v is not implemented by the harness", m)
		}
	}
	switch {
	case f.GetObservabilityMode():
		return errors.New("observability_mode is not implemented by the harness")
	case f.GetHttpService() != nil:
		return errors.New("http_service is not implemented by the harness")
	case f.GetSendBodyWithoutWaitingForHeaderResponse():
		return errors.New("send_body_without_waiting_for_header_response is not implemented by the harness")
	}
	return nil
}

// URL is the base URL clients send requests to.
func (e *Envoy) URL() string { return e.srv.URL }

// Client returns an HTTP client for the front; its idle connections are
// closed with the server.
func (e *Envoy) Client() *http.Client { return e.srv.Client() }

// Stats returns a snapshot of the filter statistics.
func (e *Envoy) Stats() Stats {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	return e.stats.s
}

func (e *Envoy) countRejected() { e.stats.add(func(s *Stats) { s.RejectedHeaderMutations++ }) }

// Exchanges waits (up to 5 s) for in-flight requests to finish and returns
// the records of all requests so far, oldest first.
func (e *Envoy) Exchanges() []*Exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for e.inflight > 0 && time.Now().Before(deadline) {
		e.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		e.mu.Lock()
	}
	return append([]*Exchange(nil), e.exchanges...)
}

// LastExchange returns the most recent exchange, or nil.
func (e *Envoy) LastExchange() *Exchange {
	xs := e.Exchanges()
	if len(xs) == 0 {
		return nil
	}
	return xs[len(xs)-1]
}

// UpstreamRequests returns every request that went upstream, oldest first.
func (e *Envoy) UpstreamRequests() []UpstreamRequest {
	var out []UpstreamRequest
	for _, x := range e.Exchanges() {
		if x.Upstream != nil {
			out = append(out, *x.Upstream)
		}
	}
	return out
}

// LastUpstreamRequest returns the most recent upstream request.
func (e *Envoy) LastUpstreamRequest() (UpstreamRequest, bool) {
	us := e.UpstreamRequests()
	if len(us) == 0 {
		return UpstreamRequest{}, false
	}
	return us[len(us)-1], true
}

// hopByHop headers never reach the filters or the upstream.
var hopByHop = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true, "upgrade": true, "te": true}

func sortedFields(h http.Header) headerList {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out headerList
	for _, k := range keys {
		lk := strings.ToLower(k)
		if hopByHop[lk] || lk == "transfer-encoding" || lk == "host" {
			continue
		}
		for _, v := range h[k] {
			out = append(out, HeaderField{Key: lk, Value: v})
		}
	}
	return out
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (e *Envoy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.inflight++
	e.mu.Unlock()
	rec := &Exchange{Metadata: map[string]*structpb.Struct{}}
	defer func() {
		e.mu.Lock()
		e.exchanges = append(e.exchanges, rec)
		e.inflight--
		e.mu.Unlock()
	}()

	upCtx, upCancel := context.WithCancel(r.Context())
	defer upCancel()
	x := &exchange{
		e:         e,
		rec:       rec,
		ctx:       r.Context(),
		upCancel:  upCancel,
		replyCh:   make(chan *extprocv3.ProcessingResponse, 1),
		timeoutCh: make(chan time.Duration, 1),
		stop:      make(chan struct{}),
		modes:     newModes(e.cfg.Filter.GetProcessingMode()),
	}
	d := &downstream{w: w, rec: rec}
	defer func() {
		x.finish()
		d.done()
	}()
	e.run(x, r, upCtx, d)
}

// downstream writes the response the client gets.
type downstream struct {
	w         http.ResponseWriter
	rec       *Exchange
	committed bool
	reset     bool
}

func (d *downstream) writeHeaders(h headerList) {
	d.committed = true
	status, _ := strconv.Atoi(first(h.get(":status")))
	d.rec.Status = status
	for _, f := range h {
		if strings.HasPrefix(f.Key, ":") {
			continue
		}
		d.rec.Header = append(d.rec.Header, f)
		d.w.Header().Add(f.Key, f.Value)
	}
	if status == 0 {
		status = 502
	}
	d.w.WriteHeader(status)
}

func (d *downstream) writeBody(b []byte) {
	d.rec.Body = append(d.rec.Body, b...)
	_, _ = d.w.Write(b)
	if f, ok := d.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (d *downstream) writeTrailers(t headerList) {
	for _, f := range t {
		d.w.Header().Add(http.TrailerPrefix+f.Key, f.Value)
	}
}

// local sends a local reply, or resets the stream when the response has
// already started downstream (design §4 "What the client sees").
func (d *downstream) local(lr *localReply) {
	d.rec.Details = lr.details
	if d.committed {
		d.rec.Reset = true
		d.reset = true
		return
	}
	h := headerList{{Key: ":status", Value: strconv.Itoa(lr.status)}}
	for _, f := range lr.header {
		if !strings.HasPrefix(f.Key, ":") && f.Key != "content-length" {
			h = append(h, f)
		}
	}
	if len(lr.body) > 0 && !h.has("content-type") {
		h = h.add("content-type", "text/plain")
	}
	h = h.set("content-length", strconv.Itoa(len(lr.body)))
	d.writeHeaders(h)
	d.writeBody(lr.body)
}

func (d *downstream) done() {
	if d.reset {
		panic(http.ErrAbortHandler) // resets the client connection, as Envoy resets the stream
	}
}

func first(s string, _ bool) string { return s }

func (x *exchange) fillAttributes(r *http.Request, h headerList) {
	path := first(h.get(":path"))
	urlPath, _, _ := strings.Cut(path, "?")
	x.attrs = map[string]*structpb.Value{
		"request.path":        structpb.NewStringValue(path),
		"request.url_path":    structpb.NewStringValue(urlPath),
		"request.host":        structpb.NewStringValue(first(h.get(":authority"))),
		"request.method":      structpb.NewStringValue(first(h.get(":method"))),
		"request.scheme":      structpb.NewStringValue(first(h.get(":scheme"))),
		"request.id":          structpb.NewStringValue(first(h.get("x-request-id"))),
		"request.protocol":    structpb.NewStringValue(r.Proto),
		"source.address":      structpb.NewStringValue(r.RemoteAddr),
		"destination.address": structpb.NewStringValue(x.e.srv.Listener.Addr().String()),
		"xds.route_name":      structpb.NewStringValue(x.e.cfg.RouteName),
		"xds.cluster_name":    structpb.NewStringValue(x.e.cfg.ClusterName),
	}
}

// shouldRemoveContentLength ports ProcessorState::shouldRemoveContentLength (design §3).
func (x *exchange) shouldRemoveCL(body extprocfilterv3.ProcessingMode_BodySendMode, sendHeaders bool) bool {
	if x.e.cfg.Filter.GetAllowContentLengthHeader() {
		return false
	}
	switch body {
	case extprocfilterv3.ProcessingMode_STREAMED, extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL:
		return true
	case extprocfilterv3.ProcessingMode_BUFFERED:
		return !sendHeaders
	}
	return false
}

// bodyResult is the effect of a headers reply on the following body.
type headersOutcome struct {
	replaced    bool   // CONTINUE_AND_REPLACE: body/trailer processing is off for this direction
	replaceBody []byte // non-nil when the reply carried a body_mutation
}

// applyHeadersReply handles a HeadersResponse (processor_state.cc handleHeadersResponse).
func (x *exchange) applyHeadersReply(resp *extprocv3.ProcessingResponse, hr *extprocv3.HeadersResponse, h headerList, removeCL bool) (headerList, headersOutcome, error) {
	var out headersOutcome
	cr := hr.GetResponse()
	replacing := cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE
	h, err := x.e.checker.applyHeaderMutation(h, cr.GetHeaderMutation(), mutationOpts{replacing: replacing, removeCL: removeCL, countRejected: x.e.countRejected})
	if err != nil {
		return h, out, err
	}
	if replacing {
		out.replaced = true
		if bm := cr.GetBodyMutation(); bm != nil {
			if bm.GetStreamedResponse() != nil {
				return h, out, errors.New("streamed_response outside FULL_DUPLEX_STREAMED")
			}
			out.replaceBody = append([]byte{}, bm.GetBody()...)
			h = h.remove("content-length") // always removed with a replaced body (design §3)
		}
	}
	// mode_override (design §5): only with allow_mode_override, only on headers replies.
	if mo := resp.GetModeOverride(); mo != nil && x.e.cfg.Filter.GetAllowModeOverride() {
		ok := len(x.e.cfg.Filter.GetAllowedOverrideModes()) == 0
		for _, m := range x.e.cfg.Filter.GetAllowedOverrideModes() {
			ok = ok || proto.Equal(m, mo)
		}
		if ok {
			x.mu.Lock()
			x.modes.override(mo)
			x.mu.Unlock()
		}
	}
	return h, out, nil
}

// applyBodyReply handles a BodyResponse. headersHeld says whether header
// mutations still apply (BUFFERED / BUFFERED_PARTIAL with headers SEND);
// validateCL enables validateContentLength (BUFFERED + SEND, design §3).
func (x *exchange) applyBodyReply(br *extprocv3.BodyResponse, h headerList, body []byte, headersHeld, removeCL, validateCL bool) (headerList, []byte, error) {
	cr := br.GetResponse()
	if headersHeld {
		var err error
		h, err = x.e.checker.applyHeaderMutation(h, cr.GetHeaderMutation(), mutationOpts{removeCL: removeCL, countRejected: x.e.countRejected})
		if err != nil {
			return h, body, err
		}
	}
	bm := cr.GetBodyMutation()
	if bm == nil {
		return h, body, nil
	}
	switch m := bm.GetMutation().(type) {
	case *extprocv3.BodyMutation_Body:
		body = append([]byte{}, m.Body...)
	case *extprocv3.BodyMutation_ClearBody:
		if m.ClearBody {
			body = []byte{}
		}
	case *extprocv3.BodyMutation_StreamedResponse:
		return h, body, errors.New("streamed_response outside FULL_DUPLEX_STREAMED")
	}
	if validateCL && headersHeld {
		if cl, ok := h.get("content-length"); ok && cl != strconv.Itoa(len(body)) {
			return h, body, errors.New("mismatch between content length and the length of the mutated body")
		}
	}
	return h, body, nil
}

func readAll(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxBodyRead+1))
	if err == nil && len(b) > maxBodyRead {
		err = fmt.Errorf("body larger than the harness limit of %d bytes", maxBodyRead)
	}
	return b, err
}

func chunks(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}
