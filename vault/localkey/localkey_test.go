package localkey_test

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/quantaseal/gateway/vault"
	"github.com/quantaseal/gateway/vault/localkey"
	"github.com/quantaseal/gateway/vault/vaulttest"
)

var (
	_ vault.KeyWrapper   = (*localkey.Wrapper)(nil)
	_ vault.KeyDescriber = (*localkey.Wrapper)(nil)
)

func TestNewCreatesKeyFileAndWarnsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "vault.key")
	var logs bytes.Buffer
	w, err := localkey.New(localkey.Config{Path: path, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Errorf("key file mode %v size %d, want 0600 and 32", st.Mode().Perm(), st.Size())
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "this machine only") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("logs = %q, want one single-machine warning", logs.String())
	}
	key, _ := os.ReadFile(path)
	if bytes.Contains(logs.Bytes(), key) {
		t.Error("log holds the key")
	}
	if p, id, err := w.DescribeKey(t.Context(), "t"); p != localkey.Provider || !strings.HasPrefix(id, "local:") || err != nil {
		t.Errorf("DescribeKey = %q, %q, %v", p, id, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestReopenUsesSameKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.key")
	w1, err := localkey.New(localkey.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := w1.Wrap(t.Context(), "ten_a", vault.PurposeVaultKey, []byte("seed"))
	if err != nil {
		t.Fatal(err)
	}
	w2, err := localkey.New(localkey.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	got, err := w2.Unwrap(t.Context(), "ten_a", vault.PurposeVaultKey, wrapped)
	if err != nil || string(got) != "seed" {
		t.Fatalf("Unwrap after reopen = %q, %v", got, err)
	}
}

func TestConcurrentCreateKeepsOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.key")
	const n = 8
	ws := make([]*localkey.Wrapper, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ws[i], errs[i] = localkey.New(localkey.Config{Path: path}) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wrapped, err := ws[0].Wrap(t.Context(), "t", "p", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range ws {
		if _, err := w.Unwrap(t.Context(), "t", "p", wrapped); err != nil {
			t.Errorf("wrapper %d has another key: %v", i, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string
	}{
		{"empty path", nil, "path is required"},
		{"group readable", writeKey(32, 0o640), "group or others"},
		{"other readable", writeKey(32, 0o604), "group or others"},
		{"group writable", writeKey(32, 0o620), "group or others"},
		{"short key", writeKey(31, 0o600), "want 32"},
		{"long key", writeKey(64, 0o600), "want 32"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.setup != nil {
				path = filepath.Join(t.TempDir(), "vault.key")
				tt.setup(t, path)
			}
			_, err := localkey.New(localkey.Config{Path: path})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func writeKey(n int, mode fs.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, bytes.Repeat([]byte{7}, n), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
			t.Fatal(err)
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	dir := t.TempDir()
	w, err := localkey.New(localkey.Config{Path: filepath.Join(dir, "a.key")})
	if err != nil {
		t.Fatal(err)
	}
	other, err := localkey.New(localkey.Config{Path: filepath.Join(dir, "b.key")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	seed := bytes.Repeat([]byte{0xaa}, 64)
	wrapped, err := w.Wrap(ctx, "ten_a", "vault_key", seed)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, seed[:16]) {
		t.Error("wrapped value holds the plaintext")
	}
	got, err := w.Unwrap(ctx, "ten_a", "vault_key", wrapped)
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(wrapped)
		b[i] ^= 1
		return b
	}
	// Same bytes of "tenant_id || purpose" split differently: length prefixes keep them apart.
	shifted, err := w.Wrap(ctx, "ten_", "avault_key", seed)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, tenant, purpose string
		w                     *localkey.Wrapper
		blob                  []byte
	}{
		{"other tenant", "ten_b", "vault_key", w, wrapped},
		{"other purpose", "ten_a", "hmac_key", w, wrapped},
		{"other key file", "ten_a", "vault_key", other, wrapped},
		{"flipped version", "ten_a", "vault_key", w, flip(0)},
		{"flipped nonce", "ten_a", "vault_key", w, flip(3)},
		{"flipped tag", "ten_a", "vault_key", w, flip(len(wrapped) - 1)},
		{"truncated", "ten_a", "vault_key", w, wrapped[:20]},
		{"empty", "ten_a", "vault_key", w, nil},
		{"context split differently", "ten_a", "vault_key", w, shifted},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.w.Unwrap(ctx, tt.tenant, tt.purpose, tt.blob)
			if err == nil {
				t.Fatal("Unwrap succeeded")
			}
			if errors.Is(err, vault.ErrUnavailable) {
				t.Errorf("Unwrap = %v: a key mismatch is not retryable", err)
			}
		})
	}
}

func TestVaultWithLocalKey(t *testing.T) {
	w, err := localkey.New(localkey.Config{Path: filepath.Join(t.TempDir(), "vault.key")})
	if err != nil {
		t.Fatal(err)
	}
	store := vaulttest.NewMemStore()
	v := vault.New(vault.Config{}, store, w)
	ctx := t.Context()
	blob, err := v.SealBytes(ctx, "ten_a", "hmac_key", []byte("hmac-secret"))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh Vault (cold cache) unwraps through the key file.
	v2 := vault.New(vault.Config{}, store, w)
	got, err := v2.OpenBytes(ctx, "ten_a", "hmac_key", blob)
	if err != nil || got.Reveal() != "hmac-secret" {
		t.Fatalf("OpenBytes = %v", err)
	}
	k, err := store.GetTenantVaultKey(ctx, "ten_a")
	if err != nil || k.KeyProvider != localkey.Provider {
		t.Errorf("stored key provider = %q, %v", k.KeyProvider, err)
	}
}
