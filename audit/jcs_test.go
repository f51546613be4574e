package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// The number examples of RFC 8785 Appendix B and §3.2.2.3.
func TestES6Number(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{math.Float64frombits(0x0000000000000001), "5e-324"},
		{math.Float64frombits(0x8000000000000001), "-5e-324"},
		{math.Float64frombits(0x7fefffffffffffff), "1.7976931348623157e+308"},
		{math.Float64frombits(0xffefffffffffffff), "-1.7976931348623157e+308"},
		{math.Float64frombits(0x4340000000000000), "9007199254740992"},
		{math.Float64frombits(0xc340000000000000), "-9007199254740992"},
		{math.Float64frombits(0x4430000000000000), "295147905179352830000"},
		{math.Float64frombits(0x44b52d02c7e14af5), "9.999999999999997e+22"},
		{math.Float64frombits(0x44b52d02c7e14af6), "1e+23"},
		{math.Float64frombits(0x44b52d02c7e14af7), "1.0000000000000001e+23"},
		{math.Float64frombits(0x444b1ae4d6e2ef4e), "999999999999999700000"},
		{math.Float64frombits(0x444b1ae4d6e2ef4f), "999999999999999900000"},
		{math.Float64frombits(0x444b1ae4d6e2ef50), "1e+21"},
		{math.Float64frombits(0x3eb0c6f7a0b5ed8c), "9.999999999999997e-7"},
		{math.Float64frombits(0x3eb0c6f7a0b5ed8d), "0.000001"},
		{math.Float64frombits(0x41b3de4355555553), "333333333.3333332"},
		{math.Float64frombits(0x41b3de4355555554), "333333333.33333325"},
		{math.Float64frombits(0x41b3de4355555555), "333333333.3333333"},
		{math.Float64frombits(0x41b3de4355555556), "333333333.3333334"},
		{math.Float64frombits(0x41b3de4355555557), "333333333.33333343"},
		{math.Float64frombits(0xbecbf647612f3696), "-0.0000033333333333333333"},
		{math.Float64frombits(0x43143ff3c1cb0959), "1424953923781206.2"},
		{4.50, "4.5"},
		{2e-3, "0.002"},
		{1e-27, "1e-27"},
		{1e30, "1e+30"},
		{200, "200"},
	}
	for _, tc := range tests {
		got, err := appendES6Number(nil, tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("appendES6Number(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := appendES6Number(nil, f); err == nil {
			t.Errorf("appendES6Number(%v) succeeded", f)
		}
	}
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// RFC 8785 §3.2.2 example input and output.
		{"rfc8785 3.2.2", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// RFC 8785 §3.2.3 sorting example: keys ordered by UTF-16 code units.
		{"rfc8785 3.2.3", `{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"no html escaping", `{"a":"<script>&</script>","b":"\u2028\u007f"}`, "{\"a\":\"<script>&</script>\",\"b\":\"\u2028\u007f\"}"},
		{"controls", `["\u0000\u0008\u0009\u000a\u000b\u000c\u000d\u001f"]`, `["\u0000\b\t\n\u000b\f\r\u001f"]`},
		{"nested", `{"b":[{"z":1,"a":2}],"a":{}}`, `{"a":{},"b":[{"a":2,"z":1}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize(json.RawMessage(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, err := Canonicalize(func() {}); err == nil {
		t.Error("Canonicalize(func) succeeded")
	}
}

// The hand-unrolled event form must equal the general JCS of the event's JSON.
func TestEventCanonicalMatchesJCS(t *testing.T) {
	evs := []Event{
		{},
		{ID: "aud_1", ChainID: "ten_a/w1", Seq: 1, Time: "2026-01-02T03:04:05.000000000Z", TenantID: "ten_a",
			Path: "/api/v1/users/<script>&\u2028\"\\\x01\x7f", Method: "GET", Status: 200, ResponseBytes: 1 << 52,
			Envelope: true, Reason: "é€😀", PrevHash: ZeroHash, Hash: "x"},
		{Caller: "\t\n\r\b\f", Seq: 9007199254740991, Status: -1},
	}
	for i, e := range evs {
		general, err := Canonicalize(map[string]any(mustMap(t, e)))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.appendCanonical(nil, true); string(got) != string(general) {
			t.Errorf("event %d:\nfast    %s\ngeneral %s", i, got, general)
		}
		c, _ := Canonicalize(e)
		if string(c) != string(general) {
			t.Errorf("event %d: Canonicalize(Event) differs from the general form", i)
		}
		if strings.Contains(string(e.appendCanonical(nil, false)), `"hash"`) {
			t.Errorf("event %d: hash input contains the hash member", i)
		}
	}
}

// hashAndBody is ComputeHash and Canonicalize (with that hash) from one serialisation.
func TestHashAndBody(t *testing.T) {
	for i, e := range []Event{
		{},
		{ID: "aud_1", ChainID: "ten_a/w1", Seq: 1, Time: "2026-01-02T03:04:05.000000000Z", TenantID: "ten_a",
			Path: "/api/v1/users/<script>&\u2028\"\\\x01\x7f", Method: "GET", Status: 200, ResponseBytes: 1 << 52,
			Envelope: true, Reason: "é€😀", PrevHash: ZeroHash, Hash: "stale"},
		{Caller: "\t\n\r\b\f", Seq: 9007199254740991, Status: -1, IntentID: "aud_0"},
		// Escaping makes the canonical form longer than canonicalSizeHint: the body
		// no longer fits the tail of the allocation.
		{Path: strings.Repeat("\x01", 600), Reason: strings.Repeat("\"", 300)},
	} {
		checkHashAndBody(t, fmt.Sprint("event ", i), e)
	}
}

func checkHashAndBody(t *testing.T, name string, e Event) {
	t.Helper()
	hash, body := e.hashAndBody()
	if want := e.ComputeHash(); hash != want {
		t.Errorf("%s: hash %s, want %s", name, hash, want)
	}
	e.Hash = hash
	want, _ := Canonicalize(&e)
	if string(body) != string(want) {
		t.Errorf("%s:\nbody %s\nwant %s", name, body, want)
	}
}

func FuzzHashAndBody(f *testing.F) {
	f.Add("/api/v1/users", "list_users", "", int64(200), true)
	f.Add("\x00\u2028\"\\", "é", "\xff", int64(-1), false)
	f.Fuzz(func(t *testing.T, path, operation, reason string, status int64, envelope bool) {
		e := Event{ID: "aud_x", ChainID: "ten_a/w1", Seq: 7, Time: "2026-01-02T03:04:05.000000000Z", TenantID: "ten_a",
			Path: path, Operation: operation, Reason: reason, Status: status, Envelope: envelope, PrevHash: ZeroHash}
		e.sanitize() // what Append does before build
		checkHashAndBody(t, "fuzzed", e)
	})
}

func mustMap(t *testing.T, e Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestComputeHashIgnoresHashAndSanitizes(t *testing.T) {
	e := Event{ID: "aud_x", Path: "/a\xffb"}
	h1 := e.ComputeHash()
	e.Hash = "anything"
	if e.ComputeHash() != h1 {
		t.Error("hash depends on the hash member")
	}
	// Invalid UTF-8 hashes as encoding/json writes it, so the export round trip keeps it.
	e.sanitize()
	b, _ := json.Marshal(e)
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ComputeHash() != e.ComputeHash() || e.Path != "/a\uFFFDb" {
		t.Errorf("sanitized path %q does not survive a JSON round trip", e.Path)
	}
}

// BenchmarkEventHashAndBody: what the commit path pays per event for its hash and
// stored body, from one serialisation (hashAndBody) against two (ComputeHash, then
// Canonicalize), for an event shaped like a transparent call's outcome.
func BenchmarkEventHashAndBody(b *testing.B) {
	e := Event{ID: "aud_01JD7Q3ZK4R8M6N2P5T9V0W1X2", ChainID: "ten_01JD7Q3ZK4R8M6N2P5T9V0W1X3/w1", Seq: 123456,
		Time: "2026-11-29T09:30:00.123456789Z", TenantID: "ten_01JD7Q3ZK4R8M6N2P5T9V0W1X3",
		IntegrationID: "int_01JD7Q3ZK4R8M6N2P5T9V0W1X4", Operation: "list_users", Caller: "key_01JD7Q3ZK4R8M6N2P5T9V0W1X5",
		Method: "GET", Path: "/api/v1/users", QuerySHA256: strings.Repeat("a", 64), PolicySHA256: strings.Repeat("b", 64),
		Decision: "allow", Reason: "ok", Status: 200, ResponseSHA256: strings.Repeat("c", 64), ResponseBytes: 31744,
		IntentID: "aud_01JD7Q3ZK4R8M6N2P5T9V0W1X1", PrevHash: strings.Repeat("d", 64)}
	b.Run("one-serialisation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = e.hashAndBody()
		}
	})
	b.Run("two-serialisations", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := e
			c.Hash = c.ComputeHash()
			_, _ = Canonicalize(&c)
		}
	})
}
