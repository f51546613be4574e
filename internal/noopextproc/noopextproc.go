// Package noopextproc is the benchmark baseline: an Envoy ext_proc server that answers
// every message with CONTINUE and does no other work.
//
// Each ProcessingRequest gets exactly one reply of its own type (request_headers →
// RequestHeaders, request_body → RequestBody, …) holding an empty CommonResponse, which
// Envoy reads as CONTINUE with no mutation (envoy-extproc.md §1 "One response per
// message", §10 item 13). Comparing a real processor with this one isolates the cost of
// its own work from the cost of gRPC, HTTP/2 and protobuf.
package noopextproc

import (
	"errors"
	"io"
	"net"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quantaseal/gateway/internal/grpcserver"
)

// maxMessageBytes matches the gateway's default gRPC message limit, so a baseline run
// accepts the same buffered bodies the gateway does.
const maxMessageBytes = 16 << 20

// Server is the CONTINUE-everything ext_proc server.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	grpc *grpc.Server
}

// New returns a Server with its own gRPC server, ready for [Server.Serve]. Its stream
// workers run until [Server.Stop] or [Server.GracefulStop].
func New() *Server {
	s := &Server{}
	// The gateway's gRPC server settings, so the comparison isolates the gateway's own work.
	s.grpc = grpc.NewServer(grpcserver.Options(maxMessageBytes)...)
	extprocv3.RegisterExternalProcessorServer(s.grpc, s)
	return s
}

// Serve accepts streams on ln until [Server.Stop] or [Server.GracefulStop] is called; it
// then returns nil. Shutdown order: GracefulStop lets open streams finish (Envoy closes
// each after its last reply), Stop cancels them.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.grpc.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// ServeLoopback starts a Server on a free 127.0.0.1 port, for tests and benchmarks
// that need a baseline in process. stop stops it and returns what Serve returned.
func ServeLoopback() (addr string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := New()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	return ln.Addr().String(), func() error { s.Stop(); return <-served }, nil
}

// GracefulStop stops accepting streams and waits for the open ones to end.
func (s *Server) GracefulStop() { s.grpc.GracefulStop() }

// Stop closes the listener and every open stream at once.
func (s *Server) Stop() { s.grpc.Stop() }

// Process answers each message with CONTINUE until Envoy closes the stream. Envoy ends
// a stream with a half-close and a reset, which arrive here as io.EOF or Canceled: both
// are a normal end (envoy-extproc.md §10 item 15).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		resp, err := Reply(req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
	}
}

// Reply returns the CONTINUE reply of req's type. A message kind it does not know (one
// from a newer Envoy) is an Unimplemented error, which fails the stream closed rather
// than leaving Envoy waiting.
func Reply(req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	cont := &extprocv3.CommonResponse{}
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
			RequestHeaders: &extprocv3.HeadersResponse{Response: cont}}}, nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
			ResponseHeaders: &extprocv3.HeadersResponse{Response: cont}}}, nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{
			RequestBody: &extprocv3.BodyResponse{Response: cont}}}, nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{Response: cont}}}, nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{
			RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{
			ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	}
	return nil, status.Error(codes.Unimplemented, "noopextproc: unsupported ProcessingRequest")
}
