package grpcserver

import (
	"bytes"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, n := range []int{0, 100, 40 << 10, 1<<20 + 1} { // below and above the pooling threshold, above a tier
		body := bytes.Repeat([]byte{'x'}, n)
		in := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}}
		data, err := codec{}.Marshal(in)
		if err != nil {
			t.Fatalf("%d bytes: Marshal: %v", n, err)
		}
		want, _ := proto.Marshal(in)
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: Marshal wrote %d bytes that differ from proto.Marshal's %d", n, len(got), len(want))
		}
		var out extprocv3.ProcessingRequest
		if err := (codec{}).Unmarshal(data, &out); err != nil {
			t.Fatalf("%d bytes: Unmarshal: %v", n, err)
		}
		data.Free() // the buffer goes back to the pool; out must not share it
		if !proto.Equal(in, &out) {
			t.Fatalf("%d bytes: round trip changed the message", n)
		}
	}
}

func TestCodecRefusesNonProto(t *testing.T) {
	if _, err := (codec{}).Marshal(struct{}{}); err == nil || !strings.Contains(err.Error(), "not a proto.Message") {
		t.Errorf("Marshal(struct{}{}) error = %v", err)
	}
	if err := (codec{}).Unmarshal(nil, new(int)); err == nil || !strings.Contains(err.Error(), "not a proto.Message") {
		t.Errorf("Unmarshal into *int error = %v", err)
	}
}

// TestBufferPoolTiers checks the point of the pool: a buffer is never more than
// twice the message it holds, so clearing it costs no more than that.
func TestBufferPoolTiers(t *testing.T) {
	for _, n := range []int{300, 33 << 10, 45 << 10, 600 << 10, 3 << 20} {
		b := bufferPool.Get(n)
		if len(*b) != n || cap(*b) > 2*n {
			t.Errorf("Get(%d): len %d, cap %d; want len %d and cap ≤ %d", n, len(*b), cap(*b), n, 2*n)
		}
		bufferPool.Put(b)
	}
}
