package awskms_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/internal/testenv"
	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/awskms"
	"github.com/quantaseal/gateway/vault/vaulttest"
)

var (
	_ vault.KeyWrapper   = (*awskms.Wrapper)(nil)
	_ vault.KeyDescriber = (*awskms.Wrapper)(nil)
)

const region = "eu-west-2"

// fakeCreds are static test credentials; local KMS accepts any.
var fakeCreds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: "x", SecretAccessKey: "x", Source: "test"}, nil
})

// kmsClient is a plain SDK client for test setup (creating keys).
func kmsClient(t *testing.T, endpoint string) *kms.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(region), config.WithCredentialsProvider(fakeCreds))
	if err != nil {
		t.Fatal(err)
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func createKey(t *testing.T, c *kms.Client) string {
	t.Helper()
	out, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("quantaseal test " + t.Name())})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

func newWrapper(t *testing.T, cfg awskms.Config) *awskms.Wrapper {
	t.Helper()
	cfg.Region = region
	cfg.Credentials = fakeCreds
	w, err := awskms.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWrapUnwrapLocalKMS(t *testing.T) {
	endpoint := testenv.KMSEndpoint(t)
	keyARN := createKey(t, kmsClient(t, endpoint))
	w := newWrapper(t, awskms.Config{KeyID: keyARN, Endpoint: endpoint})
	ctx := t.Context()
	seed := bytes.Repeat([]byte{0x5a, 0xa5}, 32)

	wrapped, err := w.Wrap(ctx, "ten_a", vault.PurposeVaultKey, seed)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if bytes.Contains(wrapped, seed[:16]) {
		t.Error("wrapped value holds the plaintext")
	}
	got, err := w.Unwrap(ctx, "ten_a", vault.PurposeVaultKey, wrapped)
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	if p, id, err := w.DescribeKey(t.Context(), "ten_a"); p != awskms.Provider || id != keyARN || err != nil {
		t.Errorf("DescribeKey = %q, %q, %v", p, id, err)
	}

	bad := []struct {
		name, tenant, purpose string
		blob                  []byte
	}{
		{"other tenant", "ten_b", vault.PurposeVaultKey, wrapped},
		{"other purpose", "ten_a", "hmac_key", wrapped},
		{"corrupted", "ten_a", vault.PurposeVaultKey, append(bytes.Clone(wrapped[:len(wrapped)-1]), wrapped[len(wrapped)-1]^1)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Unwrap(ctx, tt.tenant, tt.purpose, tt.blob)
			var ke *awskms.Error
			if !errors.As(err, &ke) {
				t.Fatalf("Unwrap = %v, want *awskms.Error", err)
			}
			if ke.Temporary() || errors.Is(err, vault.ErrUnavailable) {
				t.Errorf("Unwrap = %v: a wrong context must not be retryable", err)
			}
			if ke.Code == "" || ke.Op != "decrypt" {
				t.Errorf("Error = %+v, want a KMS code", ke)
			}
			t.Logf("%v", err)
		})
	}
}

func TestKeyPerTenant(t *testing.T) {
	endpoint := testenv.KMSEndpoint(t)
	c := kmsClient(t, endpoint)
	keyA, keyB := createKey(t, c), createKey(t, c)
	keys := map[string]string{"ten_a": keyA, "ten_b": keyB}
	w := newWrapper(t, awskms.Config{Endpoint: endpoint, KeyIDFor: func(tenant string) (string, error) {
		k, ok := keys[tenant]
		if !ok {
			return "", errors.New("no KMS key configured")
		}
		return k, nil
	}})
	ctx := t.Context()
	for tenant, key := range keys {
		wrapped, err := w.Wrap(ctx, tenant, "p", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		// The blob names its key: KMS reports which key decrypted it.
		out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped, EncryptionContext: map[string]string{"tenant_id": tenant, "purpose": "p"}})
		if err != nil || aws.ToString(out.KeyId) != key {
			t.Errorf("%s wrapped under %q (%v), want %q", tenant, aws.ToString(out.KeyId), err, key)
		}
	}
	if _, err := w.Wrap(ctx, "ten_unknown", "p", []byte("x")); err == nil {
		t.Error("Wrap for a tenant without a key succeeded")
	}
	if _, _, err := w.DescribeKey(t.Context(), "ten_unknown"); err == nil {
		t.Error("DescribeKey for a tenant without a key succeeded")
	}
}

