package envelope_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

func newProfile(t testing.TB, f fixture) *envelope.Profile {
	t.Helper()
	return &envelope.Profile{
		TenantID:        tenant,
		APIKey:          secret.New("qs_live_test_key_value"),
		HMACKey:         f.hmacKey.Secret(),
		ResponseKEMSeed: f.response.Seed(),
		SigningKeys:     map[string][]byte{f.signer.KeyID(): f.signer.Public().Bytes()},
	}
}

var cmpSecret = cmp.Comparer(func(a, b secret.Secret) bool { return a.Reveal() == b.Reveal() })

func TestProfileSaveLoad(t *testing.T) {
	f := newFixture(t)
	p := newProfile(t, f)
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := envelope.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got, cmpSecret); diff != "" {
		t.Errorf("loaded profile differs (-saved +loaded):\n%s", diff)
	}
	// The file has the members of envelope-v1 "Client profile".
	raw, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tenant_id", "api_key", "hmac_key", "response_kem_seed", "signing_keys"} {
		if _, ok := m[k]; !ok {
			t.Errorf("profile file has no %q", k)
		}
	}
	// Save replaces atomically and keeps 0600 even over a looser file.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after resave %04o, want 0600", fi.Mode().Perm())
	}
	// The keys open an envelope sealed for them.
	keys, err := got.OpenKeys()
	if err != nil {
		t.Fatal(err)
	}
	pt, _, err := envelope.Open(f.seal(t, f.input([]byte("ok"))), keys)
	if err != nil || string(pt) != "ok" {
		t.Errorf("Open with profile keys = %q, %v", pt, err)
	}
}

func TestProfileSaveNew(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := newProfile(t, f).SaveNew(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	other := newProfile(t, newFixture(t))
	if err := other.SaveNew(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("SaveNew over an existing file: %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("SaveNew changed an existing file")
	}
}

func TestLoadProfileRefusesLoosePermissions(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "profile.json")
			if err := newProfile(t, f).Save(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := envelope.LoadProfile(path)
			if !errors.Is(err, envelope.ErrProfilePermissions) {
				t.Errorf("LoadProfile: %v, want ErrProfilePermissions", err)
			}
		})
	}
	if _, err := envelope.LoadProfile(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseProfileErrors(t *testing.T) {
	f := newFixture(t)
	good, err := newProfile(t, f).MarshalFile()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		b, _ := json.Marshal(m)
		return b
	}
	otherPub := base64.StdEncoding.EncodeToString(newFixture(t).signer.Public().Bytes())
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", []byte("nope"), "parse"},
		{"hmac_key short", edit(func(m map[string]any) { m["hmac_key"] = base64.StdEncoding.EncodeToString(make([]byte, 32)) }), "hmac_key"},
		{"hmac_key missing", edit(func(m map[string]any) { delete(m, "hmac_key") }), "hmac_key"},
		{"response_kem_seed not base64", edit(func(m map[string]any) { m["response_kem_seed"] = "!!" }), "response_kem_seed"},
		{"signing key not base64", edit(func(m map[string]any) { m["signing_keys"] = map[string]any{"0011223344556677": "!!"} }), "signing_keys"},
		{"signing key short", edit(func(m map[string]any) { m["signing_keys"] = map[string]any{"0011223344556677": "AAAA"} }), "signing_keys"},
		{"signing key under the wrong id", edit(func(m map[string]any) { m["signing_keys"] = map[string]any{f.signer.KeyID(): otherPub} }), "holds the key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.ParseProfile(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseProfile: %v, want an error about %s", err, tt.want)
			}
		})
	}
	t.Run("no tenant_id: parses, but OpenKeys refuses", func(t *testing.T) {
		p, err := envelope.ParseProfile(edit(func(m map[string]any) { m["tenant_id"] = "" }))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.OpenKeys(); err == nil {
			t.Error("OpenKeys without tenant_id succeeded")
		}
	})
}

func TestProfileNeverFormatsSecrets(t *testing.T) {
	f := newFixture(t)
	p := newProfile(t, f)
	js, _ := json.Marshal(p)
	out := fmt.Sprintf("%v %+v %#v %s", p, p, p, js)
	for _, s := range []string{"qs_live_test_key_value", base64.StdEncoding.EncodeToString(f.hmacKey.Secret().Bytes()),
		base64.StdEncoding.EncodeToString(f.response.Seed().Bytes())} {
		if strings.Contains(out, s) {
			t.Errorf("formatted profile reveals a secret: %s", out)
		}
	}
}
