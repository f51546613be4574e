package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/status"
)

// Phase is one message of a stream, whose reply time is measured.
type Phase int

// The phases, in stream order.
const (
	PhaseRequestHeaders Phase = iota
	PhaseRequestBody
	PhaseResponseHeaders
	PhaseResponseBody
	numPhases
)

// AllPhases lists every phase in stream order.
func AllPhases() []Phase {
	return []Phase{PhaseRequestHeaders, PhaseRequestBody, PhaseResponseHeaders, PhaseResponseBody}
}

func (p Phase) String() string {
	switch p {
	case PhaseRequestHeaders:
		return "request_headers"
	case PhaseRequestBody:
		return "request_body"
	case PhaseResponseHeaders:
		return "response_headers"
	case PhaseResponseBody:
		return "response_body"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Error kinds counted in [Result.Errors].
const (
	ErrKindTimeout    = "message_timeout"  // no reply within the message timeout (Envoy: 504)
	ErrKindClosedOK   = "closed_ok"        // the stream ended with OK while a reply was due (Envoy: continue unprocessed)
	ErrKindSpurious   = "spurious"         // an empty reply (Envoy: 500)
	ErrKindMismatch   = "mismatch"         // a reply of the wrong type (Envoy: 500)
	ErrKindValueSet   = "header_value_set" // a header mutation using value instead of raw_value
	ErrKindCanceled   = "canceled"         // the run ended before the stream did
	ErrKindInspect    = "inspect"          // Config.Inspect rejected a reply
	errKindGRPCPrefix = "grpc_"            // + the status code: the processor failed the stream
)

// outcome is how one request ended.
type outcome struct {
	denied       bool
	denyStatus   int
	errKind      string
	err          error
	total        time.Duration
	lag          time.Duration            // open loop: actual start − scheduled start; -1 in the closed loop
	phases       [numPhases]time.Duration // 0 when the message was not sent
	overrides    int                      // override_message_timeout replies
	modeOverride bool                     // a mode_override was applied
}

// exchange runs the messages of one request on one stream.
type exchange struct {
	r        *runner
	stream   extprocv3.ExternalProcessor_ProcessClient
	timer    *time.Timer
	timedOut atomic.Bool
	first    bool
	inspect  bool
	out      outcome
}

// one plays one HTTP request through the processor. scheduled is when an open-loop
// run meant it to start; its total latency runs from then, not from the moment it did
// start, so that the generator's own delays are not hidden (zero: the closed loop,
// which starts a request as soon as the previous one ends and measures from now).
func (r *runner) one(ctx context.Context, inspect bool, scheduled time.Time) outcome {
	start := time.Now()
	lag := time.Duration(-1)
	if !scheduled.IsZero() {
		lag, start = max(0, start.Sub(scheduled)), scheduled
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := r.conns[r.next.Add(1)%uint64(len(r.conns))]
	x := &exchange{r: r, first: true, inspect: inspect && r.cfg.Inspect != nil}
	x.out.lag = lag
	if r.cfg.MessageTimeout > 0 {
		x.timer = time.AfterFunc(time.Hour, func() { x.timedOut.Store(true); cancel() })
		x.timer.Stop()
		defer x.timer.Stop()
	}
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		x.fail(errKindGRPCPrefix+status.Code(err).String(), fmt.Errorf("open stream: %w", err))
		return x.out
	}
	x.stream = stream
	x.play()
	if x.out.errKind == "" && ctx.Err() == nil {
		// Envoy's closeStream + resetStream once the last reply is in.
		_ = stream.CloseSend()
	}
	cancel()
	x.out.total = time.Since(start)
	if x.out.errKind != "" && r.ctx.Err() != nil && x.out.errKind != ErrKindTimeout {
		x.out.errKind = ErrKindCanceled
	}
	return x.out
}

func (x *exchange) fail(kind string, err error) {
	x.out.errKind, x.out.err = kind, err
}

// play sends the messages in the order Envoy would (envoy-extproc.md §1).
func (x *exchange) play() {
	p := x.r.p
	m := initialModes(p.mode)

	if m.reqHeaders {
		resp, ok := x.call(PhaseRequestHeaders, &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: p.requestHeaders(x.r.requestID())}})
		if !ok {
			return
		}
		x.headersReply(&m, resp, resp.GetRequestHeaders(), true)
	}
	if p.reqBody != nil && m.reqBody != extprocfilterv3.ProcessingMode_NONE {
		if _, ok := x.call(PhaseRequestBody, &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: p.reqBody}}); !ok {
			return
		}
	}
	if m.respHeaders {
		resp, ok := x.call(PhaseResponseHeaders, &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: p.respHeaders}})
		if !ok {
			return
		}
		x.headersReply(&m, resp, resp.GetResponseHeaders(), false)
	}
	if p.respBody != nil && m.respBody != extprocfilterv3.ProcessingMode_NONE {
		if _, ok := x.call(PhaseResponseBody, &extprocv3.ProcessingRequest{
			Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: p.respBody}}); !ok {
			return
		}
	}
}

