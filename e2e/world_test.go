package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/client"
	"github.com/quantaseal/gateway/internal/envoytest"
	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/okta/oktatest"
)

// allOperations is the Okta catalogue of ARCHITECTURE.md.
var allOperations = []string{
	"create_user", "deactivate_user", "get_system_log", "get_user",
	"list_applications", "list_groups", "list_users",
}

// variant is one deployment the main flow runs on (issue 7).
type variant struct {
	name     string
	postgres bool // QUANTASEAL_DATABASE_URL = a fresh testenv.Postgres database
	awsKMS   bool // QUANTASEAL_KMS=aws against the local KMS server
}

// Integration names used by the flow.
const (
	intSDK       = "sdk"        // api_key credential, every operation: the Okta SDK's integration
	intOutbound  = "outbound"   // oauth2_client private_key_jwt, every operation: the Go client
	intLimited   = "limited"    // api_key credential, list_users and get_user only
	intBadSecret = "bad_secret" // oauth2_client with a client secret Okta does not accept
	intNoScope   = "no_scope"   // oauth2_client whose app lacks okta.users.read
	intBadKey    = "bad_key"    // oauth2_client private_key_jwt with a key Okta does not know
)

// world is one gateway with its seeded tenant, the Okta double and the fake Envoy.
type world struct {
	v         variant
	okta      *oktatest.Server
	gwOpts    gatewayOptions
	gw        *gateway
	api       *apiClient
	envoy     *envoytest.Envoy
	tenant    tenant
	ints      map[string]string // name → integration id
	boundKeys map[string]string // name → API key bound to that integration
	creds     map[string]string // integration name → its vault credential id
	client    *client.Client    // the Go client with the tenant's profile (unbound key)

	// Collected for the leak scan.
	cliOutput []byte   // output of quantaseal audit verify/export
	export    []byte   // the audit export (JSON Lines)
	otherKeys []tenant // further tenants created during the run

	// Seeded secrets, for the leak scan.
	adminToken    string
	oktaToken     string
	pkClientID    string
	privateKeyPEM string
	badKeyClient  string
	badKeyPEM     string // a private key the double's app does not hold
	badSecret     string // the wrong secret sealed for intBadSecret
	goodSecret    string // what the double expects for intBadSecret's client
	scopedSecret  string // intNoScope's (correct) client secret
	badClientID   string
	scopedClient  string
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newWorld starts the double and the gateway for v, seeds one tenant with five
// integrations through the HTTP API and puts a fake Envoy, generated from the sidecar
// bootstrap, in front of the gateway.
func newWorld(t *testing.T, v variant) *world {
	t.Helper()
	w := &world{v: v, ints: map[string]string{}, boundKeys: map[string]string{}, creds: map[string]string{}}
	// The services first: without them the variant skips before doing any work.
	if v.postgres {
		w.gwOpts.DatabaseURL = postgresURL(t)
	}
	if v.awsKMS {
		configureAWSKMS(t, &w.gwOpts)
	}
	w.okta = oktatest.New(t, oktatest.Options{})

	w.adminToken = "adm_" + randHex(t, 24)
	w.oktaToken = "00" + randHex(t, 20) // an Okta API token's shape
	w.pkClientID = "0oapk" + randHex(t, 6)
	w.badClientID = "0oabad" + randHex(t, 6)
	w.scopedClient = "0oascp" + randHex(t, 6)
	w.badSecret = "wrong-" + randHex(t, 20)
	w.goodSecret = "right-" + randHex(t, 20)
	w.scopedSecret = "scoped-" + randHex(t, 20)

	var rsaKey *rsa.PrivateKey
	rsaKey, w.privateKeyPEM = newRSAKey(t)
	registered, _ := newRSAKey(t)
	_, w.badKeyPEM = newRSAKey(t)
	w.badKeyClient = "0oabk" + randHex(t, 6)

	w.okta.AddAPIToken(w.oktaToken)
	w.okta.AddClient(oktatest.Client{ID: w.pkClientID, Keys: map[string]crypto.PublicKey{"e2e-kid": &rsaKey.PublicKey},
		GrantedScopes: []string{oktatest.ScopeUsersRead, oktatest.ScopeUsersManage, oktatest.ScopeGroupsRead, oktatest.ScopeAppsRead, oktatest.ScopeLogsRead}})
	w.okta.AddClient(oktatest.Client{ID: w.badKeyClient, Keys: map[string]crypto.PublicKey{"e2e-kid": &registered.PublicKey},
		GrantedScopes: []string{oktatest.ScopeUsersRead}})
	w.okta.AddClient(oktatest.Client{ID: w.badClientID, Secret: w.goodSecret, GrantedScopes: []string{oktatest.ScopeUsersRead}})
	w.okta.AddClient(oktatest.Client{ID: w.scopedClient, Secret: w.scopedSecret, GrantedScopes: []string{oktatest.ScopeGroupsRead}})

	w.gwOpts.DataDir = filepath.Join(t.TempDir(), "data")
	w.gwOpts.AdminToken = w.adminToken
	w.gwOpts.AllowedDomains = []string{w.okta.Origin()}
	w.gwOpts.Logs = &gatewaytest.LogBuffer{}
	logs := w.gwOpts.Logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway output (%s):\n%s", v.name, logs.Bytes())
		}
		// E2E_GATEWAY_LOG_DIR keeps the gateway's output for inspection.
		if dir := os.Getenv("E2E_GATEWAY_LOG_DIR"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, v.name+".log"), logs.Bytes(), 0o600)
		}
	})
	w.gw = startGateway(t, w.gwOpts)
	w.api = newAPIClient(w.gw.HTTPURL)
	w.seed(t)
	w.envoy = gatewaytest.NewEnvoy(t, w.gw.GRPCAddr, w.okta.URL())

	c, err := client.New(client.Config{BaseURL: w.envoy.URL(), Profile: w.tenant.Profile, HTTPClient: w.envoy.Client()})
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	return w
}

