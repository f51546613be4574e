package extproc

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// envelopeCall opens a stream for an envelope read and answers its request_headers.
func envelopeCall(t *testing.T, e *env) *exchange {
	t.Helper()
	x := e.open(t)
	x.do(reqHeaders(true, append(get("/api/v1/users?limit=2", "x-api-key", testBoundKey),
		"accept", "application/vnd.quantaseal.envelope+json")...))
	return x
}

func okHeaders(size int) *extprocv3.ProcessingRequest {
	return respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", strconv.Itoa(size))
}

// A call whose body does not fit next to the bodies already held waits in its
// response_headers step — Envoy still holds its body — and is shed with 503 and
// Retry-After when no room appears within BodyWait. Room given back by a finished call
// lets the next one through.
func TestBodyBudgetShedsWhenFull(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBodyBytes: 1000, BodyWait: 150 * time.Millisecond, OverrideAfter: 50 * time.Millisecond})
	body := bytes.Repeat([]byte("x"), 600)

	first := envelopeCall(t, e)
	if r := first.do(okHeaders(len(body))); r.GetResponseHeaders() == nil {
		t.Fatalf("first call: %v", r)
	}

	second := envelopeCall(t, e)
	start := time.Now()
	resp := second.do(okHeaders(len(body)))
	waited := time.Since(start)
	code, js := mustImmediate(t, resp)
	if code != 503 || js.Error != CodeUnavailable {
		t.Fatalf("second call: HTTP %d %+v, want 503 unavailable", code, js)
	}
	if got := setsOf(resp)["retry-after"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("retry-after = %v, want [1]", got)
	}
	if waited < 150*time.Millisecond {
		t.Errorf("shed after %v, before BodyWait", waited)
	}
	if n := len(second.all); n != 3 || second.all[1].GetResponse() != nil || second.all[1].GetOverrideMessageTimeout() == nil {
		t.Errorf("a wait longer than OverrideAfter must extend Envoy's timer first; replies %v", second.all)
	}
	if js.Message != bodyBudgetMessage {
		t.Errorf("message %q: the call was forwarded, so it must not say nothing was", js.Message)
	}

	// The first call finishes; its room comes back.
	if r := first.do(respBody(body)); len(commonOf(r).GetBodyMutation().GetBody()) == 0 {
		t.Fatalf("first call body reply: %v", r)
	}
	third := envelopeCall(t, e)
	if r := third.do(okHeaders(len(body))); r.GetResponseHeaders() == nil {
		t.Fatalf("third call after the first finished: %v", r)
	}
	third.do(respBody(body))

	// Events: first (intent, outcome), second (intent, its 503 outcome), third (intent, outcome).
	recs := e.rec.waitRecords(t, 6)
	var shed int
	for _, r := range recs {
		if r.Reason == CodeUnavailable {
			shed++
		}
	}
	if shed != 1 {
		t.Errorf("%d events with reason unavailable, want 1 (the shed call): %+v", shed, recs)
	}
}

// A waiting call is let through as soon as room appears.
func TestBodyBudgetWaitsForRoom(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBodyBytes: 1000, BodyWait: 5 * time.Second})
	body := bytes.Repeat([]byte("y"), 700)
	first := envelopeCall(t, e)
	first.do(okHeaders(len(body)))

	second := envelopeCall(t, e)
	got := make(chan *extprocv3.ProcessingResponse, 1)
	go func() { got <- second.do(okHeaders(len(body))) }()
	select {
	case r := <-got:
		t.Fatalf("second call answered while the budget was full: %v", r)
	case <-time.After(100 * time.Millisecond):
	}
	first.do(respBody(body))
	select {
	case r := <-got:
		if r.GetResponseHeaders() == nil {
			t.Fatalf("second call: %v", r)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("second call still waiting after the first released its room")
	}
	second.do(respBody(body))
}

// A stream that ends after reserving (the client went away) gives its room back.
func TestBodyBudgetReleasedOnAbort(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBodyBytes: 1000, BodyWait: 2 * time.Second})
	gone := envelopeCall(t, e)
	gone.do(okHeaders(900))
	gone.close()

	next := envelopeCall(t, e)
	if r := next.do(okHeaders(900)); r.GetResponseHeaders() == nil {
		t.Fatalf("call after an aborted one: %v", r)
	}
}

// Bodies larger than MaxBodyBytes are refused for an envelope: announced ones before
// Envoy sends them, unannounced ones when they arrive.
func TestEnvelopeBodyOverLimit(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 100})
	x := envelopeCall(t, e)
	code, js := mustImmediate(t, x.do(okHeaders(101)))
	if code != 502 || js.Error != CodeUpstreamError {
		t.Errorf("announced 101 bytes: HTTP %d %+v, want 502 upstream_error", code, js)
	}

	x = envelopeCall(t, e)
	x.do(respHeaders(false, ":status", "200", "content-type", "application/json")) // no content-length
	code, js = mustImmediate(t, x.do(respBody(bytes.Repeat([]byte("z"), 101))))
	if code != 502 || js.Error != CodeUpstreamError {
		t.Errorf("unannounced 101 bytes: HTTP %d %+v, want 502 upstream_error", code, js)
	}
	if n := len(e.sealer.reqs); n != 0 {
		t.Errorf("%d bodies sealed, want none", n)
	}
}

func TestAnnouncedBodySize(t *testing.T) {
	for _, tc := range []struct {
		headers []string
		want    int64
	}{
		{[]string{"content-length", "42"}, 42},
		{[]string{"content-length", "0"}, 0},
		{nil, 1 << 20},
		{[]string{"content-length", "-1"}, 1 << 20},
		{[]string{"content-length", "12abc"}, 1 << 20},
		{[]string{"content-length", "5", "content-length", "5"}, 1 << 20}, // ambiguous: assume the worst
	} {
		l := fromHeaderMap(hm(tc.headers...))
		if got := announcedBodySize(l, 1<<20); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.headers, got, tc.want)
		}
	}
}

