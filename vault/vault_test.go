package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/vaulttest"
)

const (
	tenantA      = "ten_01JDAAAAAAAAAAAAAAAAAAAAAA"
	tenantB      = "ten_01JDBBBBBBBBBBBBBBBBBBBBBB"
	clientSecret = "s3cr3t-0kta-client-secret-value-ABCDEFGHIJ"
	apiToken     = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcd"
)

type harness struct {
	v     *vault.Vault
	store *vaulttest.MemStore
	kms   *vaulttest.FakeWrapper
	clock *clock
}

func newHarness(t testing.TB, ttl time.Duration) *harness {
	t.Helper()
	h := &harness{store: vaulttest.NewMemStore(), kms: vaulttest.NewFakeWrapper(), clock: newClock()}
	h.v = vault.New(vault.Config{KeyCacheTTL: ttl, Now: h.clock.Now}, h.store, h.kms)
	return h
}

// sealAPIKey seals apiKey() as credential "a" of tenantA.
func (h *harness) sealAPIKey(t testing.TB) vault.CredentialMeta {
	t.Helper()
	meta, err := h.v.Seal(t.Context(), tenantA, "a", "api_key", apiKey())
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func TestSealUnsealRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		cred    vault.Credential
		fp      string // expected fingerprint; "" = an HMAC fingerprint
		alg     string
		wantKID string
	}{
		{name: "client secret", cred: oauthSecret()},
		{name: "api token", cred: apiKey()},
		{name: "RSA PKCS#1", cred: withKey(rsaPKCS1(), "kid-1"), fp: rsaThumbprint(), alg: vault.AlgRS256, wantKID: "kid-1"},
		{name: "RSA PKCS#8", cred: withKey(rsaPKCS8(), ""), fp: rsaThumbprint(), alg: vault.AlgRS256},
		{name: "EC PKCS#8", cred: withKey(ecPKCS8(), ""), fp: ecThumbprint(), alg: vault.AlgES256},
		{name: "EC SEC1", cred: withKey(ecSEC1(), "k"), fp: ecThumbprint(), alg: vault.AlgES256, wantKID: "k"},
		{name: "RSA JWK", cred: withKey(rsaJWK(map[string]any{"kid": "jwk-kid", "alg": "RS256"}), ""), fp: rsaThumbprint(), alg: vault.AlgRS256, wantKID: "jwk-kid"},
		{name: "EC JWK", cred: withKey(ecJWK(nil), ""), fp: ecThumbprint(), alg: vault.AlgES256},
		{name: "EC JWK without x y", cred: withKey(ecJWK(map[string]any{"x": "", "y": ""}), ""), fp: ecThumbprint(), alg: vault.AlgES256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			ctx := t.Context()
			typ := tt.cred.Type
			in := tt.cred
			in.Type = "" // Seal fills it from credType
			meta, err := h.v.Seal(ctx, tenantA, "corp okta", typ, in)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !strings.HasPrefix(meta.ID, vault.IDPrefix+"_") || meta.TenantID != tenantA || meta.Type != typ ||
				meta.Name != "corp okta" || !meta.CreatedAt.Equal(h.clock.Now()) || !meta.RotatedAt.IsZero() {
				t.Errorf("meta = %+v", meta)
			}
			switch {
			case tt.fp != "" && meta.Fingerprint != tt.fp:
				t.Errorf("fingerprint = %q, want public-key thumbprint %q", meta.Fingerprint, tt.fp)
			case tt.fp == "" && !strings.HasPrefix(meta.Fingerprint, "hmac-sha256:"):
				t.Errorf("fingerprint = %q, want hmac-sha256:…", meta.Fingerprint)
			}

			got, err := h.v.Unseal(ctx, tenantA, meta.ID)
			if err != nil {
				t.Fatalf("Unseal: %v", err)
			}
			if diff := cmp.Diff(reveal(tt.cred), reveal(got)); diff != "" {
				t.Errorf("Unseal mismatch (-want +got):\n%s", diff)
			}
			if tt.alg != "" {
				signer, alg, kid, err := got.SigningKey()
				if err != nil {
					t.Fatalf("SigningKey: %v", err)
				}
				if alg != tt.alg || kid != tt.wantKID {
					t.Errorf("SigningKey alg, kid = %q, %q; want %q, %q", alg, kid, tt.alg, tt.wantKID)
				}
				checkSigner(t, signer)
			}

			stored := h.store.AllBytes()
			for _, s := range []string{clientSecret, apiToken, tt.cred.PrivateKey.Reveal()} {
				if s != "" && bytes.Contains(stored, []byte(s)) {
					t.Errorf("store holds a plaintext secret")
				}
			}
			if k, err := h.store.GetTenantVaultKey(ctx, tenantA); err != nil || k.KeyProvider != "fake" || k.KMSKeyID != "fake-key-1" || len(k.EncapsulationKey) != 1184 {
				t.Errorf("stored key = %+v, %v", k, err)
			}
		})
	}
}

