package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/envoytest"
)

// clientCall is one data-plane call as the caller saw it, with the audit id it got.
type clientCall struct {
	desc          string // "GET /api/v1/users → 200"
	status        int
	auditID       string
	integrationID string // from a JSON error body, when present
	code          string // the JSON error body's "error", when present
	envelope      bool   // the answer was a HybridCryptoEnvelope
	tenant        tenant // the tenant whose key made the call (zero when none)
}

// dataPlaneCalls lists every call through the fake Envoy with the audit id the caller
// received: the X-QuantaSeal-Audit-Event header, else audit_event_id in the JSON
// body (error bodies and envelopes carry it).
func (w *world) dataPlaneCalls() []clientCall {
	var out []clientCall
	for _, x := range w.envoy.Exchanges() {
		c := clientCall{status: x.Status}
		method, path := requestLine(x)
		c.desc = fmt.Sprintf("%s %s → %d", method, path, x.Status)
		c.tenant = w.callerTenant(x)
		for _, h := range x.Header {
			switch h.Key {
			case "x-quantaseal-audit-event":
				c.auditID = h.Value
			case "content-type":
				c.envelope = strings.HasPrefix(h.Value, envelope.MediaType)
			}
		}
		var body struct {
			AuditEventID  string `json:"audit_event_id"`
			IntegrationID string `json:"integration_id"`
			Error         string `json:"error"`
		}
		if json.Unmarshal(x.Body, &body) == nil {
			if c.auditID == "" {
				c.auditID = body.AuditEventID
			}
			c.integrationID, c.code = body.IntegrationID, body.Error
		}
		out = append(out, c)
	}
	return out
}

// callerTenant maps the API key a call presented to the tenant that owns it.
func (w *world) callerTenant(x *envoytest.Exchange) tenant {
	if len(x.Sent) == 0 {
		return tenant{}
	}
	owner := map[string]tenant{w.tenant.APIKey: w.tenant}
	for _, k := range w.boundKeys {
		owner[k] = w.tenant
	}
	for _, o := range w.otherKeys {
		owner[o.APIKey] = o
	}
	for _, h := range x.Sent[0].GetRequestHeaders().GetHeaders().GetHeaders() {
		v := string(h.GetRawValue())
		switch h.GetKey() {
		case "x-api-key":
		case "authorization":
			_, v, _ = strings.Cut(v, " ")
		default:
			continue
		}
		if tn, ok := owner[strings.TrimSpace(v)]; ok {
			return tn
		}
	}
	return tenant{}
}

// requestLine recovers the request's method and path from the first message sent to
// the processor (the request_headers of the stream).
func requestLine(x *envoytest.Exchange) (method, path string) {
	if len(x.Sent) == 0 {
		return "?", "?"
	}
	for _, h := range x.Sent[0].GetRequestHeaders().GetHeaders().GetHeaders() {
		v := string(h.GetRawValue())
		if v == "" {
			v = h.GetValue()
		}
		switch h.GetKey() {
		case ":method":
			method = v
		case ":path":
			path = v
		}
	}
	return method, path
}

// checkEvent compares an authenticated call's event with what the caller saw
// (audit-v1.md "Event"): the final status, envelope flag, the caller as the key's public
// id, and for every forwarded call — reads too — the intent event committed before
// forwarding (docs/spec/audit-v1.md "Chains").
func (w *world) checkEvent(t *testing.T, c clientCall, e audit.Event, byID map[string]audit.Event) {
	t.Helper()
	if int(e.Status) != c.status {
		t.Errorf("%s: event %s has status %d, the client received %d", c.desc, e.ID, e.Status, c.status)
	}
	if e.Envelope != c.envelope {
		t.Errorf("%s: event %s has envelope %v, the client received an envelope: %v", c.desc, e.ID, e.Envelope, c.envelope)
	}
	if !strings.HasPrefix(e.Caller, "key_") {
		t.Errorf("%s: event %s has caller %q, want the key's public id key_…", c.desc, e.ID, e.Caller)
	}
	if c.status/100 == 2 && (e.Decision != "allow" || e.Operation == "") {
		t.Errorf("%s: event %s: decision %q operation %q for a successful call", c.desc, e.ID, e.Decision, e.Operation)
	}
	if e.Reason == "forwarded" {
		t.Errorf("%s: the caller received the id of intent event %s, not of the call's outcome", c.desc, e.ID)
	}
	// A forwarded call (decision allow, or a denial of Okta's answer such as
	// insufficient_scope) names its intent; a call denied before forwarding has none
	// and is a denial.
	if e.IntentID == "" {
		if e.Decision != "deny" {
			t.Errorf("%s: event %s (%s %s) has no intent_id: every forwarded call needs an intent committed first", c.desc, e.ID, e.Decision, e.Reason)
		}
		return
	}
	in, ok := byID[e.IntentID]
	switch {
	case !ok:
		t.Errorf("%s: outcome event %s of %s names intent %q, which is not in the log", c.desc, e.ID, e.Operation, e.IntentID)
	case in.Decision != "allow" || in.Reason != "forwarded" || in.Status != 0 || in.IntentID != "" || in.ChainID != e.ChainID || in.Seq >= e.Seq:
		t.Errorf("%s: intent event %+v does not precede outcome %s as audit-v1 requires", c.desc, in, e.ID)
	case in.TenantID != e.TenantID || in.IntegrationID != e.IntegrationID || in.Operation != e.Operation || in.Caller != e.Caller ||
		in.Method != e.Method || in.Path != e.Path || in.QuerySHA256 != e.QuerySHA256 || in.RequestSHA256 != e.RequestSHA256 || in.PolicySHA256 != e.PolicySHA256:
		t.Errorf("%s: intent %+v and outcome %+v describe different requests", c.desc, in, e)
	}
}

