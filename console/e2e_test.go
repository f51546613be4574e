package console

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/audit/audittest"
	auditsqlite "github.com/quantaseal/gateway/audit/sqlitestore"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/sqlitedb"
	"github.com/quantaseal/gateway/registry"
	registrysqlite "github.com/quantaseal/gateway/registry/sqlitestore"
	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/localkey"
)

// The concrete types the gateway wires satisfy the console's interfaces.
var (
	_ Registry = (*registrysqlite.Store)(nil)
	_ Registry = registry.Store(nil)
	_ Vault    = (*vault.Vault)(nil)
	_ Audit    = (*auditsqlite.Store)(nil)
	_ Audit    = audit.Store(nil)
)

var updateScreenshots = flag.Bool("screenshots", false, "rewrite docs/screenshots/*.png from the browser test")

// screenshotDir is where the README's screenshots live, from this package's directory.
const screenshotDir = "../docs/screenshots"

// chromiumPath finds the browser, or skips (fails when services are required).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("QUANTASEAL_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal("chromium is not installed (apt-get install -y chromium) and QUANTASEAL_TEST_REQUIRE_SERVICES=1")
	}
	t.Skip("chromium is not installed; skipping the browser test")
	return ""
}

// e2eStack is the console over the real embedded stores, vault and audit log.
type e2eStack struct {
	reg     *registrysqlite.Store
	log     *audit.Log
	tenant  registry.Tenant
	key     string
	url     string
	logTime func(time.Time) // sets the time the audit log stamps on the next event
}

