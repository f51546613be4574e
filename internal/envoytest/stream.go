package envoytest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// attributesKey is the FilterName constant of ext_proc.cc (design §1).
const attributesKey = "envoy.filters.http.ext_proc"

type msgKind int

const (
	kindNone msgKind = iota
	kindReqHeaders
	kindReqBody
	kindReqTrailers
	kindRespHeaders
	kindRespBody
	kindRespTrailers
	kindImmediate
	kindOther
)

func (k msgKind) response() bool { return k >= kindRespHeaders && k <= kindRespTrailers }

func replyKind(r *extprocv3.ProcessingResponse) msgKind {
	switch r.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return kindReqHeaders
	case *extprocv3.ProcessingResponse_RequestBody:
		return kindReqBody
	case *extprocv3.ProcessingResponse_RequestTrailers:
		return kindReqTrailers
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return kindRespHeaders
	case *extprocv3.ProcessingResponse_ResponseBody:
		return kindRespBody
	case *extprocv3.ProcessingResponse_ResponseTrailers:
		return kindRespTrailers
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		return kindImmediate
	case nil:
		return kindNone
	}
	return kindOther // e.g. streamed_immediate_response: not supported outside FULL_DUPLEX
}

// localReply is an Envoy-generated (or ImmediateResponse) reply.
type localReply struct {
	status  int
	header  headerList
	body    []byte
	details string
}

// modes is the effective processing mode of one request (processing_mode.proto defaults).
type modes struct {
	reqHdr, respHdr   bool
	reqBody, respBody extprocfilterv3.ProcessingMode_BodySendMode
	reqTrl, respTrl   bool
}

func newModes(pm *extprocfilterv3.ProcessingMode) modes {
	return modes{
		reqHdr:   pm.GetRequestHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		respHdr:  pm.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		reqBody:  pm.GetRequestBodyMode(),
		respBody: pm.GetResponseBodyMode(),
		reqTrl:   pm.GetRequestTrailerMode() == extprocfilterv3.ProcessingMode_SEND,
		respTrl:  pm.GetResponseTrailerMode() == extprocfilterv3.ProcessingMode_SEND,
	}
}

// override applies a mode_override (design §5): DEFAULT header/trailer modes
// mean "no change", request_header_mode is ignored, body modes are replaced.
func (m *modes) override(o *extprocfilterv3.ProcessingMode) {
	if v := o.GetResponseHeaderMode(); v != extprocfilterv3.ProcessingMode_DEFAULT {
		m.respHdr = v == extprocfilterv3.ProcessingMode_SEND
	}
	if v := o.GetRequestTrailerMode(); v != extprocfilterv3.ProcessingMode_DEFAULT {
		m.reqTrl = v == extprocfilterv3.ProcessingMode_SEND
	}
	if v := o.GetResponseTrailerMode(); v != extprocfilterv3.ProcessingMode_DEFAULT {
		m.respTrl = v == extprocfilterv3.ProcessingMode_SEND
	}
	m.reqBody = o.GetRequestBodyMode()
	m.respBody = o.GetResponseBodyMode()
}

// exchange is the state of one HTTP request: Envoy's ext_proc Filter instance.
type exchange struct {
	e        *Envoy
	rec      *Exchange
	ctx      context.Context
	upCancel context.CancelFunc
	attrs    map[string]*structpb.Value

	mu           sync.Mutex
	stream       grpc.BidiStreamingClient[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]
	streamCancel context.CancelFunc
	outstanding  msgKind
	overridden   bool
	complete     bool        // processing_complete_: nothing more is sent, replies are ignored
	local        *localReply // terminal reply decided by the receiver or a timer
	replyCh      chan *extprocv3.ProcessingResponse
	timeoutCh    chan time.Duration
	stop         chan struct{}
	stopOnce     sync.Once
	sentFirst    bool
	attrsSent    [2]bool
	modes        modes
	wg           sync.WaitGroup
}

func (x *exchange) closeStop() { x.stopOnce.Do(func() { close(x.stop) }) }

// setLocal records a terminal local reply; the caller holds x.mu.
func (x *exchange) setLocal(lr *localReply) {
	if x.local == nil {
		x.local = lr
	}
	x.complete = true
	x.outstanding = kindNone
	if x.streamCancel != nil {
		x.streamCancel()
	}
	x.upCancel()
	x.closeStop()
}

func (x *exchange) errorReply(details string) *localReply {
	return &localReply{status: x.e.statusOnError, details: details}
}

// ensureStream opens the gRPC stream lazily at the first message (design §1).
func (x *exchange) ensureStream() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stream != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(x.ctx)
	x.e.stats.add(func(s *Stats) { s.StreamsStarted++ })
	stream, err := x.e.client.Process(ctx)
	if err != nil {
		cancel()
		return err
	}
	x.stream, x.streamCancel = stream, cancel
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		x.recvLoop(stream)
	}()
	return nil
}