// headersReply applies what a headers reply changes about the rest of the stream.
func (x *exchange) headersReply(m *modes, resp *extprocv3.ProcessingResponse, hr *extprocv3.HeadersResponse, request bool) {
	if o := resp.GetModeOverride(); o != nil && x.r.p.sc.AllowModeOverride {
		m.override(o)
		x.out.modeOverride = true
	}
	// CONTINUE_AND_REPLACE replaces the body of that direction; Envoy then sends no
	// body message for it (envoy-extproc.md §3).
	if hr.GetResponse().GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE {
		if request {
			m.reqBody = extprocfilterv3.ProcessingMode_NONE
		} else {
			m.respBody = extprocfilterv3.ProcessingMode_NONE
		}
	}
}

// call sends one message and waits for its reply. ok is false when the stream is
// over: a denial or an error, recorded in x.out.
func (x *exchange) call(phase Phase, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, bool) {
	if x.first {
		x.first = false
		req.ProtocolConfig = &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  x.r.p.mode.GetRequestBodyMode(),
			ResponseBodyMode: x.r.p.mode.GetResponseBodyMode(),
		}
	}
	if phase == PhaseRequestBody || phase == PhaseResponseBody {
		x.r.bodies.inc()
		defer x.r.bodies.dec()
	}
	start := time.Now()
	if x.timer != nil {
		x.timer.Reset(x.r.cfg.MessageTimeout)
	}
	if err := x.stream.Send(req); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; Recv says how.
			_, err = x.stream.Recv()
		}
		x.recvFailed(phase, err)
		return nil, false
	}
	overridden := false
	for {
		resp, err := x.stream.Recv()
		if err != nil {
			x.recvFailed(phase, err)
			return nil, false
		}
		if d := resp.GetOverrideMessageTimeout(); d != nil {
			// Envoy treats such a reply as a timer change only and ignores its other
			// fields; the real reply must follow (envoy-extproc.md §5 "Timeouts").
			x.out.overrides++
			od := d.AsDuration()
			if x.timer != nil && !overridden && x.r.cfg.MaxMessageTimeout > 0 &&
				od >= time.Millisecond && od <= x.r.cfg.MaxMessageTimeout {
				overridden = true
				x.timer.Reset(od)
			}
			continue
		}
		if x.timer != nil {
			x.timer.Stop()
		}
		x.out.phases[phase] = time.Since(start)
		if ir := resp.GetImmediateResponse(); ir != nil {
			x.out.denied = true
			// A missing status, or one below 200, reaches the client as 200 (§10 item 4).
			x.out.denyStatus = int(ir.GetStatus().GetCode())
			if x.out.denyStatus < 200 {
				x.out.denyStatus = 200
			}
			return resp, false
		}
		if resp.GetResponse() == nil {
			x.fail(ErrKindSpurious, fmt.Errorf("%s: empty ProcessingResponse", phase))
			return nil, false
		}
		if !answers(phase, resp) {
			x.fail(ErrKindMismatch, fmt.Errorf("%s answered with %T", phase, resp.GetResponse()))
			return nil, false
		}
		if err := rawOnly(resp); err != nil {
			x.fail(ErrKindValueSet, fmt.Errorf("%s: %w", phase, err))
			return nil, false
		}
		if x.inspect {
			if err := x.r.cfg.Inspect(phase, resp); err != nil {
				x.fail(ErrKindInspect, fmt.Errorf("%s: %w", phase, err))
				return nil, false
			}
		}
		return resp, true
	}
}

func (x *exchange) recvFailed(phase Phase, err error) {
	switch {
	case x.timedOut.Load():
		x.fail(ErrKindTimeout, fmt.Errorf("%s: no reply within %s", phase, x.r.cfg.MessageTimeout))
	case errors.Is(err, io.EOF):
		x.fail(ErrKindClosedOK, fmt.Errorf("%s: the processor closed the stream with OK before replying", phase))
	default:
		x.fail(errKindGRPCPrefix+status.Code(err).String(), fmt.Errorf("%s: %w", phase, err))
	}
}

// answers reports whether resp is the reply type of phase.
func answers(phase Phase, resp *extprocv3.ProcessingResponse) bool {
	switch resp.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		return phase == PhaseRequestHeaders
	case *extprocv3.ProcessingResponse_RequestBody:
		return phase == PhaseRequestBody
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		return phase == PhaseResponseHeaders
	case *extprocv3.ProcessingResponse_ResponseBody:
		return phase == PhaseResponseBody
	}
	return false
}

// rawOnly checks that every header the reply sets uses raw_value: Envoy ≥ 1.27 reads
// only raw_value and rejects a header with both (envoy-extproc.md §2, §10 item 1).
func rawOnly(resp *extprocv3.ProcessingResponse) error {
	var cr *extprocv3.CommonResponse
	switch r := resp.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_RequestHeaders:
		cr = r.RequestHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		cr = r.ResponseHeaders.GetResponse()
	case *extprocv3.ProcessingResponse_RequestBody:
		cr = r.RequestBody.GetResponse()
	case *extprocv3.ProcessingResponse_ResponseBody:
		cr = r.ResponseBody.GetResponse()
	}
	for _, h := range cr.GetHeaderMutation().GetSetHeaders() {
		if h.GetHeader().GetValue() != "" {
			return fmt.Errorf("header %q is set in value, not raw_value", h.GetHeader().GetKey())
		}
	}
	return nil
}