func newE2EStack(t *testing.T) *e2eStack {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	regDB, err := sqlitedb.Open(ctx, filepath.Join(dir, "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { regDB.Close() })
	reg, err := registrysqlite.New(ctx, regDB)
	if err != nil {
		t.Fatal(err)
	}
	audDB, err := sqlitedb.Open(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audDB.Close() })
	audStore, err := auditsqlite.New(ctx, audDB)
	if err != nil {
		t.Fatal(err)
	}
	wrapper, err := localkey.New(localkey.Config{Path: filepath.Join(dir, "vault.key")})
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(vault.Config{}, reg, wrapper)

	var (
		mu     sync.Mutex
		logNow = time.Now()
	)
	signer, keys := audittest.Signer(t)
	l, err := audit.NewLog(audit.Config{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return logNow
	}}, audStore, signer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })

	now := time.Now().UTC()
	tenant := registry.Tenant{ID: id.New(registry.TenantIDPrefix), Name: "Acme Corp", CreatedAt: now}
	rec, key := registry.NewAPIKey(tenant.ID, "", now)
	if err := reg.CreateTenant(ctx, tenant, rec); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{AdminToken: secret.New(adminToken)}, Deps{
		Registry: reg, Vault: v, Audit: audStore,
		SigningKeys: func() []SigningKey {
			var out []SigningKey
			for kid, pub := range keys {
				out = append(out, SigningKey{KeyID: kid, PublicKey: pub, Current: true})
			}
			return out
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &e2eStack{reg: reg, log: l, tenant: tenant, key: key.Reveal(), url: srv.URL,
		logTime: func(t time.Time) { mu.Lock(); logNow = t; mu.Unlock() }}
}

// seedAudit appends a day of calls to the integration through the real audit log.
func (s *e2eStack) seedAudit(t *testing.T, integrationID string) {
	t.Helper()
	type call struct {
		op, decision, reason string
		status               int64
	}
	calls := []call{
		{"list_users", "allow", "", 200}, {"get_user", "allow", "", 200}, {"list_users", "allow", "", 200},
		{"create_user", "deny", "operation_not_allowed", 403}, {"list_groups", "deny", "operation_not_allowed", 403},
		{"list_users", "allow", "", 200}, {"get_user", "deny", "upstream_error", 404}, {"", "deny", "unknown_operation", 403},
	}
	now := time.Now().UTC()
	const n = 96
	for i := range n {
		c := calls[(i*5+i/7)%len(calls)]
		s.logTime(now.Add(-time.Duration(n-i) * 14 * time.Minute))
		_, err := s.log.Append(t.Context(), audit.Event{
			TenantID: s.tenant.ID, IntegrationID: integrationID, Operation: c.op, Caller: "key_demo",
			Method: "GET", Path: "/api/v1/users", Decision: c.decision, Reason: c.reason, Status: c.status,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s.logTime(now)
	if err := s.log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives headless Chromium through the console over the real embedded
// stores: sign in, seal a credential, create an integration, see it listed, browse the
// audit log, open an event, verify the chain, sign out. With -screenshots (or when a
// file is missing) it writes docs/screenshots/*.png.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := chromiumPath(t)
	stack := newE2EStack(t)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	const clientSecret = "e2e-client-secret-7d41c0ffee"
	base := stack.url
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	waitURL := func(substr string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			loc, err := chromedp.Run(ctx, chromedp.Location())
			if err == nil && strings.Contains(loc, substr) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the browser never reached a URL containing %q (at %q, %v)", substr, loc, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	html := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatalf("page HTML: %v", err)
		}
		if strings.Contains(s, clientSecret) {
			t.Errorf("a page contains the sealed client secret")
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		html()
		path := filepath.Join(screenshotDir, name+".png")
		if _, err := os.Stat(path); err == nil && !*updateScreenshots {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}

	// Sign in.
	run("open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("sign-in")))
	run("type the key", chromedp.SendKeys(chromedp.ID("key"), stack.key))
	shot("01-sign-in")
	run("sign in", chromedp.Click(chromedp.ID("sign-in")), chromedp.WaitVisible(chromedp.ID("new-integration")))

	// Seal a credential.
	run("open the seal form", chromedp.Navigate(base+"/console/vault/new"), chromedp.WaitVisible(chromedp.ID("seal")))
	run("fill the seal form",
		chromedp.SendKeys(chromedp.ID("name"), "okta-prod service app"),
		chromedp.SendKeys(chromedp.ID("client_id"), "0oa8f5j3ecb5w1Ts30h8"),
		chromedp.SendKeys(chromedp.ID("client_secret"), clientSecret),
	)
	if vis := text(`fieldset[data-credential-type="api_key"] legend`); vis != "" {
		// The script hides the other type's inputs; Text of a hidden node is "".
		t.Errorf("the api_key inputs are visible next to oauth2_client: %q", vis)
	}
	shot("02-seal-credential")
	run("seal", chromedp.Click(chromedp.ID("seal")), chromedp.WaitVisible(chromedp.ID("fingerprint")))
	if fp := text("#fingerprint"); !strings.HasPrefix(fp, "hmac-sha256:") {
		t.Errorf("fingerprint = %q", fp)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	credID := loc[strings.LastIndex(loc, "/")+1:]
	if !id.Valid("vlt", credID) {
		t.Fatalf("after sealing, the page is %s", loc)
	}
	shot("03-credential")

	// Create an integration.
	run("open the integration form", chromedp.Navigate(base+"/console/integrations/new"), chromedp.WaitVisible(chromedp.ID("save-integration")))
	run("fill the integration form",
		chromedp.SendKeys(chromedp.ID("name"), "corp-okta"),
		chromedp.SendKeys(chromedp.ID("okta_domain"), "https://acme.okta.com"),
		chromedp.SetValue(chromedp.ID("credential_id"), credID),
		chromedp.Click(chromedp.CSS(`input[value="list_users"]`)),
		chromedp.Click(chromedp.CSS(`input[value="get_user"]`)),
		chromedp.Click(chromedp.CSS(`input[value="list_groups"]`)),
		chromedp.SetValue(chromedp.ID("envelope"), "on_request"),
	)
	shot("04-integration-form")
	run("create", chromedp.Click(chromedp.ID("save-integration")), chromedp.WaitVisible(chromedp.CSS("p.flash")))
	if flash := text("p.flash"); !strings.Contains(flash, `"corp-okta" created`) {
		t.Errorf("flash = %q", flash)
	}
	if table := text("table"); !strings.Contains(table, "corp-okta") || !strings.Contains(table, "https://acme.okta.com") ||
		!strings.Contains(table, "okta-prod service app") {
		t.Errorf("the integration is not listed: %q", table)
	}
	shot("05-integrations")
	ins, err := stack.reg.ListIntegrations(t.Context(), stack.tenant.ID)
	if err != nil || len(ins) != 1 {
		t.Fatalf("integrations in the store: %v, %v", ins, err)
	}
	if got := strings.Join(ins[0].AllowedOperations, ","); got != "get_user,list_groups,list_users" {
		t.Errorf("allowed operations = %s", got)
	}

	// Browse the audit log, open an event, verify the chain.
	stack.seedAudit(t, ins[0].ID)
	run("open the audit page", chromedp.Navigate(base+"/console/audit"), chromedp.WaitVisible(chromedp.ID("audit-chart")))
	if h := text("h2 .count"); h != "(96 matching)" {
		t.Errorf("audit count = %q", h)
	}
	shot("06-audit")
	run("filter denied calls", chromedp.SetValue(chromedp.ID("f-decision"), "deny"), chromedp.Click(chromedp.ID("apply-filters")))
	// The click starts a navigation; the old page's chart is still visible until the new
	// page replaces it, so wait for the filtered URL before reading the table.
	waitURL("decision=deny")
	run("wait for the filtered page", chromedp.WaitVisible(chromedp.ID("audit-chart")))
	if rows, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("table.events tbody"))); err != nil ||
		strings.Contains(rows, `class="decision allow"`) || !strings.Contains(rows, `class="decision deny"`) {
		t.Error("the deny filter shows allowed calls")
	}
	run("open an event", chromedp.Click(chromedp.CSS("a.event-link")), chromedp.WaitVisible(chromedp.ID("proof-result")))
	if r := text("#proof-result"); !strings.HasPrefix(r, "Proof verified") {
		t.Errorf("proof result = %q", r)
	}
	if note := text("#checkpoint-note"); !strings.HasPrefix(note, "quantaseal.audit/v1") {
		t.Errorf("checkpoint note = %q", note)
	}
	shot("07-audit-event")
	run("verify the chain", chromedp.Navigate(base+"/console/audit"), chromedp.WaitVisible(chromedp.ID("verify-chain")),
		chromedp.Click(chromedp.ID("verify-chain")), chromedp.WaitVisible(chromedp.ID("verify-result")))
	if r := text("#verify-result"); !strings.HasPrefix(r, "Every chain verifies") {
		t.Errorf("verify result = %q", r)
	}
	shot("08-verify-chain")

	// Sign out: the session is gone.
	run("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("sign-in")))
	run("revisit", chromedp.Navigate(base+"/console/integrations"), chromedp.WaitVisible(chromedp.ID("sign-in")))
	loc, err = chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasSuffix(loc, "/console/login") {
		t.Errorf("after sign-out, /console/integrations shows %s (%v)", loc, err)
	}

	// The operator's view of tenants.
	run("admin sign in", chromedp.SendKeys(chromedp.ID("key"), adminToken), chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("create-tenant")))
	if !strings.Contains(text("table"), "Acme Corp") {
		t.Error("the tenant is not listed for the admin")
	}
	shot("09-tenants")
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(fmt.Errorf("browser: %w", err))
	}
}