// createUserHeaders is a transparent create_user asking for an envelope; its body
// follows.
func createUserHeaders() *extprocv3.ProcessingRequest {
	return reqHeaders(false, ":authority", "127.0.0.1:10000", ":path", "/api/v1/users?activate=false", ":method", "POST",
		":scheme", "http", "content-type", "application/json", "authorization", "SSWS "+testBoundKey,
		"accept", "application/vnd.quantaseal.envelope+json")
}

// A state-changing call reserves its room before it is forwarded, so it is never shed
// after the operation happened upstream: with the budget full it is refused at its
// request_headers, before any intent event, and once room comes back it goes through
// without waiting again at its response.
func TestBodyBudgetWriteReservedBeforeForwarding(t *testing.T) {
	e := newEnv(t, Config{MaxBufferedBodyBytes: 1 << 20, BodyWait: 150 * time.Millisecond})
	read := envelopeCall(t, e)
	read.do(okHeaders(1 << 20)) // holds the whole budget

	write := e.open(t)
	code, js := mustImmediate(t, write.do(createUserHeaders()))
	if code != 503 || js.Error != CodeUnavailable || js.Message != bodyBudgetBeforeMessage {
		t.Fatalf("write with the budget full: HTTP %d %+v, want 503 saying nothing was forwarded", code, js)
	}
	recs := e.rec.waitRecords(t, 2)
	if w := recs[1]; w.Operation != "create_user" || w.Decision != decisionDeny || w.Reason != CodeUnavailable || w.IntentID != "" {
		t.Errorf("write's event %+v, want a denial: it was never forwarded", w)
	}

	read.do(respBody(bytes.Repeat([]byte("r"), 1<<20)))
	write = e.open(t)
	if r := write.do(createUserHeaders()); r.GetRequestHeaders() == nil {
		t.Fatalf("write with room: %v", r)
	}
	if r := write.do(reqBody([]byte(`{"profile":{"login":"x"}}`))); r.GetRequestBody() == nil {
		t.Fatalf("write body: %v", r)
	}
	// A second read now fills what the write left free; the write's response still
	// goes through at once, on the room it reserved.
	other := envelopeCall(t, e)
	done := make(chan *extprocv3.ProcessingResponse, 1)
	go func() { done <- other.do(okHeaders(1 << 20)) }()
	start := time.Now()
	if r := write.do(okHeaders(200)); r.GetResponseHeaders() == nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("write response after %v: %v; it holds its room and must not wait", time.Since(start), r)
	}
	if r := write.do(respBody(bytes.Repeat([]byte("w"), 200))); len(commonOf(r).GetBodyMutation().GetBody()) == 0 {
		t.Fatalf("write body reply: %v", r)
	}
	if r := <-done; r.GetResponseHeaders() == nil {
		t.Fatalf("read after the write released its room: %v", r)
	}
}

// A hash-only call whose announced body is larger than MaxBodyBytes cannot be hashed,
// so it is not buffered: its response_headers reply switches the body to NONE, carries
// the audit header, records the outcome without a hash, and gives back the room a
// state-changing call reserved before it was forwarded (which would otherwise count
// MaxBodyBytes for a body of up to max_message_bytes).
func TestHashOnlyBodyOverLimitStreams(t *testing.T) {
	// The budget holds exactly one MaxBodyBytes reservation, so a write that kept its
	// room would make the envelope call after it wait and be shed.
	e := newEnv(t, Config{HashResponses: true, MaxBodyBytes: 100, MaxBufferedBodyBytes: 100, BodyWait: 100 * time.Millisecond})
	for _, tc := range []struct {
		name    string
		headers *extprocv3.ProcessingRequest
		body    []byte
	}{
		{"read", reqHeaders(true, get("/api/v1/users", "x-api-key", testBoundKey)...), nil},
		{"write", reqHeaders(false, ":authority", "127.0.0.1:10000", ":path", "/api/v1/users?activate=false", ":method", "POST",
			":scheme", "http", "content-type", "application/json", "authorization", "SSWS "+testBoundKey), []byte(`{"profile":{"login":"x"}}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.rec.records())
			x := e.open(t)
			if r := x.do(tc.headers); r.GetModeOverride().GetResponseBodyMode() != extprocfilterv3.ProcessingMode_BUFFERED {
				t.Fatalf("request_headers reply %v: want the response body buffered for its hash", r)
			}
			if tc.body != nil {
				x.do(reqBody(tc.body))
			}
			resp := x.do(okHeaders(101))
			if resp.GetResponseHeaders() == nil || resp.GetModeOverride().GetResponseBodyMode() != extprocfilterv3.ProcessingMode_NONE {
				t.Fatalf("response_headers reply %v: want it answered now with the body switched to NONE", resp)
			}
			if got := setsOf(resp)[hdrAuditEvent]; len(got) != 1 || got[0] == "" {
				t.Errorf("audit header %v", got)
			}
			out := e.rec.waitRecords(t, before+2)[before+1]
			if out.ResponseSHA256 != "" || out.ResponseBytes != 0 || out.Decision != decisionAllow {
				t.Errorf("outcome %+v: want allowed, with no hash", out)
			}
			next := envelopeCall(t, e)
			if r := next.do(okHeaders(100)); r.GetResponseHeaders() == nil {
				t.Fatalf("an envelope call after it found no room in the body budget: %v", r)
			}
			next.do(respBody(bytes.Repeat([]byte("n"), 100)))
		})
	}
}