// TestUnsealRejectsMoves copies or alters a stored blob; every variant must fail to open
// with an error that is neither ErrNotFound nor ErrUnavailable.
func TestUnsealRejectsMoves(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	metaA := h.sealAPIKey(t)
	metaB, err := h.v.Seal(ctx, tenantB, "b", "oauth2_client", oauthSecret())
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.v.Seal(ctx, tenantA, "other", "api_key", apiKey())
	if err != nil {
		t.Fatal(err)
	}
	scB, _ := h.store.GetSealedCredential(ctx, tenantB, metaB.ID)
	scA, _ := h.store.GetSealedCredential(ctx, tenantA, metaA.ID)

	flip := func(i int) []byte {
		b := bytes.Clone(scA.Ciphertext)
		b[i] ^= 0x01
		return b
	}
	n := len(scA.Ciphertext)
	tests := []struct {
		name   string
		tenant string
		row    vault.SealedCredential
	}{
		{"B's blob copied to tenant A, same id", tenantA, sc(tenantA, metaB.ID, "oauth2_client", scB.Ciphertext)},
		{"A's blob under another id", tenantA, sc(tenantA, other.ID, "api_key", scA.Ciphertext)},
		{"A's blob with another type", tenantA, sc(tenantA, metaA.ID, "oauth2_client", scA.Ciphertext)},
		{"flipped magic", tenantA, sc(tenantA, metaA.ID, "api_key", flip(0))},
		{"flipped version", tenantA, sc(tenantA, metaA.ID, "api_key", flip(3))},
		{"flipped kind", tenantA, sc(tenantA, metaA.ID, "api_key", flip(4))},
		{"flipped KEM ciphertext", tenantA, sc(tenantA, metaA.ID, "api_key", flip(100))},
		{"flipped nonce", tenantA, sc(tenantA, metaA.ID, "api_key", flip(5+1088+3))},
		{"flipped AEAD body", tenantA, sc(tenantA, metaA.ID, "api_key", flip(n-20))},
		{"flipped tag", tenantA, sc(tenantA, metaA.ID, "api_key", flip(n-1))},
		{"truncated", tenantA, sc(tenantA, metaA.ID, "api_key", scA.Ciphertext[:n-1])},
		{"empty", tenantA, sc(tenantA, metaA.ID, "api_key", nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.store.PutSealedCredential(ctx, tt.row); err != nil {
				t.Fatal(err)
			}
			_, err := h.v.Unseal(ctx, tt.tenant, tt.row.ID)
			if err == nil || errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrUnavailable) {
				t.Errorf("Unseal = %v, want an open failure", err)
			}
		})
	}
	// The untouched credential of B still opens.
	if _, err := h.v.Unseal(ctx, tenantB, metaB.ID); err != nil {
		t.Errorf("Unseal B: %v", err)
	}
}

func sc(tenant, id, typ string, blob []byte) vault.SealedCredential {
	return vault.SealedCredential{CredentialMeta: vault.CredentialMeta{TenantID: tenant, ID: id, Name: "x", Type: typ}, Ciphertext: blob}
}