// checkCounts is the exact count of audit-v1 "Chains": every event of the export
// belongs to exactly one call — as the event its caller received, or as the intent
// of that event — so a call denied before forwarding has one event and a forwarded
// call two; and every Management API request the Okta double received has its own
// committed intent, which names the method, path, query and body it received.
func (w *world) checkCounts(t *testing.T, calls []clientCall, events []audit.Event, byID map[string]audit.Event) {
	t.Helper()
	owners := map[string]int{}
	forwarded := 0
	for _, c := range calls {
		e, ok := byID[c.auditID]
		if !ok {
			continue // reported by testAudit
		}
		owners[e.ID]++
		if e.IntentID != "" {
			owners[e.IntentID]++
			forwarded++
		}
	}
	intents := 0
	for _, e := range events {
		if e.Reason == "forwarded" {
			intents++
		}
		if n := owners[e.ID]; n != 1 {
			t.Errorf("event %s (seq %d, %s %s %s) belongs to %d calls, want exactly 1", e.ID, e.Seq, e.Operation, e.Decision, e.Reason, n)
		}
	}
	if want := len(calls) + forwarded; len(events) != want || intents != forwarded {
		t.Errorf("the export holds %d events (%d intents); %d calls of which %d forwarded need exactly %d (%d intents)",
			len(events), intents, len(calls), forwarded, want, forwarded)
	}

	type key struct{ method, path, query, body string }
	hash := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:])
	}
	committed := map[key]int{}
	for _, e := range events {
		if e.Reason == "forwarded" {
			committed[key{e.Method, e.Path, e.QuerySHA256, e.RequestSHA256}]++
		}
	}
	reached := apiRequests(w.okta.Requests())
	for _, r := range reached {
		k := key{r.Method, r.Path, hash([]byte(r.RawQuery)), hash(r.Body)}
		if committed[k] == 0 {
			t.Errorf("%s %s?%s reached the Okta double without a committed intent binding it", r.Method, r.Path, r.RawQuery)
			continue
		}
		committed[k]--
	}
	t.Logf("%d calls: %d denied before forwarding (1 event each), %d forwarded (intent + outcome); %d Management API requests reached the double",
		len(calls), len(calls)-forwarded, forwarded, len(reached))
}

