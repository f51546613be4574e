package envoytest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

const (
	modeNone     = extprocfilterv3.ProcessingMode_NONE
	modeStreamed = extprocfilterv3.ProcessingMode_STREAMED
	modeBuffered = extprocfilterv3.ProcessingMode_BUFFERED
	modePartial  = extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL
)

func (x *exchange) currentModes() modes {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.modes
}

// mutationFailure is the status_on_error local reply for a failed mutation;
// failure_mode_allow does not apply (design §5 failure table, handleErrorResponse).
func (x *exchange) mutationFailure(err error) *localReply {
	x.mu.Lock()
	x.complete = true
	x.mu.Unlock()
	return x.errorReply(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' {
			return '_'
		}
		return r
	}, err.Error()))
}

func reqHeadersMsg(h headerList, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: eos}}}
}

func respHeadersMsg(h headerList, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: eos}}}
}

func bodyMsg(resp bool, b []byte, eos bool) *extprocv3.ProcessingRequest {
	hb := &extprocv3.HttpBody{Body: append([]byte{}, b...), EndOfStream: eos}
	if resp {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}}
}

func trailersMsg(resp bool, t headerList) *extprocv3.ProcessingRequest {
	ht := &extprocv3.HttpTrailers{Trailers: t.proto()}
	if resp {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: ht}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: ht}}
}

func getBody(resp bool, r *extprocv3.ProcessingResponse) *extprocv3.BodyResponse {
	if resp {
		return r.GetResponseBody()
	}
	return r.GetRequestBody()
}

// processBody runs the body phase of one direction (design §1 table, §3).
// It returns the (possibly mutated) headers and body; write, when non-nil, is
// called for each processed STREAMED chunk.
func (x *exchange) processBody(resp bool, m extprocfilterv3.ProcessingMode_BodySendMode, sendHeaders bool,
	h headerList, body []byte, hasTrailers bool, write func([]byte)) (headerList, []byte, *localReply) {
	k := kindReqBody
	if resp {
		k = kindRespBody
	}
	removeCL := x.shouldRemoveCL(m, sendHeaders)
	switch m {
	case modeBuffered:
		r, lr := x.call(k, bodyMsg(resp, body, !hasTrailers), true)
		if lr != nil {
			return h, body, lr
		}
		if r == nil {
			return h, body, nil
		}
		h2, b2, err := x.applyBodyReply(getBody(resp, r), h, body, sendHeaders, removeCL, sendHeaders && !removeCL)
		if err != nil {
			return h, body, x.mutationFailure(err)
		}
		return h2, b2, nil
	case modePartial:
		part, rest := body, []byte(nil)
		if len(part) > x.e.cfg.BufferLimit {
			part, rest = body[:x.e.cfg.BufferLimit], body[x.e.cfg.BufferLimit:]
		}
		r, lr := x.call(k, bodyMsg(resp, part, rest == nil && !hasTrailers), true)
		if lr != nil {
			return h, body, lr
		}
		if r == nil {
			return h, body, nil
		}
		h2, b2, err := x.applyBodyReply(getBody(resp, r), h, part, sendHeaders, true, false)
		if err != nil {
			return h, body, x.mutationFailure(err)
		}
		return h2, append(b2, rest...), nil
	case modeStreamed:
		// Header mutations in STREAMED body replies are ignored (CommonResponse doc).
		var out []byte
		cs := chunks(body, x.e.cfg.ChunkSize)
		for i, c := range cs {
			nb := c
			r, lr := x.call(k, bodyMsg(resp, c, i == len(cs)-1 && !hasTrailers), true)
			if lr != nil {
				return h, out, lr
			}
			if r != nil {
				var err error
				if _, nb, err = x.applyBodyReply(getBody(resp, r), h, c, false, true, false); err != nil {
					return h, out, x.mutationFailure(err)
				}
			}
			out = append(out, nb...)
			if write != nil {
				write(nb)
			}
		}
		return h, out, nil
	}
	return h, body, nil
}

func (x *exchange) processTrailers(resp bool, t headerList) (headerList, *localReply) {
	k := kindReqTrailers
	if resp {
		k = kindRespTrailers
	}
	r, lr := x.call(k, trailersMsg(resp, t), true)
	if lr != nil || r == nil {
		return t, lr
	}
	tr := r.GetRequestTrailers()
	if resp {
		tr = r.GetResponseTrailers()
	}
	t2, err := x.e.checker.applyHeaderMutation(t, tr.GetHeaderMutation(), mutationOpts{countRejected: x.e.countRejected})
	if err != nil {
		return t, x.mutationFailure(err)
	}
	return t2, nil
}