// TestKeyFromContext: while a tenant is being created its row does not exist yet, so the
// key named in the request travels in the context and wins over Config.KeyIDFor.
func TestKeyFromContext(t *testing.T) {
	endpoint := testenv.KMSEndpoint(t)
	c := kmsClient(t, endpoint)
	fallback, requested := createKey(t, c), createKey(t, c)
	w := newWrapper(t, awskms.Config{Endpoint: endpoint, KeyIDFor: func(string) (string, error) { return fallback, nil }})
	ctx := vault.WithKMSKeyID(t.Context(), requested)
	wrapped, err := w.Wrap(ctx, "ten_new", "hmac", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: wrapped, EncryptionContext: map[string]string{"tenant_id": "ten_new", "purpose": "hmac"}})
	if err != nil || aws.ToString(out.KeyId) != requested {
		t.Errorf("wrapped under %q (%v), want the requested key %q", aws.ToString(out.KeyId), err, requested)
	}
	if _, id, err := w.DescribeKey(ctx, "ten_new"); err != nil || id != requested {
		t.Errorf("DescribeKey = %q, %v; want %q", id, err, requested)
	}
	if _, id, _ := w.DescribeKey(t.Context(), "ten_new"); id != fallback {
		t.Errorf("without the context DescribeKey = %q, want the KeyIDFor key %q", id, fallback)
	}
}

func TestNonRetryableKMSErrors(t *testing.T) {
	endpoint := testenv.KMSEndpoint(t)
	c := kmsClient(t, endpoint)
	disabled := createKey(t, c)
	if _, err := c.DisableKey(t.Context(), &kms.DisableKeyInput{KeyId: aws.String(disabled)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		keyID string
	}{
		{"unknown key", "arn:aws:kms:eu-west-2:111122223333:key/00000000-0000-0000-0000-000000000000"},
		{"disabled key", disabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWrapper(t, awskms.Config{KeyID: tt.keyID, Endpoint: endpoint})
			_, err := w.Wrap(t.Context(), "ten_a", "p", []byte("x"))
			var ke *awskms.Error
			if !errors.As(err, &ke) || ke.Temporary() || errors.Is(err, vault.ErrUnavailable) || ke.Code == "" {
				t.Fatalf("Wrap = %v, want a non-retryable *awskms.Error with a code", err)
			}
			t.Logf("%v", err)
		})
	}
}