func (x *exchange) recvLoop(stream grpc.BidiStreamingClient[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]) {
	for {
		resp, err := stream.Recv()
		if err != nil {
			x.mu.Lock()
			x.onStreamEnd(err)
			x.mu.Unlock()
			return
		}
		x.onMessage(resp)
	}
}

// onStreamEnd implements onGrpcClose / onGrpcError (design §5 failure table);
// the caller holds x.mu.
func (x *exchange) onStreamEnd(err error) {
	if x.complete {
		return // Envoy closed the stream itself, or processing already finished
	}
	x.complete = true
	x.outstanding = kindNone
	if errors.Is(err, io.EOF) {
		// OK close: continue unprocessed whatever failure_mode_allow says.
		x.closeStop()
		return
	}
	x.e.stats.add(func(s *Stats) { s.StreamsFailed++ })
	if x.e.cfg.Filter.GetFailureModeAllow() {
		x.e.stats.add(func(s *Stats) { s.FailureModeAllowed++ })
		x.closeStop()
		return
	}
	st := status.Convert(err)
	x.setLocal(x.errorReply(fmt.Sprintf("ext_proc_error_gRPC_error_%d{%s}", int(st.Code()), st.Message())))
}

func (x *exchange) onMessage(resp *extprocv3.ProcessingResponse) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rec.Received = append(x.rec.Received, resp)
	if x.complete {
		return // ExtraAfterImmediateResponse: ignored
	}
	if d := resp.GetOverrideMessageTimeout(); d != nil {
		x.onNewTimeout(d.AsDuration())
		return
	}
	k := replyKind(resp)
	switch {
	case k == kindImmediate && !x.e.cfg.Filter.GetDisableImmediateResponse():
		x.e.stats.add(func(s *Stats) { s.StreamMsgsReceived++ })
		x.applyMetadata(resp.GetDynamicMetadata())
		x.setLocal(x.immediateReply(resp.GetImmediateResponse()))
		return
	case k == kindNone, k == kindOther, k == kindImmediate, k != x.outstanding:
		x.spurious()
		return
	}
	x.e.stats.add(func(s *Stats) { s.StreamMsgsReceived++ })
	x.applyMetadata(resp.GetDynamicMetadata())
	x.outstanding = kindNone
	x.replyCh <- resp
}

// spurious handles a reply that matches no outstanding message, an empty
// ProcessingResponse or a disabled ImmediateResponse (design §5, runtime guard
// ext_proc_fail_close_spurious_resp); the caller holds x.mu.
func (x *exchange) spurious() {
	x.e.stats.add(func(s *Stats) { s.SpuriousMsgsReceived++ })
	if x.e.cfg.Filter.GetFailureModeAllow() {
		x.e.stats.add(func(s *Stats) { s.FailureModeAllowed++ })
		x.complete = true
		x.outstanding = kindNone
		if x.streamCancel != nil {
			x.streamCancel()
		}
		x.closeStop()
		return
	}
	x.setLocal(x.errorReply("ext_proc_error_spurious_message"))
}

// onNewTimeout implements override_message_timeout (design §5): honoured once
// per state when max_message_timeout > 0 and 1ms <= d <= max; the message's
// other fields are ignored. The caller holds x.mu.
func (x *exchange) onNewTimeout(d time.Duration) {
	max := x.e.cfg.Filter.GetMaxMessageTimeout().AsDuration()
	if x.e.cfg.Filter.GetMaxMessageTimeout() == nil || max <= 0 || d < time.Millisecond || d > max ||
		x.outstanding == kindNone || x.overridden {
		x.e.stats.add(func(s *Stats) { s.OverrideMessageTimeoutIgnored++ })
		return
	}
	x.overridden = true
	x.e.stats.add(func(s *Stats) { s.OverrideMessageTimeoutReceived++ })
	select {
	case x.timeoutCh <- d:
	default:
	}
}

// applyMetadata keeps only namespaces listed in
// metadata_options.receiving_namespaces.untyped whose value is a Struct
// (design §5 "Dynamic metadata emitted by the processor"); the caller holds x.mu.
func (x *exchange) applyMetadata(md *structpb.Struct) {
	allowed := x.e.cfg.Filter.GetMetadataOptions().GetReceivingNamespaces().GetUntyped()
	for ns, v := range md.GetFields() {
		sv := v.GetStructValue()
		if sv == nil || !contains(allowed, ns) {
			continue
		}
		cur := x.rec.Metadata[ns]
		if cur == nil {
			cur = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			x.rec.Metadata[ns] = cur
		}
		for k, fv := range sv.GetFields() {
			cur.Fields[k] = proto.Clone(fv).(*structpb.Value)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// immediateReply builds the local reply of an ImmediateResponse (design §4):
// missing or <200 status → 200, headers subject to the mutation rules (a
// rejection is only logged), text/plain default, details with whitespace → '_'.
func (x *exchange) immediateReply(ir *extprocv3.ImmediateResponse) *localReply {
	code := int(ir.GetStatus().GetCode())
	if code < 200 || code > 999 {
		code = 200
	}
	lr := &localReply{status: code, body: ir.GetBody(), details: strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' {
			return '_'
		}
		return r
	}, ir.GetDetails())}
	// A rejected mutation is only logged by Envoy; the reply is still sent.
	h, _ := x.e.checker.applyHeaderMutation(nil, ir.GetHeaders(), mutationOpts{countRejected: x.e.countRejected})
	lr.header = h
	return lr
}

