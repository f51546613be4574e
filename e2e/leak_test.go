package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// leakSecret is one secret and the encodings it could leak in.
type leakSecret struct {
	name  string
	forms [][]byte
}

func stringSecret(name, s string) leakSecret {
	return leakSecret{name: name, forms: [][]byte{[]byte(s)}}
}

// bytesSecret covers raw bytes and their usual text encodings.
func bytesSecret(name string, b []byte) leakSecret {
	return leakSecret{name: name, forms: [][]byte{
		b,
		[]byte(base64.StdEncoding.EncodeToString(b)),
		[]byte(base64.RawStdEncoding.EncodeToString(b)),
		[]byte(base64.RawURLEncoding.EncodeToString(b)),
		[]byte(hex.EncodeToString(b)),
	}}
}

// basicSecret is the client_secret_basic header value of an app.
func basicSecret(name, clientID, secret string) leakSecret {
	return stringSecret(name, base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret)))
}

// accessTokens returns the access tokens the double issued, as they came back to it in
// Authorization headers.
func accessTokens(reqs []oktatest.Request) []string {
	seen := map[string]bool{}
	for _, r := range apiRequests(reqs) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) && tok != "" {
			seen[tok] = true
		}
	}
	return sortedKeys(seen)
}

// secrets lists everything that must never appear outside where it belongs.
func (w *world) secrets(t *testing.T) []leakSecret {
	t.Helper()
	s := []leakSecret{
		stringSecret("okta api token", w.oktaToken),
		stringSecret("client secret (sealed, wrong)", w.badSecret),
		stringSecret("client secret (the double's)", w.goodSecret),
		stringSecret("client secret (few scopes)", w.scopedSecret),
		basicSecret("basic credentials (wrong)", w.badClientID, w.badSecret),
		basicSecret("basic credentials (few scopes)", w.scopedClient, w.scopedSecret),
		stringSecret("admin token", w.adminToken),
	}
	for name, p := range map[string]string{"private key": w.privateKeyPEM, "unregistered private key": w.badKeyPEM} {
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			t.Fatalf("%s PEM does not decode", name)
		}
		s = append(s, stringSecret(name+" PEM", p), bytesSecret(name+" DER", block.Bytes))
		for i, line := range strings.Split(p, "\n") {
			if len(line) == 64 { // a full base64 line of the PEM body
				s = append(s, stringSecret(fmt.Sprintf("%s PEM line %d", name, i), line))
			}
		}
	}
	tokens := accessTokens(w.okta.Requests())
	if len(tokens) == 0 {
		t.Error("the double issued no access token that was used: the OAuth flows did not run")
	}
	for i, tok := range tokens {
		s = append(s, stringSecret(fmt.Sprintf("access token %d", i), tok))
	}
	tenants := append([]tenant{w.tenant}, w.otherKeys...)
	for _, tn := range tenants {
		s = append(s,
			stringSecret("qs_live_ key of "+tn.ID, tn.APIKey),
			stringSecret("qs_live_ key body of "+tn.ID, strings.TrimPrefix(tn.APIKey, "qs_live_")),
			bytesSecret("hmac key of "+tn.ID, tn.HMACKey),
			bytesSecret("response kem seed of "+tn.ID, tn.ResponseSeed),
		)
	}
	for _, name := range sortedKeys(w.boundKeys) {
		k := w.boundKeys[name]
		s = append(s, stringSecret("bound qs_live_ key "+name, k), stringSecret("bound key body "+name, strings.TrimPrefix(k, "qs_live_")))
	}
	return s
}

// haystack is one place the scan looks.
type haystack struct {
	name string
	data []byte
}

func headerText(h map[string][]string) []byte {
	var b bytes.Buffer
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.Bytes()
}