func TestUnsealNotFound(t *testing.T) {
	h := newHarness(t, 0)
	meta := h.sealAPIKey(t)
	for _, tc := range []struct{ tenant, id string }{{tenantA, "vlt_missing"}, {tenantB, meta.ID}} {
		if _, err := h.v.Unseal(t.Context(), tc.tenant, tc.id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Unseal(%s, %s) = %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
	}
}

func TestKeyCacheTTL(t *testing.T) {
	const ttl = time.Minute
	h := newHarness(t, ttl)
	ctx := t.Context()
	meta := h.sealAPIKey(t)
	// The first seal created the key and cached it: no unwrap yet.
	steps := []struct {
		advance     time.Duration
		wantUnwraps int64
	}{
		{0, 0},
		{ttl - time.Second, 0},
		{time.Second, 1}, // expired exactly at TTL: re-unwrap
		{ttl / 2, 1},
		{ttl / 2, 2},
	}
	for i, s := range steps {
		h.clock.Advance(s.advance)
		if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
			t.Fatalf("step %d: Unseal: %v", i, err)
		}
		if got := h.kms.Unwraps(); got != s.wantUnwraps {
			t.Errorf("step %d: unwraps = %d, want %d", i, got, s.wantUnwraps)
		}
	}
}

func TestKeyCacheDisabled(t *testing.T) {
	h := newHarness(t, -1)
	ctx := t.Context()
	meta := h.sealAPIKey(t)
	for range 3 {
		if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.kms.Unwraps(); got != 3 {
		t.Errorf("unwraps = %d, want 3 (no cache)", got)
	}
}

func TestCachedKeyServesUntilTTLThenFails(t *testing.T) {
	const ttl = time.Minute
	h := newHarness(t, ttl)
	ctx := t.Context()
	meta := h.sealAPIKey(t)
	h.kms.SetDown(true)
	h.clock.Advance(ttl - time.Nanosecond)
	if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
		t.Fatalf("Unseal with KMS down, key cached: %v", err)
	}
	h.clock.Advance(time.Nanosecond)
	if _, err := h.v.Unseal(ctx, tenantA, meta.ID); !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("Unseal after TTL with KMS down = %v, want ErrUnavailable", err)
	}
	// Failures are not cached: KMS back → works again.
	h.kms.SetDown(false)
	if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
		t.Fatalf("Unseal after KMS recovered: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name      string
		kmsDown   bool
		storeDown bool
		op        func(h *harness, ctx context.Context) error
	}{
		{"first seal, KMS down", true, false, func(h *harness, ctx context.Context) error {
			_, err := h.v.Seal(ctx, tenantA, "a", "api_key", apiKey())
			return err
		}},
		{"first seal, store down", false, true, func(h *harness, ctx context.Context) error {
			_, err := h.v.Seal(ctx, tenantA, "a", "api_key", apiKey())
			return err
		}},
		{"seal bytes, KMS down", true, false, func(h *harness, ctx context.Context) error {
			_, err := h.v.SealBytes(ctx, tenantA, "hmac_key", []byte("k"))
			return err
		}},
		{"list, store down", false, true, func(h *harness, ctx context.Context) error {
			_, err := h.v.List(ctx, tenantA)
			return err
		}},
		{"get, store down", false, true, func(h *harness, ctx context.Context) error {
			_, err := h.v.Get(ctx, tenantA, "vlt_x")
			return err
		}},
		{"delete, store down", false, true, func(h *harness, ctx context.Context) error {
			return h.v.Delete(ctx, tenantA, "vlt_x")
		}},
		{"unseal, store down", false, true, func(h *harness, ctx context.Context) error {
			_, err := h.v.Unseal(ctx, tenantA, "vlt_x")
			return err
		}},
		{"rotate, store down", false, true, func(h *harness, ctx context.Context) error {
			_, err := h.v.Rotate(ctx, tenantA, "vlt_x", apiKey())
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 0)
			h.kms.SetDown(tt.kmsDown)
			h.store.SetDown(tt.storeDown)
			err := tt.op(h, t.Context())
			if !errors.Is(err, vault.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), apiToken) {
				t.Errorf("error quotes the secret")
			}
			h.store.SetDown(false)
			if keys, creds := h.store.Counts(); keys != 0 || creds != 0 {
				t.Errorf("partial rows written: keys=%d creds=%d", keys, creds)
			}
		})
	}
}

