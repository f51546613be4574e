package e2e

import (
	"strings"
	"testing"
)

// TestEndToEnd runs the whole flow (issue 6 items 1–6) on each deployment of issue 7:
// the embedded store with the local key provider, PostgreSQL, and AWS KMS (the local
// KMS server). The variants run one after the other to keep CPU use modest.
func TestEndToEnd(t *testing.T) {
	variants := []variant{
		{name: "embedded_store"},
		{name: "postgres", postgres: true},
		{name: "aws_kms", awsKMS: true},
		{name: "postgres_aws_kms", postgres: true, awsKMS: true},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			w := newWorld(t, v)
			t.Run("1_okta_sdk", w.testOktaSDK)
			t.Run("2_default_deny", w.testPolicy)
			t.Run("3_outbound_client", w.testOutbound)
			t.Run("4_token_errors", w.testTokenErrors)
			t.Run("envoy_rules", w.testEnvoyRules)
			t.Run("5_audit_chain", w.testAudit)
			t.Run("6_secret_leaks", w.testLeaks)
		})
	}
}

// testEnvoyRules checks that no stream broke one of Envoy's rules the fake enforces
// (spurious messages, rejected header mutations, message timeouts, failed streams).
func (w *world) testEnvoyRules(t *testing.T) {
	s := w.envoy.Stats()
	if s.StreamsStarted == 0 {
		t.Fatal("no ext_proc stream was started")
	}
	if s.SpuriousMsgsReceived != 0 || s.RejectedHeaderMutations != 0 || s.MessageTimeouts != 0 || s.StreamsFailed != 0 {
		t.Errorf("fake Envoy statistics %+v", s)
		for _, x := range w.envoy.Exchanges() {
			if x.Details != "" && !strings.HasPrefix(x.Details, "quantaseal_") {
				m, p := requestLine(x)
				t.Logf("%s %s → %d details %q", m, p, x.Status, x.Details)
			}
		}
	}
}