// decorate fills metadata_context, protocol_config (first message of the
// stream) and attributes (first message of each direction) — design §1.
// The caller holds x.mu.
func (x *exchange) decorate(k msgKind, req *extprocv3.ProcessingRequest) {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	for _, ns := range x.e.cfg.Filter.GetMetadataOptions().GetForwardingNamespaces().GetUntyped() {
		if v, ok := x.rec.Metadata[ns]; ok {
			md.FilterMetadata[ns] = proto.Clone(v).(*structpb.Struct)
		}
	}
	req.MetadataContext = md
	if !x.sentFirst {
		x.sentFirst = true
		req.ProtocolConfig = &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  x.modes.reqBody,
			ResponseBodyMode: x.modes.respBody,
		}
	}
	dir, names := 0, x.e.cfg.Filter.GetRequestAttributes()
	if k.response() {
		dir, names = 1, x.e.cfg.Filter.GetResponseAttributes()
	}
	if x.attrsSent[dir] {
		return
	}
	x.attrsSent[dir] = true
	if len(names) == 0 {
		return
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, n := range names {
		if v, ok := x.attrs[n]; ok {
			s.Fields[n] = v
		}
	}
	req.Attributes = map[string]*structpb.Struct{attributesKey: s}
}

// call sends one message and waits for its reply. It returns (reply, nil)
// on a matching reply, (nil, nil) when processing is complete and the request
// continues unprocessed, and (nil, lr) when the exchange ends with a local
// reply. With wait false it only sends.
func (x *exchange) call(k msgKind, req *extprocv3.ProcessingRequest, wait bool) (*extprocv3.ProcessingResponse, *localReply) {
	x.mu.Lock()
	if x.local != nil || x.complete {
		defer x.mu.Unlock()
		return nil, x.local
	}
	x.mu.Unlock()
	if err := x.ensureStream(); err != nil {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.onStreamEnd(err)
		return nil, x.local
	}
	x.mu.Lock()
	x.decorate(k, req)
	x.outstanding = k
	x.overridden = false
	select {
	case <-x.timeoutCh:
	default:
	}
	x.rec.Sent = append(x.rec.Sent, req)
	stream := x.stream
	x.mu.Unlock()
	if err := stream.Send(req); err != nil {
		// The stream's real status arrives through Recv.
		select {
		case <-x.stop:
		case <-time.After(5 * time.Second):
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		return nil, x.local
	}
	x.e.stats.add(func(s *Stats) { s.StreamMsgsSent++ })
	if !wait {
		return nil, nil
	}
	timer := time.NewTimer(x.e.messageTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-x.replyCh:
			return r, nil
		case d := <-x.timeoutCh:
			timer.Reset(d)
		case <-x.stop:
			select {
			case r := <-x.replyCh:
				return r, nil
			default:
			}
			x.mu.Lock()
			defer x.mu.Unlock()
			return nil, x.local
		case <-timer.C:
			x.mu.Lock()
			defer x.mu.Unlock()
			select {
			case r := <-x.replyCh:
				return r, nil
			default:
			}
			if x.complete {
				return nil, x.local
			}
			x.e.stats.add(func(s *Stats) { s.MessageTimeouts++ })
			if x.e.cfg.Filter.GetFailureModeAllow() {
				x.e.stats.add(func(s *Stats) { s.FailureModeAllowed++ })
				x.complete = true
				x.outstanding = kindNone
				x.streamCancel()
				return nil, nil
			}
			// Hard-coded 504 since 1.31 (design §5).
			x.setLocal(&localReply{status: 504, details: "ext_proc_error_per-message_timeout_exceeded"})
			return nil, x.local
		}
	}
}

// finish half-closes and resets the stream (client_impl.cc close()) and waits
// for the receiver goroutine.
func (x *exchange) finish() {
	x.mu.Lock()
	x.complete = true
	stream, cancel := x.stream, x.streamCancel
	x.mu.Unlock()
	if stream != nil {
		_ = stream.CloseSend()
		cancel()
	}
	x.wg.Wait()
}

// lateLocal reports a local reply decided asynchronously (spurious message,
// ImmediateResponse, stream error) while the harness was busy elsewhere.
func (x *exchange) lateLocal() *localReply {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.local
}
