package console

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/vault"
)

// testPEM returns a fresh EC P-256 private key in PKCS#8 PEM.
func testPEM(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func TestNormalizePrivateKey(t *testing.T) {
	p := testPEM(t)
	tests := []struct {
		name, in, want string
	}{
		{"flattened PEM", strings.ReplaceAll(p, "\n", ""), p},
		{"flattened with spaces", strings.ReplaceAll(p, "\n", " "), p},
		{"PEM with line breaks", p, p},
		{"JWK", `{"kty":"EC","d":"x"}`, `{"kty":"EC","d":"x"}`},
		{"no footer", "-----BEGIN PRIVATE KEY-----AAAA", "-----BEGIN PRIVATE KEY-----AAAA"},
		{"mismatched footer", "-----BEGIN A-----AAAA-----END B-----", "-----BEGIN A-----AAAA-----END B-----"},
		{"empty label", "-----BEGIN -----AAAA-----END -----", "-----BEGIN -----AAAA-----END -----"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizePrivateKey(tc.in); got != tc.want {
				t.Errorf("normalizePrivateKey:\n%s", cmp.Diff(tc.want, got))
			}
		})
	}
	// The restored PEM is one the vault accepts.
	c := vault.Credential{Type: vault.CredentialTypeOAuth2Client, ClientID: "c",
		PrivateKey: secret.New(normalizePrivateKey(strings.ReplaceAll(p, "\n", "")))}
	if err := c.Validate(); err != nil {
		t.Errorf("vault refuses the restored PEM: %v", err)
	}
}

// FuzzNormalizePrivateKey: the function never panics, is idempotent, and changes only
// flattened PEM blocks.
func FuzzNormalizePrivateKey(f *testing.F) {
	f.Add("-----BEGIN PRIVATE KEY-----MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-----END PRIVATE KEY-----")
	f.Add(`{"kty":"RSA"}`)
	f.Add("-----BEGIN X-----")
	f.Fuzz(func(t *testing.T, in string) {
		out := normalizePrivateKey(in)
		if out != in && !strings.HasPrefix(strings.TrimSpace(in), "-----BEGIN ") {
			t.Fatalf("changed a non-PEM value: %q -> %q", in, out)
		}
		if again := normalizePrivateKey(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}

func TestBuildChart(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	ev := func(op, dec string, at time.Duration) audit.Event {
		return audit.Event{Operation: op, Decision: dec, Time: from.Add(at).Format(audit.TimeLayout)}
	}
	events := []audit.Event{
		ev("list_users", "allow", 0), ev("list_users", "allow", 30*time.Minute), ev("list_users", "deny", 90*time.Minute),
		ev("get_user", "deny", 23*time.Hour+59*time.Minute), ev("", "deny", time.Hour),
		ev("list_users", "allow", 25*time.Hour), // outside the window
	}
	c := buildChart(events, from, to)
	type row struct {
		Label             string
		Allow, Deny, Bars int
		MaxPerBucket, Tot int
	}
	var got []row
	for _, r := range c.Rows {
		got = append(got, row{r.Label, r.Allow, r.Deny, len(r.Bars), r.MaxPerBucket, r.Total})
	}
	want := []row{
		{"list_users", 2, 1, 2, 2, 3},
		{"(unknown operation)", 0, 1, 1, 1, 1},
		{"get_user", 0, 1, 1, 1, 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if c.BucketLabel != "1h0m0s" || len(c.Ticks) != 5 || c.Empty {
		t.Errorf("bucket %q, %d ticks, empty %v", c.BucketLabel, len(c.Ticks), c.Empty)
	}
	if b := c.Rows[0].Bars[0]; b.Title != "list_users, 01-01 00:00 – 01:00 UTC: 2 allowed, 0 denied" || !b.HasAllow || b.HasDeny {
		t.Errorf("first bar = %+v", b)
	}

	// More operations than rows: the rest are summed into one row.
	var many []audit.Event
	for i := range 12 {
		for range 12 - i {
			many = append(many, ev(string(rune('a'+i)), "allow", time.Hour))
		}
	}
	c = buildChart(many, from, to)
	if len(c.Rows) != chartMaxRows || c.Rows[chartMaxRows-1].Label != otherOpsLabel || c.Rows[chartMaxRows-1].Total != 5+4+3+2+1 {
		t.Errorf("rows: %d, last %q total %d", len(c.Rows), c.Rows[len(c.Rows)-1].Label, c.Rows[len(c.Rows)-1].Total)
	}
	if c := buildChart(nil, from, to); !c.Empty {
		t.Error("no events: chart not empty")
	}
}
