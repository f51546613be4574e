package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/gatewaytest"
)

// keyFiles are data-directory files that hold keys by design (the gateway's signing
// seed, the local KMS key, the generated admin token, the bootstrap tenant's profile);
// every other file — the embedded database and its WAL — is scanned.
var keyFiles = map[string]bool{"signing.key": true, "vault.key": true, "admin.token": true, "tenant-profile.json": true}

// scanEverything searches every output of the run for the world's secrets and the
// access tokens Okta issued: gateway logs, the audit events, /metrics, every response a
// client saw (headers and bodies), and the database. It returns the number of hits.
func scanEverything(t *testing.T, w *world, metrics []byte, events []audit.Event) int {
	t.Helper()
	blobs := map[string][]byte{
		"gateway log": w.gw.Logs(),
		"metrics":     metrics,
		"responses":   w.seen.Bytes(),
	}
	ev, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	blobs["audit events"] = ev
	entries, err := os.ReadDir(w.gw.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || keyFiles[e.Name()] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(w.gw.DataDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		blobs["data dir "+e.Name()] = b
	}
	if w.dbURL != "" {
		blobs["postgres"] = gatewaytest.DumpPostgres(t, w.dbURL)
	}
	for i, tok := range w.front.AccessTokens() {
		w.secrets[fmt.Sprintf("okta_access_token_%d", i)] = tok
	}
	return scanBlobs(t, w, blobs)
}

// scanBlobs searches blobs for w.secrets and reports each hit as an error.
func scanBlobs(t *testing.T, w *world, blobs map[string][]byte) int {
	t.Helper()
	secrets := map[string][]byte{}
	for k, v := range w.secrets {
		secrets[k] = []byte(v)
	}
	sc, err := gatewaytest.NewScanner(secrets)
	if err != nil {
		t.Fatal(err)
	}
	hits, bytes := 0, 0
	for where, b := range blobs {
		bytes += len(b)
		for _, h := range sc.Scan(where, b) {
			hits++
			t.Errorf("leak: %v", h)
		}
	}
	t.Logf("secret scan: %d secrets in %d forms over %d blobs (%d bytes): %d hits", len(sc.Secrets()), sc.Needles(), len(blobs), bytes, hits)
	return hits
}