func TestSealWithExistingKeyKMSDown(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	if _, err := h.v.Seal(ctx, tenantA, "a", "api_key", apiKey()); err != nil {
		t.Fatal(err)
	}
	// A fresh replica (cold cache) cannot unwrap: no credential row is written.
	h2 := vault.New(vault.Config{Now: h.clock.Now}, h.store, h.kms)
	h.kms.SetDown(true)
	if _, err := h2.Seal(ctx, tenantA, "b", "api_key", apiKey()); !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("Seal = %v, want ErrUnavailable", err)
	}
	if _, creds := h.store.Counts(); creds != 1 {
		t.Errorf("creds = %d, want 1", creds)
	}
}

func TestConcurrentFirstSeals(t *testing.T) {
	// Two replicas (separate Vaults and caches) share one store and one KMS, and seal the
	// tenant's first credentials at the same time.
	store, kms, clk := vaulttest.NewMemStore(), vaulttest.NewFakeWrapper(), newClock()
	replicas := []*vault.Vault{
		vault.New(vault.Config{Now: clk.Now}, store, kms),
		vault.New(vault.Config{Now: clk.Now}, store, kms),
	}
	const perReplica = 8
	var wg sync.WaitGroup
	ids := make(chan string, 2*perReplica)
	errs := make(chan error, 2*perReplica)
	for _, v := range replicas {
		for i := range perReplica {
			wg.Go(func() {
				meta, err := v.Seal(t.Context(), tenantA, fmt.Sprintf("c%d", i), "api_key", apiKey())
				if err != nil {
					errs <- err
					return
				}
				ids <- meta.ID
			})
		}
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Errorf("Seal: %v", err)
	}
	if keys, _ := store.Counts(); keys != 1 {
		t.Fatalf("tenant keys = %d, want 1", keys)
	}
	// A third replica opens every credential with the one stored key.
	fresh := vault.New(vault.Config{Now: clk.Now}, store, kms)
	n := 0
	for id := range ids {
		n++
		if _, err := fresh.Unseal(t.Context(), tenantA, id); err != nil {
			t.Errorf("Unseal %s: %v", id, err)
		}
	}
	if n != 2*perReplica {
		t.Errorf("sealed %d, want %d", n, 2*perReplica)
	}
	// Each replica created at most one key (its misses were shared).
	if p := store.KeyPuts(); p < 1 || p > 2 {
		t.Errorf("PutTenantVaultKey calls = %d, want 1 or 2", p)
	}
}

func TestConcurrentMissesShareOneUnwrap(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	meta := h.sealAPIKey(t)
	kms := h.kms.Replica()
	release := kms.Hold()
	cold := vault.New(vault.Config{Now: h.clock.Now}, h.store, kms)

	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := cold.Unseal(ctx, tenantA, meta.ID)
			errs <- err
		})
	}
	// Let the goroutines pile up on the one in-flight unwrap, then release it.
	for kms.Unwraps() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Unseal: %v", err)
		}
	}
	if got := kms.Unwraps(); got != 1 {
		t.Errorf("unwraps = %d, want 1", got)
	}
}