// closedPort returns a loopback URL nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// kmsErrorServer answers every call with status and a KMS JSON error of type code.
func kmsErrorServer(t *testing.T, status int, code string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"__type":"` + code + `","message":"test"}`))
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func TestUnavailableMapping(t *testing.T) {
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
		timeout  time.Duration
		attempts int
		wantTemp bool
		wantCode string
	}{
		{"connection refused", closedPort, 2 * time.Second, 3, true, ""},
		{"no answer (timeout)", silentServer, 300 * time.Millisecond, 3, true, ""},
		{"HTTP 500 KMSInternalException", func(t *testing.T) string { return kmsErrorServer(t, 500, "KMSInternalException") }, 2 * time.Second, 1, true, "KMSInternalException"},
		{"HTTP 503 without KMS error type", func(t *testing.T) string { return kmsErrorServer(t, 503, "") }, 2 * time.Second, 1, true, "UnknownError"},
		{"HTTP 400 ThrottlingException", func(t *testing.T) string { return kmsErrorServer(t, 400, "ThrottlingException") }, 2 * time.Second, 1, true, "ThrottlingException"},
		{"HTTP 400 AccessDeniedException", func(t *testing.T) string { return kmsErrorServer(t, 400, "AccessDeniedException") }, 2 * time.Second, 1, false, "AccessDeniedException"},
		{"HTTP 400 InvalidCiphertextException", func(t *testing.T) string { return kmsErrorServer(t, 400, "InvalidCiphertextException") }, 2 * time.Second, 1, false, "InvalidCiphertextException"},
		{"HTTP 400 NotFoundException", func(t *testing.T) string { return kmsErrorServer(t, 400, "NotFoundException") }, 2 * time.Second, 1, false, "NotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWrapper(t, awskms.Config{KeyID: "alias/x", Endpoint: tt.endpoint(t), Timeout: tt.timeout, MaxAttempts: tt.attempts})
			start := time.Now()
			_, err := w.Unwrap(t.Context(), "ten_a", "p", []byte("blob"))
			elapsed := time.Since(start)
			var ke *awskms.Error
			if !errors.As(err, &ke) {
				t.Fatalf("Unwrap = %v, want *awskms.Error", err)
			}
			if ke.Temporary() != tt.wantTemp || errors.Is(err, vault.ErrUnavailable) != tt.wantTemp || ke.Code != tt.wantCode {
				t.Errorf("Unwrap = %v (temporary %v, code %q), want temporary %v, code %q", err, ke.Temporary(), ke.Code, tt.wantTemp, tt.wantCode)
			}
			if elapsed > tt.timeout+time.Second {
				t.Errorf("took %v, want within Timeout %v", elapsed, tt.timeout)
			}
		})
	}
}

func TestCallerCancelIsNotUnavailable(t *testing.T) {
	w := newWrapper(t, awskms.Config{KeyID: "alias/x", Endpoint: silentServer(t)})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := w.Unwrap(ctx, "ten_a", "p", []byte("blob"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Unwrap = %v, want Canceled and not ErrUnavailable", err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	tests := []struct {
		name string
		cfg  awskms.Config
	}{
		{"no key", awskms.Config{Region: region}},
		{"no region", awskms.Config{KeyID: "alias/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := awskms.New(t.Context(), tt.cfg); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

// TestVaultEndToEnd seals and unseals through the Vault, real KMS and an in-memory store,
// and checks that no secret reaches the store.
func TestVaultEndToEnd(t *testing.T) {
	endpoint := testenv.KMSEndpoint(t)
	keyARN := createKey(t, kmsClient(t, endpoint))
	w := newWrapper(t, awskms.Config{KeyID: keyARN, Endpoint: endpoint})
	store := vaulttest.NewMemStore()
	ctx := t.Context()
	const clientSecret = "okta-client-secret-e2e-0123456789ABCDEFGH"
	const hmacKey = "tenant-hmac-key-e2e-0123456789"

	v := vault.New(vault.Config{}, store, w)
	meta, err := v.Seal(ctx, "ten_a", "corp", vault.CredentialTypeOAuth2Client, vault.Credential{
		ClientID: "0oa-e2e", ClientSecret: secret.New(clientSecret),
	})
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	hmacBlob, err := v.SealBytes(ctx, "ten_a", "hmac_key", []byte(hmacKey))
	if err != nil {
		t.Fatal(err)
	}

	// A second replica with a cold cache must go to KMS.
	v2 := vault.New(vault.Config{}, store, w)
	got, err := v2.Unseal(ctx, "ten_a", meta.ID)
	if err != nil {
		t.Fatalf("Unseal: %v", err)
	}
	if got.ClientID != "0oa-e2e" || got.ClientSecret.Reveal() != clientSecret {
		t.Error("Unseal returned a different credential")
	}
	if s, err := v2.OpenBytes(ctx, "ten_a", "hmac_key", hmacBlob); err != nil || s.Reveal() != hmacKey {
		t.Errorf("OpenBytes: %v", err)
	}
	k, err := store.GetTenantVaultKey(ctx, "ten_a")
	if err != nil || k.KeyProvider != awskms.Provider || k.KMSKeyID != keyARN {
		t.Errorf("stored key = %q %q, %v", k.KeyProvider, k.KMSKeyID, err)
	}
	all := store.AllBytes()
	if bytes.Contains(all, []byte(clientSecret)) || bytes.Contains(all, []byte(hmacKey)) {
		t.Error("store holds a plaintext secret")
	}

	// KMS down for a fresh replica: ErrUnavailable and nothing written.
	down := newWrapper(t, awskms.Config{KeyID: keyARN, Endpoint: closedPort(t), Timeout: time.Second})
	v3 := vault.New(vault.Config{}, store, down)
	_, before := store.Counts()
	if _, err := v3.Seal(ctx, "ten_b", "x", vault.CredentialTypeAPIKey, vault.Credential{Token: secret.New("tok")}); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Seal with KMS down = %v, want ErrUnavailable", err)
	}
	if _, err := store.GetTenantVaultKey(ctx, "ten_b"); !errors.Is(err, vault.ErrNotFound) {
		t.Error("Seal with KMS down wrote a vault key")
	}
	if _, after := store.Counts(); after != before {
		t.Error("Seal with KMS down wrote a credential")
	}
	if _, err := v3.Unseal(ctx, "ten_a", meta.ID); !errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Unseal with KMS down = %v, want ErrUnavailable", err)
	}
}

func TestMain(m *testing.M) {
	// Keep the SDK from reading a developer's ~/.aws or contacting EC2 IMDS.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	m.Run()
}
