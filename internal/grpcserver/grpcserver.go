// Package grpcserver holds the gRPC server settings that the gateway's ext_proc server
// and the no-op baseline share, so that a benchmark compares their work and not their
// configuration.
package grpcserver

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// StreamWorkers is how many goroutines the gRPC server keeps for running streams.
// A stream handler that starts on a fresh goroutine grows its stack through several
// runtime.morestack copies on every call (the gateway's pipeline is deep); a pooled
// worker keeps its grown stack (grpc-go resets it every 65,536 streams). Workers are
// used only while one is idle, so the pool is sized for the streams in flight at once
// — each holds its worker while its audit event commits — and grpc-go falls back to
// a new goroutine per stream beyond it.
const StreamWorkers = 256

// Options returns the server options: message size limits, the stream workers, and
// a buffer pool (with the codec that uses it) sized for ext_proc's messages.
func Options(maxMessageBytes int) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.NumStreamWorkers(StreamWorkers),
		experimental.BufferPool(bufferPool),
		grpc.ForceServerCodecV2(codec{}),
	}
}

// bufferPool has a tier for every power of two from 256 B to 4 MiB.
//
// grpc-go's default pool (v1.85, mem.DefaultBufferPool) has tiers of 256 B, 4 KiB,
// 16 KiB, 32 KiB and 1 MiB, and zeroes a pooled buffer's whole capacity on every
// Get. A message between 32 KiB and 1 MiB — a buffered Okta page, an envelope —
// therefore costs a 1 MiB clear each time it is read or written: 8% of the gateway's
// CPU on envelope calls, in a profile of the bench's transparent_envelope scenario.
// With a tier per power of two a buffer is at most twice its message, and so is
// its clear.
var bufferPool = func() mem.BufferPool {
	exps := make([]uint8, 0, 15)
	for e := uint8(8); e <= 22; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(fmt.Sprintf("grpcserver: buffer pool: %v", err)) // the exponents are constants
	}
	return p
}()

// codec is grpc-go's proto codec with bufferPool in place of mem.DefaultBufferPool,
// which the built-in codec uses regardless of the server's buffer pool. Only
// protobuf API v2 messages are served here (go-control-plane's and the health
// service's).
type codec struct{}

var _ encoding.CodecV2 = codec{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("grpcserver: marshal: %T is not a proto.Message", v)
	}
	// Size first, then MarshalAppend with UseCachedSize, as grpc-go's codec does:
	// the message is not mutated in between.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := bufferPool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		bufferPool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, bufferPool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("grpcserver: unmarshal: %T is not a proto.Message", v)
	}
	buf := data.MaterializeToBuffer(bufferPool)
	defer buf.Free()
	// proto.Unmarshal copies bytes fields, so nothing refers to buf once it returns.
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