func TestWaiterContextCancelled(t *testing.T) {
	h := newHarness(t, 0)
	meta := h.sealAPIKey(t)
	kms := h.kms.Replica()
	release := kms.Hold()
	cold := vault.New(vault.Config{Now: h.clock.Now}, h.store, kms)

	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leaderDone := make(chan error, 1)
	go func() {
		_, err := cold.Unseal(leaderCtx, tenantA, meta.ID)
		leaderDone <- err
	}()
	for kms.Unwraps() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A waiter whose context ends returns promptly.
	waitCtx, cancelWait := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancelWait()
	if _, err := cold.Unseal(waitCtx, tenantA, meta.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter: %v, want DeadlineExceeded", err)
	}
	// A waiter with a live context is queued behind the leader...
	waiterDone := make(chan error, 1)
	go func() {
		_, err := cold.Unseal(t.Context(), tenantA, meta.ID)
		waiterDone <- err
	}()
	time.Sleep(20 * time.Millisecond)
	// ...the leader gives up (its client hung up): the waiter must not inherit that
	// failure but load again itself.
	cancelLeader()
	if err := <-leaderDone; err == nil {
		t.Error("leader succeeded after cancel")
	}
	release()
	if err := <-waiterDone; err != nil {
		t.Errorf("waiter after leader cancel: %v", err)
	}
	if _, err := cold.Unseal(t.Context(), tenantA, meta.ID); err != nil {
		t.Errorf("Unseal after leader cancel: %v", err)
	}
}

func TestRotate(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	meta, err := h.v.Seal(ctx, tenantA, "corp", "oauth2_client", oauthSecret())
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	next := withKey(ecPKCS8(), "k2")
	next.Type = ""
	rot, err := h.v.Rotate(ctx, tenantA, meta.ID, next)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	want := meta
	want.Fingerprint = ecThumbprint()
	want.RotatedAt = h.clock.Now()
	if diff := cmp.Diff(want, rot); diff != "" {
		t.Errorf("Rotate meta (-want +got):\n%s", diff)
	}
	got, err := h.v.Unseal(ctx, tenantA, meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PrivateKey.Reveal() != ecPKCS8() || !got.ClientSecret.IsZero() || got.PrivateKeyID != "k2" {
		t.Errorf("Unseal after rotate returned the old secret")
	}
	if g, err := h.v.Get(ctx, tenantA, meta.ID); err != nil || !cmp.Equal(g, rot) {
		t.Errorf("Get = %+v, %v; want %+v", g, err, rot)
	}

	errTests := []struct {
		name   string
		tenant string
		id     string
		cred   vault.Credential
		check  func(error) bool
	}{
		{"unknown id", tenantA, "vlt_nope", oauthSecret(), func(err error) bool { return errors.Is(err, vault.ErrNotFound) }},
		{"other tenant", tenantB, meta.ID, oauthSecret(), func(err error) bool { return errors.Is(err, vault.ErrNotFound) }},
		{"type change", tenantA, meta.ID, apiKey(), func(err error) bool {
			var ve *vault.ValidationError
			return errors.As(err, &ve) && ve.Field == "credential_type"
		}},
		{"invalid secret", tenantA, meta.ID, vault.Credential{ClientID: "c"}, func(err error) bool {
			var ve *vault.ValidationError
			return errors.As(err, &ve) && ve.Field == "secret"
		}},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.v.Rotate(ctx, tt.tenant, tt.id, tt.cred); !tt.check(err) {
				t.Errorf("Rotate = %v", err)
			}
		})
	}
}

// deleteBeforeReplace is a store in which a Delete lands between Rotate's read of the
// credential and its write, the race a concurrent DELETE /api/v2/vault/{id} can win.
type deleteBeforeReplace struct{ *vaulttest.MemStore }

func (s deleteBeforeReplace) ReplaceSealedCredential(ctx context.Context, c vault.SealedCredential) error {
	if err := s.DeleteSealedCredential(ctx, c.TenantID, c.ID); err != nil {
		return err
	}
	return s.MemStore.ReplaceSealedCredential(ctx, c)
}

// A rotation that loses the race with a delete reports not found and leaves the
// credential deleted: an upsert would have brought it back.
func TestRotateRacingDelete(t *testing.T) {
	store := vaulttest.NewMemStore()
	v := vault.New(vault.Config{}, deleteBeforeReplace{store}, vaulttest.NewFakeWrapper())
	ctx := t.Context()
	meta, err := v.Seal(ctx, tenantA, "corp", "oauth2_client", oauthSecret())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rotate(ctx, tenantA, meta.ID, oauthSecret()); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Rotate after a concurrent delete = %v, want ErrNotFound", err)
	}
	if _, err := v.Get(ctx, tenantA, meta.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Get after the lost rotation = %v, want ErrNotFound: the deleted credential came back", err)
	}
}

