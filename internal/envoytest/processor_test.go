package envoytest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ---- scripted ext_proc server

// script answers one ProcessingRequest. It returns the replies to send, in
// order, and an optional terminal error: errOKClose ends the stream with OK,
// any other error ends it with that status.
type script func(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error)

var errOKClose = errors.New("close with OK")

type processor struct {
	extprocv3.UnimplementedExternalProcessorServer
	fn    script
	delay func(req *extprocv3.ProcessingRequest) time.Duration
	// between is slept between consecutive replies to one message.
	between time.Duration
}

func (p *processor) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil // io.EOF or Canceled: Envoy closed the stream (design §10.15)
		}
		if p.delay != nil {
			select {
			case <-time.After(p.delay(req)):
			case <-s.Context().Done():
				return nil
			}
		}
		replies, ferr := p.fn(req)
		for i, r := range replies {
			if r == nil {
				continue
			}
			if i > 0 && p.between > 0 {
				select {
				case <-time.After(p.between):
				case <-s.Context().Done():
					return nil
				}
			}
			if err := s.Send(r); err != nil {
				return nil
			}
		}
		if errors.Is(ferr, errOKClose) {
			return nil
		}
		if ferr != nil {
			return ferr
		}
	}
}

// startProcessor serves p on loopback and returns a client connection.
func startProcessor(t *testing.T, p *processor) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	extprocv3.RegisterExternalProcessorServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return conn
}

// upstream is a recording upstream server.
type upstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []gotRequest
	handler http.HandlerFunc
}

type gotRequest struct {
	Method, Path, Host string
	Header             http.Header
	Body               string
	ContentLength      int64
}

func startUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{handler: h}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, gotRequest{r.Method, r.RequestURI, r.Host, r.Header.Clone(), string(b), r.ContentLength})
		u.mu.Unlock()
		if u.handler != nil {
			u.handler(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) requests() []gotRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]gotRequest(nil), u.got...)
}

type setup struct {
	e  *Envoy
	up *upstream
}

// newSetup starts a processor, an upstream and the fake Envoy. Unless the
// test sets message_timeout, it is raised to 2 s so that a loaded CI machine
// does not turn ordinary replies into 504s; timer tests use
// newSetupDefaultTimeout.
func newSetup(t *testing.T, p *processor, cfg Config, h http.HandlerFunc) setup {
	t.Helper()
	if cfg.Filter == nil {
		cfg.Filter = &extprocfilterv3.ExternalProcessor{}
	} else {
		cfg.Filter = proto.Clone(cfg.Filter).(*extprocfilterv3.ExternalProcessor)
	}
	if cfg.Filter.MessageTimeout == nil {
		cfg.Filter.MessageTimeout = durationpb.New(2 * time.Second)
	}
	return newSetupDefaultTimeout(t, p, cfg, h)
}

// newSetupDefaultTimeout is newSetup keeping Envoy's 200 ms default.
func newSetupDefaultTimeout(t *testing.T, p *processor, cfg Config, h http.HandlerFunc) setup {
	t.Helper()
	up := startUpstream(t, h)
	cfg.Processor = startProcessor(t, p)
	cfg.Upstream = up.srv.URL
	return setup{e: New(t, cfg), up: up}
}

type result struct {
	status int
	header http.Header
	body   string
	err    error
}

func (s setup) do(t *testing.T, method, path string, body io.Reader, hdr map[string][]string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.e.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := s.e.Client().Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// ---- reply builders

func common(cr *extprocv3.CommonResponse, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{HeaderMutation: cr.GetHeaderMutation()}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{HeaderMutation: cr.GetHeaderMutation()}}}
	}
	panic("unknown request type")
}

func cont(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	return common(&extprocv3.CommonResponse{}, req)
}

func continueAll(req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
	return []*extprocv3.ProcessingResponse{cont(req)}, nil
}

func set(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, RawValue: []byte(value)}}
}

func isKind(req *extprocv3.ProcessingRequest, name string) bool { return kindName(req) == name }

func kindName(req *extprocv3.ProcessingRequest) string {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return "request_trailers"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	}
	return "?"
}

// describe summarises a sent message: "request_body \"abc\" eos=true".
func describe(req *extprocv3.ProcessingRequest) string {
	n := kindName(req)
	switch {
	case req.GetRequestHeaders() != nil:
		return fmt.Sprintf("%s eos=%t", n, req.GetRequestHeaders().GetEndOfStream())
	case req.GetResponseHeaders() != nil:
		return fmt.Sprintf("%s eos=%t", n, req.GetResponseHeaders().GetEndOfStream())
	case req.GetRequestBody() != nil:
		return fmt.Sprintf("%s %q eos=%t", n, req.GetRequestBody().GetBody(), req.GetRequestBody().GetEndOfStream())
	case req.GetResponseBody() != nil:
		return fmt.Sprintf("%s %q eos=%t", n, req.GetResponseBody().GetBody(), req.GetResponseBody().GetEndOfStream())
	}
	return n
}

func describeAll(x *Exchange) []string {
	var out []string
	for _, r := range x.Sent {
		out = append(out, describe(r))
	}
	return out
}

func pm(reqHdr extprocfilterv3.ProcessingMode_HeaderSendMode, reqBody extprocfilterv3.ProcessingMode_BodySendMode,
	respHdr extprocfilterv3.ProcessingMode_HeaderSendMode, respBody extprocfilterv3.ProcessingMode_BodySendMode) *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{RequestHeaderMode: reqHdr, RequestBodyMode: reqBody, ResponseHeaderMode: respHdr, ResponseBodyMode: respBody}
}

const (
	send     = extprocfilterv3.ProcessingMode_SEND
	skip     = extprocfilterv3.ProcessingMode_SKIP
	none     = extprocfilterv3.ProcessingMode_NONE
	buffered = extprocfilterv3.ProcessingMode_BUFFERED
	streamed = extprocfilterv3.ProcessingMode_STREAMED
	partial  = extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL
)
