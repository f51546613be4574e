package envelope

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// TestMarshalJSONSize checks that MarshalJSON's buffer, sized by jsonSize, is never
// regrown for values without JSON escapes, even with the widest integers.
func TestMarshalJSONSize(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name string
		e    Envelope
	}{
		{"empty", Envelope{}},
		{"widest integers", Envelope{Version: math.MinInt64, Status: math.MinInt64, Success: false}},
		{"sealed", Envelope{
			Version: Version, Success: true, Status: 200, Next: long, IssuedAt: "2026-01-02T03:04:05Z",
			AuditEventID: "aud_01JD0000000000000000000000",
			Encrypted: Encrypted{CiphertextKEM: make([]byte, KEMCiphertextSize), CiphertextData: make([]byte, 32<<10+16),
				Nonce: make([]byte, NonceSize), TenantID: long, KeyID: "0123456789abcdef", Algorithm: KEMAlgorithm},
			Signature: Signature{PQCSignature: make([]byte, SignatureSize), HMACSignature: make([]byte, HMACSize),
				TenantID: long, KeyID: "0123456789abcdef", HMACKeyID: "fedcba9876543210", Algorithm: SignatureAlgorithm},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.e.jsonSize(); len(b) > want || cap(b) != want {
				t.Errorf("len %d, cap %d; want len ≤ cap = jsonSize() = %d", len(b), cap(b), want)
			}
			if !bytes.HasPrefix(b, []byte(`{"version":`)) || b[len(b)-1] != '}' {
				t.Errorf("output %.40q… is not an envelope object", b)
			}
		})
	}
}