func TestGetListDelete(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	var metas []vault.CredentialMeta
	for _, name := range []string{"one", "two"} {
		m, err := h.v.Seal(ctx, tenantA, name, "api_key", apiKey())
		if err != nil {
			t.Fatal(err)
		}
		metas = append(metas, m)
	}
	if _, err := h.v.Seal(ctx, tenantB, "b", "api_key", apiKey()); err != nil {
		t.Fatal(err)
	}
	list, err := h.v.List(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(metas, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	got, err := h.v.Get(ctx, tenantA, metas[0].ID)
	if err != nil || !cmp.Equal(got, metas[0]) {
		t.Errorf("Get = %+v, %v", got, err)
	}
	if _, err := h.v.Get(ctx, tenantB, metas[0].ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Get other tenant = %v, want ErrNotFound", err)
	}
	if err := h.v.Delete(ctx, tenantB, metas[0].ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Delete other tenant = %v, want ErrNotFound", err)
	}
	if err := h.v.Delete(ctx, tenantA, metas[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := h.v.Delete(ctx, tenantA, metas[0].ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := h.v.Unseal(ctx, tenantA, metas[0].ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Unseal deleted = %v, want ErrNotFound", err)
	}
}

func TestSealBytes(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	key := []byte("tenant-hmac-key-0123456789abcdef")
	blob, err := h.v.SealBytes(ctx, tenantA, "hmac_key", key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, key) {
		t.Error("blob holds the plaintext")
	}
	got, err := h.v.OpenBytes(ctx, tenantA, "hmac_key", blob)
	if err != nil || got.Reveal() != string(key) {
		t.Fatalf("OpenBytes = %v", err)
	}
	if _, err := h.v.SealBytes(ctx, tenantB, "hmac_key", key); err != nil {
		t.Fatal(err)
	}
	meta := h.sealAPIKey(t)
	credBlob, _ := h.store.GetSealedCredential(ctx, tenantA, meta.ID)

	bad := []struct {
		name, tenant, purpose string
		blob                  []byte
	}{
		{"other purpose", tenantA, "other", blob},
		{"other tenant", tenantB, "hmac_key", blob},
		{"credential blob as bytes", tenantA, meta.ID, credBlob.Ciphertext},
		{"garbage", tenantA, "hmac_key", []byte("nope")},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := h.v.OpenBytes(ctx, tt.tenant, tt.purpose, tt.blob); err == nil {
				t.Error("OpenBytes succeeded")
			}
		})
	}
	// A bytes blob stored as a credential does not unseal either.
	if err := h.store.PutSealedCredential(ctx, sc(tenantA, "hmac_key", "", blob)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.v.Unseal(ctx, tenantA, "hmac_key"); err == nil {
		t.Error("Unseal of a bytes blob succeeded")
	}
	if _, err := h.v.SealBytes(ctx, tenantA, "", key); err == nil {
		t.Error("SealBytes with empty purpose succeeded")
	}
}

func TestStoredEncapsulationKeySwapped(t *testing.T) {
	h := newHarness(t, 0)
	ctx := t.Context()
	meta := h.sealAPIKey(t)
	k, err := h.store.GetTenantVaultKey(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	k.EncapsulationKey[0] ^= 1 // a copy: the store clones on the way out
	h.store.ReplaceTenantVaultKey(tenantA, k)
	cold := vault.New(vault.Config{Now: h.clock.Now}, h.store, h.kms)
	if _, err := cold.Unseal(ctx, tenantA, meta.ID); err == nil || errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("Unseal with swapped encapsulation key = %v, want integrity error", err)
	}
}

func BenchmarkUnseal(b *testing.B) {
	h := newHarness(b, time.Hour)
	ctx := b.Context()
	meta, err := h.v.Seal(ctx, tenantA, "a", "oauth2_client", oauthSecret())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.v.Unseal(ctx, tenantA, meta.ID); err != nil {
			b.Fatal(err)
		}
	}
}
