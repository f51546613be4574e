package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quantaseal/gateway/extproc"
)

// streamDriver plays Envoy on one ext_proc stream, step by step.
type streamDriver struct {
	t      *testing.T
	cancel context.CancelFunc
	s      extprocv3.ExternalProcessor_ProcessClient
	err    error // first error seen (stream ended)
}

func openStream(t *testing.T, conn *grpc.ClientConn) *streamDriver {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	return &streamDriver{t: t, cancel: cancel, s: s}
}

func (d *streamDriver) send(m *extprocv3.ProcessingRequest) {
	if d.err == nil {
		d.err = d.s.Send(m)
	}
}

// recv returns the next real reply, skipping replies that only carry
// override_message_timeout; nil once the stream has ended.
func (d *streamDriver) recv() *extprocv3.ProcessingResponse {
	for d.err == nil {
		r, err := d.s.Recv()
		if err != nil {
			d.err = err
			return nil
		}
		if r.GetResponse() == nil && r.GetOverrideMessageTimeout() != nil {
			continue
		}
		return r
	}
	return nil
}

// roundTrip sends m and returns its reply (nil if the stream ended).
func (d *streamDriver) roundTrip(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	d.send(m)
	return d.recv()
}

// TestStreamFaults drives the ext_proc server (in process, with fakes) through every
// way an Envoy stream can end early or misbehave — cancelled at each phase, half-closed,
// the connection dropped, messages out of order or unknown, oversized headers and
// bodies — and then checks that the server is still serving, that each stream that
// reached request_headers produced exactly one audit record, and that no goroutine
// leaked once the server stopped.
func TestStreamFaults(t *testing.T) {
	leakOpt := goleak.IgnoreCurrent()
	const maxMessage = 2 << 20
	s := startInproc(t, extproc.Config{MaxMessageBytes: maxMessage, OverrideAfter: 50 * time.Millisecond})
	n := 0
	path := func() string { n++; return fmt.Sprintf("/api/v1/users/00ufault%04d", n) }
	bigBody := func(size int) []byte {
		return append([]byte(`{"integration_id":"int_fake","operation":"list_users","payload":{"q":"`),
			append(bytes.Repeat([]byte("a"), size), []byte(`"}}`)...)...)
	}
	envAccept := []string{"accept", envelopeAccept}

	type scenario struct {
		name string
		run  func(d *streamDriver)
		// want is the number of audit records the stream must produce: 1 for a call
		// denied before forwarding, 2 (intent and outcome) for one forwarded; -1 means
		// any of 0, 1 or 2, depending on how far the server got before the end.
		want int
		// immediate, if set, is the ImmediateResponse status the stream must end with.
		immediate int
	}
	var lastImmediate int
	checkImmediate := func(r *extprocv3.ProcessingResponse) {
		if ir := r.GetImmediateResponse(); ir != nil {
			lastImmediate = int(ir.GetStatus().GetCode())
		}
	}
	scenarios := []scenario{
		{"cancel before any message", func(d *streamDriver) { d.cancel() }, 0, 0},
		{"cancel right after request_headers", func(d *streamDriver) { d.send(reqHeaders("GET", path(), true)); d.cancel() }, -1, 0},
		{"cancel after the request_headers reply", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true))
			d.cancel()
		}, 2, 0},
		{"cancel after response_headers sent", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true))
			d.send(respHeaders("200", false))
			d.cancel()
		}, 2, 0},
		{"cancel before the buffered response_body (envelope)", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true, envAccept...))
			d.roundTrip(respHeaders("200", false))
			d.cancel()
		}, 2, 0},
		{"cancel after response_body sent", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true, envAccept...))
			d.roundTrip(respHeaders("200", false))
			d.send(respBody([]byte(`{"id":"x"}`), true))
			d.cancel()
		}, 2, 0},
		{"complete read", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true))
			d.roundTrip(respHeaders("200", false))
			d.s.CloseSend()
			d.recv()
		}, 2, 0},
		{"complete read with envelope", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true, envAccept...))
			d.roundTrip(respHeaders("200", false))
			r := d.roundTrip(respBody([]byte(`{"id":"x"}`), true))
			if r.GetResponseBody() == nil {
				d.t.Errorf("envelope: reply %v, want a response_body reply", r)
			}
			d.s.CloseSend()
			d.recv()
		}, 2, 0},
		{"half-close after the request_headers reply", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true))
			d.s.CloseSend()
			d.recv()
		}, 2, 0},
		{"response_headers before request_headers", func(d *streamDriver) {
			checkImmediate(d.roundTrip(respHeaders("200", false)))
		}, -1, 0},
		{"request_body before request_headers", func(d *streamDriver) {
			checkImmediate(d.roundTrip(reqBody([]byte("{}"), true)))
		}, -1, 0},
		{"second request_headers", func(d *streamDriver) {
			p := path()
			d.roundTrip(reqHeaders("GET", p, true))
			d.roundTrip(reqHeaders("GET", p, true))
		}, 2, 0},
		{"unknown message first", func(d *streamDriver) { d.roundTrip(&extprocv3.ProcessingRequest{}) }, 0, 0},
		{"unknown message after request_headers", func(d *streamDriver) {
			d.roundTrip(reqHeaders("GET", path(), true))
			d.roundTrip(&extprocv3.ProcessingRequest{})
		}, 2, 0},
		{"CRLF in a header value", func(d *streamDriver) {
			checkImmediate(d.roundTrip(reqHeaders("GET", path(), true, "x-note", "a\r\nAuthorization: SSWS stolen")))
		}, 1, 400},
		{"1 MiB header value", func(d *streamDriver) {
			checkImmediate(d.roundTrip(reqHeaders("GET", path(), true, "x-big", strings.Repeat("b", 1<<20))))
			d.cancel()
		}, 2, 0},
		{"20,000 headers", func(d *streamDriver) {
			var kv []string
			for i := range 20_000 {
				kv = append(kv, fmt.Sprintf("x-h%d", i), "v")
			}
			checkImmediate(d.roundTrip(reqHeaders("GET", path(), true, kv...)))
			d.cancel()
		}, 2, 0},
		{"outbound body over the body limit", func(d *streamDriver) {
			d.roundTrip(reqHeaders("POST", extproc.OutboundPath, false, "content-type", "application/json"))
			checkImmediate(d.roundTrip(reqBody(bigBody(1536<<10), true)))
		}, 1, 413},
		{"message over the gRPC limit", func(d *streamDriver) {
			d.roundTrip(reqHeaders("POST", extproc.OutboundPath, false, "content-type", "application/json"))
			checkImmediate(d.roundTrip(reqBody(bigBody(maxMessage+1024), true)))
		}, 1, 0},
		{"client connection dropped mid-stream", func(d *streamDriver) {
			// Its own connection, closed under the stream.
			conn, err := grpc.NewClient(s.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				d.t.Fatal(err)
			}
			d2 := openStream(d.t, conn)
			d2.roundTrip(reqHeaders("GET", path(), true))
			conn.Close()
			d2.cancel()
			d.cancel()
		}, 2, 0},
	}

	streams := 0
	for _, sc := range scenarios {
		before := s.rec.len()
		lastImmediate = 0
		d := openStream(t, s.conn)
		sc.run(d)
		d.cancel()
		streams++
		// The server records an aborted stream when it notices the end: wait for it.
		deadline := time.Now().Add(3 * time.Second)
		for sc.want > 0 && s.rec.len()-before < sc.want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		got := s.rec.len() - before
		switch {
		case sc.want >= 0 && got != sc.want:
			t.Errorf("%s: %d audit records, want %d", sc.name, got, sc.want)
		case sc.want < 0 && got > 2:
			t.Errorf("%s: %d audit records, want at most 2", sc.name, got)
		}
		if _, _, bad := s.rec.calls(before); bad != "" {
			t.Errorf("%s: %s", sc.name, bad)
		}
		if sc.immediate != 0 && lastImmediate != sc.immediate {
			t.Errorf("%s: ImmediateResponse status %d, want %d", sc.name, lastImmediate, sc.immediate)
		}
		if d.err != nil && !errors.Is(d.err, io.EOF) {
			t.Logf("%s: stream ended with %v", sc.name, d.err)
		}
	}

	// Still serving: 50 concurrent complete reads, two records each (intent, outcome).
	before := s.rec.len()
	var wg sync.WaitGroup
	paths := make([]string, 50)
	for i := range paths {
		paths[i] = path()
	}
	for _, p := range paths {
		wg.Go(func() {
			d := openStream(t, s.conn)
			defer d.cancel()
			if r := d.roundTrip(reqHeaders("GET", p, true)); r.GetRequestHeaders() == nil {
				t.Errorf("concurrent read %s: reply %v", p, r)
				return
			}
			d.roundTrip(respHeaders("200", true))
			d.s.CloseSend()
			d.recv()
		})
	}
	wg.Wait()
	streams += len(paths)
	waitFor(t, 5*time.Second, "50 concurrent reads are audited", func() bool { return s.rec.len()-before >= 100 })
	perPath := s.rec.byPath()
	for _, p := range paths {
		if perPath[p] != 2 {
			t.Errorf("stream %s: %d audit records, want 2 (intent, outcome)", p, perPath[p])
		}
	}
	if denied, forwarded, bad := s.rec.calls(before); bad != "" || denied != 0 || forwarded != 50 {
		t.Errorf("concurrent reads: %d denied, %d forwarded, %s; want 50 forwarded", denied, forwarded, bad)
	}

	s.stop(t)
	leaks := 0
	if err := goleak.Find(leakOpt); err != nil {
		leaks = 1
		t.Errorf("goroutines leaked: %v", err)
	}
	addFigures(t, figures{
		Faults: len(scenarios), Requests: streams, Committed: s.rec.len(), Leaks: leaks,
		Notes: fmt.Sprintf("%d stream-fault scenarios + 50 concurrent streams on an in-process server with fakes; goleak after Shutdown", len(scenarios)),
	})
}