// run is the filter chain for one request: ext_proc decode path, router,
// ext_proc encode path.
func (e *Envoy) run(x *exchange, r *http.Request, upCtx context.Context, d *downstream) {
	// What the HCM hands to the filters (design §2 "Which headers the processor sees").
	h := headerList{{":authority", r.Host}, {":path", r.RequestURI}, {":method", r.Method}, {":scheme", "http"}}
	h = append(h, sortedFields(r.Header)...)
	chunked := len(r.TransferEncoding) > 0
	if chunked {
		h = h.add("transfer-encoding", "chunked")
	}
	h = h.set("x-forwarded-proto", "http")
	if !h.has("x-request-id") {
		h = h.add("x-request-id", newRequestID())
	}
	x.fillAttributes(r, h)

	body, err := readAll(r.Body)
	if err != nil {
		d.local(&localReply{status: http.StatusBadRequest, details: "downstream_read_error_in_harness"})
		return
	}
	reqTrailers := sortedFields(r.Trailer)
	// HTTP/1: no Content-Length and not chunked, or Content-Length 0, means
	// headers with end_stream (codec_impl.cc; design §1).
	eos := r.ContentLength == 0 && !chunked
	limit := e.cfg.BufferLimit

	// ---- request headers
	m := x.currentModes()
	replaced := headersOutcome{}
	if m.reqHdr {
		msg := reqHeadersMsg(h, eos)
		if !eos && m.reqBody == modeBuffered && len(body) > limit {
			// The body overflows the buffer while the header reply is pending:
			// 413 local reply (filter_manager.cc requestDataTooLarge).
			x.call(kindReqHeaders, msg, false)
			d.local(&localReply{status: http.StatusRequestEntityTooLarge, body: []byte("Payload Too Large"), details: "request_payload_too_large"})
			return
		}
		resp, lr := x.call(kindReqHeaders, msg, true)
		if lr != nil {
			d.local(lr)
			return
		}
		if resp != nil {
			var err error
			h, replaced, err = x.applyHeadersReply(resp, resp.GetRequestHeaders(), h, x.shouldRemoveCL(m.reqBody, m.reqHdr))
			if err != nil {
				d.local(x.mutationFailure(err))
				return
			}
		}
	}
	m = x.currentModes()
	if x.shouldRemoveCL(m.reqBody, m.reqHdr) {
		h = h.remove("content-length")
	}

	// ---- request body and trailers
	if replaced.replaced {
		if replaced.replaceBody != nil {
			body = replaced.replaceBody // the downstream body is drained
		}
	} else {
		if !eos && m.reqBody != modeNone {
			if m.reqBody == modeBuffered && len(body) > limit {
				d.local(&localReply{status: http.StatusRequestEntityTooLarge, body: []byte("Payload Too Large"), details: "request_payload_too_large"})
				return
			}
			var lr *localReply
			h, body, lr = x.processBody(false, m.reqBody, m.reqHdr, h, body, len(reqTrailers) > 0, nil)
			if lr != nil {
				d.local(lr)
				return
			}
		}
		if m.reqTrl && len(reqTrailers) > 0 {
			var lr *localReply
			if reqTrailers, lr = x.processTrailers(false, reqTrailers); lr != nil {
				d.local(lr)
				return
			}
		}
	}
	if lr := x.lateLocal(); lr != nil {
		d.local(lr)
		return
	}

	// ---- router
	resp, lr := e.forward(x, upCtx, h, body, reqTrailers)
	if lr != nil {
		d.local(lr)
		return
	}
	e.respond(x, r, d, resp)
}

type upstreamResponse struct {
	header   headerList
	body     []byte
	trailers headerList
	eos      bool
}