// newRSAKey returns an RSA key and its PKCS #8 PEM.
func newRSAKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// seed creates the tenant, seals the five Okta credentials and creates the
// integrations and their bound keys, all through the documented HTTP API.
func (w *world) seed(t *testing.T) {
	t.Helper()
	w.tenant = w.api.createTenant(t, w.adminToken, "e2e-"+w.v.name)
	key := w.tenant.APIKey
	apiTokenCred := w.api.sealCredential(t, key, "api_key", "okta api token", map[string]string{"token": w.oktaToken})
	pkCred := w.api.sealCredential(t, key, "oauth2_client", "okta service app (private_key_jwt)", map[string]string{
		"client_id": w.pkClientID, "private_key": w.privateKeyPEM, "private_key_id": "e2e-kid"})
	badCred := w.api.sealCredential(t, key, "oauth2_client", "okta service app (rotated secret)", map[string]string{
		"client_id": w.badClientID, "client_secret": w.badSecret})
	badKeyCred := w.api.sealCredential(t, key, "oauth2_client", "okta service app (unknown key)", map[string]string{
		"client_id": w.badKeyClient, "private_key": w.badKeyPEM, "private_key_id": "e2e-kid"})
	scopedCred := w.api.sealCredential(t, key, "oauth2_client", "okta service app (few scopes)", map[string]string{
		"client_id": w.scopedClient, "client_secret": w.scopedSecret})

	w.creds[intBadSecret], w.creds[intNoScope], w.creds[intBadKey] = badCred, scopedCred, badKeyCred
	origin := w.okta.Origin()
	w.ints[intSDK] = w.api.createIntegration(t, key, intSDK, origin, apiTokenCred, allOperations)
	w.ints[intOutbound] = w.api.createIntegration(t, key, intOutbound, origin, pkCred, allOperations)
	w.ints[intLimited] = w.api.createIntegration(t, key, intLimited, origin, apiTokenCred, []string{"get_user", "list_users"})
	w.ints[intBadSecret] = w.api.createIntegration(t, key, intBadSecret, origin, badCred, []string{"list_users"})
	w.ints[intBadKey] = w.api.createIntegration(t, key, intBadKey, origin, badKeyCred, []string{"list_users"})
	w.ints[intNoScope] = w.api.createIntegration(t, key, intNoScope, origin, scopedCred, []string{"list_groups", "list_users"})
	for _, name := range []string{intSDK, intLimited} {
		w.boundKeys[name] = w.api.createBoundKey(t, w.adminToken, w.tenant.ID, w.ints[name])
	}
}

// otherTenant returns a second tenant (created once) for isolation checks.
func (w *world) otherTenant(t *testing.T) tenant {
	t.Helper()
	if len(w.otherKeys) == 0 {
		w.otherKeys = append(w.otherKeys, w.api.createTenant(t, w.adminToken, "other"))
	}
	return w.otherKeys[0]
}

// apiRequests returns the double's recorded requests to /api/v1 (not the token endpoint).
func apiRequests(reqs []oktatest.Request) []oktatest.Request {
	var out []oktatest.Request
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/api/") {
			out = append(out, r)
		}
	}
	return out
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