// haystacks gathers the gateway's logs, the audit export, everything callers received
// and the database.
func (w *world) haystacks(t *testing.T) []haystack {
	t.Helper()
	hs := []haystack{
		{"gateway log output", w.gwOpts.Logs.Bytes()},
		{"audit export", w.export},
		{"quantaseal audit verify/export output", w.cliOutput},
	}
	if len(w.export) == 0 {
		t.Error("no audit export to scan (did 5_audit_chain run?)")
	}
	for i, x := range w.envoy.Exchanges() {
		method, path := requestLine(x)
		var h bytes.Buffer
		for _, f := range x.Header {
			fmt.Fprintf(&h, "%s: %s\n", f.Key, f.Value)
		}
		name := fmt.Sprintf("data-plane answer %d (%s %s → %d)", i, method, path, x.Status)
		hs = append(hs, haystack{name + " headers", h.Bytes()}, haystack{name + " body", x.Body})
	}
	for i, r := range w.api.recorded() {
		if r.OnceShown {
			continue // tenant and API-key creation show their secrets once, by design
		}
		name := fmt.Sprintf("HTTP API answer %d (%s %s → %d)", i, r.Method, r.URL, r.Status)
		hs = append(hs, haystack{name + " headers", headerText(r.Header)}, haystack{name + " body", r.Body})
	}
	if w.gwOpts.DatabaseURL != "" {
		hs = append(hs, haystack{"PostgreSQL rows", gatewaytest.DumpPostgres(t, w.gwOpts.DatabaseURL)})
	} else {
		files, _ := filepath.Glob(filepath.Join(w.gwOpts.DataDir, "quantaseal.db*"))
		if len(files) == 0 {
			t.Errorf("no embedded database file in %s", w.gwOpts.DataDir)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, haystack{"database file " + filepath.Base(f), b})
		}
	}
	return hs
}

// testLeaks is issue 6 item 6: after the run, no seeded or issued secret appears in
// the gateway's logs, the audit events, any answer a caller received (headers and
// bodies, errors included) or the database.
func (w *world) testLeaks(t *testing.T) {
	w.gw.Stop(t) // flush everything to the logs and the database first
	secrets := w.secrets(t)
	w.positiveControl(t, secrets)
	// Nothing of the gateway's own credentials ever reached "Okta", token endpoint included.
	for _, r := range w.okta.Requests() {
		if where := containsQSKey(r); where != "" {
			t.Errorf("LEAK: %s %s reached the double with a qs_live_ key in %s", r.Method, r.Path, where)
		}
		for _, k := range []string{"X-Api-Key", "X-Quantaseal-Integration"} {
			if v := r.Header.Get(k); v != "" {
				t.Errorf("%s %s reached the double with the caller's %s header", r.Method, r.Path, k)
			}
		}
	}
	hs := w.haystacks(t)
	if len(hs) < 10 {
		t.Fatalf("only %d places to scan", len(hs))
	}
	for _, h := range hs {
		for _, s := range secrets {
			for _, f := range s.forms {
				if len(f) < 12 {
					t.Fatalf("secret %q form too short to scan reliably", s.name)
				}
				if i := bytes.Index(h.data, f); i >= 0 {
					t.Errorf("LEAK: %s appears in %s at byte %d: …%s…", s.name, h.name, i, around(h.data, i, len(f)))
					break
				}
			}
		}
	}
}

// findSecret returns the first form of s found in data, or -1.
func findSecret(data []byte, s leakSecret) int {
	for _, f := range s.forms {
		if i := bytes.Index(data, f); i >= 0 {
			return i
		}
	}
	return -1
}

// positiveControl proves the scan finds secrets where they legitimately are: the
// once-shown tenant creation answer holds the tenant's key and HMAC key.
func (w *world) positiveControl(t *testing.T, secrets []leakSecret) {
	t.Helper()
	for _, r := range w.api.recorded() {
		if !r.OnceShown || r.URL != "/api/v2/tenants" || !bytes.Contains(r.Body, []byte(w.tenant.ID)) {
			continue
		}
		for _, s := range secrets {
			if (s.name == "qs_live_ key of "+w.tenant.ID || s.name == "hmac key of "+w.tenant.ID) && findSecret(r.Body, s) < 0 {
				t.Errorf("positive control: the scan does not find %q in the tenant creation answer", s.name)
			}
		}
		return
	}
	t.Error("positive control: no tenant creation answer recorded")
}

// around shows the text around a leak with the secret itself masked.
func around(data []byte, i, n int) string {
	start, end := max(i-60, 0), min(i+n+60, len(data))
	return strings.ToValidUTF8(string(data[start:i])+"[SECRET]"+string(data[i+n:end]), "?")
}