// storeArgs selects the gateway's store for `quantaseal audit …`. verify also needs
// the public keys when the store is PostgreSQL (there is no data directory holding the
// signing key): the JSON of GET /api/v2/signing-keys.
func (w *world) storeArgs(t *testing.T, verify bool) []string {
	if w.gwOpts.DatabaseURL == "" {
		return []string{"--data-dir", w.gwOpts.DataDir}
	}
	args := []string{"--database-url", w.gwOpts.DatabaseURL}
	if verify {
		keys := filepath.Join(t.TempDir(), "signing-keys.json")
		if err := os.WriteFile(keys, w.tenant.KeysJSON, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--keys", keys)
	}
	return args
}

// testAudit is issue 6 item 5: every call above is in the audit chain, the chain
// verifies offline once the gateway has stopped, and every audit id a caller received
// is served by GET /api/v2/audit/events/{id} with a proof that verifies.
func (w *world) testAudit(t *testing.T) {
	calls := w.dataPlaneCalls()
	if len(calls) < 20 {
		t.Fatalf("only %d data-plane calls were made", len(calls))
	}
	for _, c := range calls {
		if !strings.HasPrefix(c.auditID, "aud_") {
			t.Errorf("%s: the caller got no audit event id", c.desc)
		}
	}

	w.gw.Stop(t)

	code, out := runCLI(t, nil, append([]string{"audit", "verify"}, w.storeArgs(t, true)...)...)
	w.cliOutput = append(w.cliOutput, out...)
	if code != 0 {
		t.Errorf("quantaseal audit verify: exit %d, want 0:\n%s", code, out)
	}
	exportPath := filepath.Join(t.TempDir(), "audit.jsonl")
	code, out = runCLI(t, nil, append([]string{"audit", "export", "--out", exportPath}, w.storeArgs(t, false)...)...)
	w.cliOutput = append(w.cliOutput, out...)
	if code != 0 {
		t.Fatalf("quantaseal audit export: exit %d:\n%s", code, out)
	}
	export, err := os.ReadFile(exportPath)
	if err != nil {
		t.Fatal(err)
	}
	w.export = export
	events, cps, err := audit.ReadExport(bytes.NewReader(export))
	if err != nil {
		t.Fatalf("audit.ReadExport: %v", err)
	}
	if err := audit.Verify(events, cps, w.tenant.SigningKeys, audit.VerifyOptions{}); err != nil {
		t.Errorf("audit.Verify of the export: %v", err)
	}
	byID := map[string]audit.Event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	t.Logf("%d data-plane calls; the export holds %d events and %d checkpoints", len(calls), len(events), len(cps))
	for _, c := range calls {
		e, ok := byID[c.auditID]
		switch {
		case c.auditID == "":
		case !ok:
			t.Errorf("%s: audit event %s is not in the export", c.desc, c.auditID)
		case c.tenant.ID == "":
			// No tenant authenticated: the event is recorded without one, and no tenant
			// can read it through the API.
			if e.TenantID != "" || c.code != "invalid_api_key" {
				t.Errorf("%s: event %s of an unauthenticated call: tenant %q, code %q", c.desc, e.ID, e.TenantID, c.code)
			}
		case e.TenantID != c.tenant.ID:
			t.Errorf("%s: event %s has tenant %q, want %q", c.desc, e.ID, e.TenantID, c.tenant.ID)
		case c.integrationID != "" && e.IntegrationID != c.integrationID:
			t.Errorf("%s: event %s has integration %q, the caller was told %q", c.desc, e.ID, e.IntegrationID, c.integrationID)
		case c.status == http.StatusForbidden && e.Decision != "deny":
			t.Errorf("%s: event %s has decision %q, want deny", c.desc, e.ID, e.Decision)
		default:
			w.checkEvent(t, c, e, byID)
		}
	}
	w.checkCounts(t, calls, events, byID)

	// Restart on the same store: the events and their proofs are served.
	w.gw = startGateway(t, w.gwOpts)
	w.api.base = w.gw.HTTPURL
	for _, c := range calls {
		if c.auditID == "" || c.tenant.ID == "" {
			continue
		}
		var p audit.Proof
		w.api.mustJSON(t, "GET", "/api/v2/audit/events/"+c.auditID, keyAuth(c.tenant.APIKey), nil, http.StatusOK, &p, false)
		if p.Event.ID != c.auditID {
			t.Errorf("%s: GET /api/v2/audit/events/%s returned event %q", c.desc, c.auditID, p.Event.ID)
			continue
		}
		if err := audit.VerifyProof(p, w.tenant.SigningKeys); err != nil {
			t.Errorf("%s: proof of %s: %v", c.desc, c.auditID, err)
		}
	}
	// Another tenant's key must not see these events: a second tenant gets 404.
	other := w.otherTenant(t)
	for _, c := range calls {
		if c.code != "" || c.auditID == "" || c.tenant.ID != w.tenant.ID {
			continue
		}
		status, body := w.api.call(t, "GET", "/api/v2/audit/events/"+c.auditID, keyAuth(other.APIKey), nil, false)
		if status != http.StatusNotFound {
			t.Errorf("another tenant reading %s: HTTP %d, want 404: %s", c.auditID, status, body)
		}
		break
	}
	w.gw.Stop(t)
}
