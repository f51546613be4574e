package reliability

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/quantaseal/gateway/internal/gatewaytest"
	"github.com/quantaseal/gateway/internal/testenv"
)

const kmsRegion = "eu-west-2"

// kmsEnv creates a key on the local KMS server and returns the gateway environment for
// QUANTASEAL_KMS=aws with its endpoint replaced by endpoint (a proxy) and ttl as the
// vault key cache TTL.
func kmsEnv(t *testing.T, realEndpoint, endpoint string, ttl time.Duration) []string {
	t.Helper()
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "rel", SecretAccessKey: "rel-secret", Source: "reliability"}, nil
	})
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(kmsRegion), config.WithCredentialsProvider(creds))
	if err != nil {
		t.Fatal(err)
	}
	c := kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(realEndpoint) })
	out, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("quantaseal reliability " + t.Name())})
	if err != nil {
		t.Fatalf("kms CreateKey on %s: %v", realEndpoint, err)
	}
	return []string{
		"QUANTASEAL_KMS=aws", "QUANTASEAL_KMS_ENDPOINT=" + endpoint, "QUANTASEAL_KMS_REGION=" + kmsRegion,
		"QUANTASEAL_KMS_KEY_ID=" + aws.ToString(out.KeyMetadata.Arn), "QUANTASEAL_KMS_CACHE_TTL=" + ttl.String(),
		"AWS_ACCESS_KEY_ID=rel", "AWS_SECRET_ACCESS_KEY=rel-secret", "AWS_REGION=" + kmsRegion, "AWS_EC2_METADATA_DISABLED=true",
	}
}

// TestKMSOutage runs the gateway with QUANTASEAL_KMS=aws against the local KMS server
// through a TCP proxy and a short vault key cache TTL, then cuts the KMS. Calls that need
// the tenant's vault key (envelope responses: the tenant HMAC key is sealed in the vault)
// keep working from the cache until the TTL runs out, then fail with 503 "unavailable"
// within a bounded time, as does tenant creation; once the KMS is back they work again
// without a restart. The chain verifies and every acknowledged event is in it.
func TestKMSOutage(t *testing.T) {
	const ttl = 5 * time.Second
	real := testenv.KMSEndpoint(t)
	proxy, proxied := gatewaytest.NewURLProxy(t, real)
	w := newWorld(t, worldOptions{env: kmsEnv(t, real, proxied, ttl)})
	envelopeCall := func(i int) result {
		return w.call(t.Context(), w.intSSWS, "GET", fmt.Sprintf("/api/v1/users?limit=1&q=kms%d", i), nil,
			http.Header{"Accept": {envelopeAccept}})
	}
	isEnvelope := func(r result) bool {
		return r.status == http.StatusOK && strings.HasPrefix(r.header.Get("Content-Type"), envelopeAccept)
	}

	// Fill the caches, then cut the KMS at once.
	filled := time.Now()
	if r := envelopeCall(0); !isEnvelope(r) {
		t.Fatalf("warm-up envelope call: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	proxy.Down()
	var served, refused int
	for i := 1; time.Since(filled) < ttl-1500*time.Millisecond; i++ {
		r := envelopeCall(i)
		if !isEnvelope(r) {
			t.Fatalf("call %d, %v after the cache was filled (TTL %v), KMS down: %d %s; want the cached key to serve",
				i, time.Since(filled).Round(time.Millisecond), ttl, r.status, r.body)
		}
		served++
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(filled.Add(ttl + 500*time.Millisecond)))
	var maxLatency time.Duration
	for i := range 5 {
		r := envelopeCall(100 + i)
		if r.status != http.StatusServiceUnavailable || r.code() != "unavailable" {
			t.Errorf("call after the TTL with the KMS down: %d %s, want 503 unavailable", r.status, r.body)
		}
		maxLatency = max(maxLatency, r.took)
		refused++
	}
	if maxLatency > 10*time.Second {
		t.Errorf("a call took %v to fail with the KMS down; want a bounded failure", maxLatency)
	}
	if r, err := w.api.Do(t.Context(), "POST", "/api/v2/tenants", gatewaytest.Bearer(w.gw.AdminToken), map[string]any{"name": "during-kms-outage"}); err != nil || r.Status != http.StatusServiceUnavailable {
		t.Errorf("create tenant with the KMS down: %v %v, want 503", r, err)
	}

	proxy.Up()
	waitFor(t, 15*time.Second, "envelope calls succeed after the KMS returned", func() bool { return isEnvelope(envelopeCall(200)) })
	w.api.Must(t, http.StatusCreated, "POST", "/api/v2/tenants", gatewaytest.Bearer(w.gw.AdminToken), map[string]any{"name": "after-kms-outage"})

	w.gw.Stop(t)
	events := w.verifiedEvents(t)
	missing := w.missingAcked(events)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged audit events missing: %v", len(missing), missing)
	}
	unaudited := w.unaudited(events)
	if len(unaudited) > 0 {
		t.Errorf("%d calls reached Okta without a committed intent event:\n%s", len(unaudited), describe(unaudited))
	}
	addFigures(t, figures{
		Faults: int(proxy.Downs()), Requests: int(w.sent.Load()), Committed: len(events), Verified: len(events), Leaks: len(missing), Unaudited: len(unaudited),
		Notes: fmt.Sprintf("KMS cut for TTL+1.5 s (TTL %v): %d calls served from the key cache, %d refused with 503 (slowest %v), recovered without restart",
			ttl, served, refused, maxLatency.Round(time.Millisecond)),
	})
}