func (e *Envoy) forward(x *exchange, ctx context.Context, h headerList, body []byte, trailers headerList) (*upstreamResponse, *localReply) {
	method := first(h.get(":method"))
	path := first(h.get(":path"))
	host := first(h.get(":authority"))
	if e.cfg.HostRewrite != "" {
		host = e.cfg.HostRewrite
	}
	up := &UpstreamRequest{Method: method, Path: path, Host: host, Body: append([]byte{}, body...), Trailers: trailers}
	for _, f := range h {
		if strings.HasPrefix(f.Key, ":") || f.Key == "host" || f.Key == "transfer-encoding" {
			continue
		}
		up.Headers = append(up.Headers, f)
	}
	x.rec.Upstream = up

	p, q, _ := strings.Cut(path, "?")
	req := &http.Request{
		Method: method,
		URL:    &url.URL{Scheme: e.upstreamURL.Scheme, Host: e.upstreamURL.Host, Opaque: p, RawQuery: q},
		Host:   host,
		Header: http.Header{},
	}
	for _, f := range up.Headers {
		req.Header.Add(f.Key, f.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // no Go default User-Agent
	}
	req.ContentLength = -1
	if cl, ok := headerList(up.Headers).get("content-length"); ok {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n != int64(len(body)) {
			// Envoy's codec would frame the body by the stale header; the
			// upstream then sees a broken request.
			return nil, &localReply{status: http.StatusServiceUnavailable, details: "upstream_reset_before_response_started{content_length_mismatch}"}
		}
		req.ContentLength = n
	} else if len(body) == 0 && len(trailers) == 0 {
		req.ContentLength = 0
	}
	if len(body) > 0 || req.ContentLength != 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	if len(trailers) > 0 {
		req.ContentLength = -1
		req.Trailer = http.Header{}
		for _, f := range trailers {
			req.Trailer.Add(f.Key, f.Value)
		}
	}
	start := time.Now()
	resp, err := e.upstream.Do(req.WithContext(ctx))
	if lr := x.lateLocal(); lr != nil {
		if err == nil {
			resp.Body.Close()
		}
		return nil, lr
	}
	if err != nil {
		return nil, &localReply{status: http.StatusServiceUnavailable, body: []byte("upstream connect error or disconnect/reset before headers"), details: "upstream_reset_before_response_started{connection_failure}"}
	}
	defer resp.Body.Close()
	ur := &upstreamResponse{header: headerList{{":status", strconv.Itoa(resp.StatusCode)}}}
	ur.header = append(ur.header, sortedFields(resp.Header)...)
	ur.header = ur.header.add("x-envoy-upstream-service-time", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	ur.body, err = readAll(resp.Body)
	if err != nil {
		return nil, &localReply{status: http.StatusServiceUnavailable, details: "upstream_reset_after_response_started"}
	}
	ur.trailers = sortedFields(resp.Trailer)
	ur.eos = req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0
	return ur, nil
}

func (e *Envoy) respond(x *exchange, r *http.Request, d *downstream, ur *upstreamResponse) {
	h, body, eos := ur.header, ur.body, ur.eos
	m := x.currentModes()
	replaced := headersOutcome{}
	if m.respHdr {
		msg := respHeadersMsg(h, eos)
		if !eos && m.respBody == modeBuffered && len(body) > e.cfg.BufferLimit {
			x.call(kindRespHeaders, msg, false)
			d.local(&localReply{status: http.StatusInternalServerError, body: []byte("Internal Server Error"), details: "response_payload_too_large"})
			return
		}
		resp, lr := x.call(kindRespHeaders, msg, true)
		if lr != nil {
			d.local(lr)
			return
		}
		if resp != nil {
			var err error
			h, replaced, err = x.applyHeadersReply(resp, resp.GetResponseHeaders(), h, x.shouldRemoveCL(m.respBody, m.respHdr))
			if err != nil {
				d.local(x.mutationFailure(err))
				return
			}
		}
	}
	m = x.currentModes()
	if x.shouldRemoveCL(m.respBody, m.respHdr) {
		h = h.remove("content-length")
	}
	if lr := x.lateLocal(); lr != nil {
		d.local(lr)
		return
	}
	trailers := ur.trailers
	switch {
	case replaced.replaced:
		if replaced.replaceBody != nil {
			body = replaced.replaceBody // upstream body drained, never sent to the processor
		}
	case eos || m.respBody == modeNone:
	case m.respBody == modeBuffered && len(body) > e.cfg.BufferLimit:
		d.local(&localReply{status: http.StatusInternalServerError, body: []byte("Internal Server Error"), details: "response_payload_too_large"})
		return
	case m.respBody == modeStreamed:
		// Headers go downstream after the header reply; a later failure resets the stream.
		d.writeHeaders(h)
		var lr *localReply
		if _, body, lr = x.processBody(true, m.respBody, m.respHdr, h, body, len(trailers) > 0, d.writeBody); lr != nil {
			d.local(lr)
			return
		}
	default:
		var lr *localReply
		if h, body, lr = x.processBody(true, m.respBody, m.respHdr, h, body, len(trailers) > 0, nil); lr != nil {
			d.local(lr)
			return
		}
	}
	if lr := x.lateLocal(); lr != nil {
		d.local(lr)
		return
	}
	if !d.committed {
		d.writeHeaders(h)
		if r.Method != http.MethodHead {
			d.writeBody(body)
		}
	}
	if !replaced.replaced && m.respTrl && len(trailers) > 0 {
		var lr *localReply
		if trailers, lr = x.processTrailers(true, trailers); lr != nil {
			d.local(lr)
			return
		}
	}
	d.writeTrailers(trailers)
}
