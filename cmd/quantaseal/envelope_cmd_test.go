package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

// envelopeVectors is the part of envelope/testdata/vectors.json these tests use.
type envelopeVectors struct {
	Cases []struct {
		Name      string          `json:"name"`
		KEMSeed   string          `json:"kem_seed"`
		MLDSASeed string          `json:"mldsa_seed"`
		HMACKey   string          `json:"hmac_key"`
		TenantID  string          `json:"tenant_id"`
		Plaintext string          `json:"plaintext"`
		Envelope  json.RawMessage `json:"envelope"`
	} `json:"cases"`
	Negative []struct {
		Name     string          `json:"name"`
		Case     string          `json:"case"`
		Envelope json.RawMessage `json:"envelope"`
	} `json:"negative"`
}

func loadEnvelopeVectors(t *testing.T) envelopeVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "envelope", "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v envelopeVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorProfiles writes one 0600 client profile per vector case and returns their paths.
func vectorProfiles(t *testing.T, v envelopeVectors) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for i, c := range v.Cases {
		sk, err := envelope.NewSigningKey(mustHex(t, c.MLDSASeed))
		if err != nil {
			t.Fatal(err)
		}
		p := &envelope.Profile{
			TenantID:        c.TenantID,
			APIKey:          secret.New("qs_live_vector"),
			HMACKey:         secret.FromBytes(mustHex(t, c.HMACKey)),
			ResponseKEMSeed: secret.FromBytes(mustHex(t, c.KEMSeed)),
			SigningKeys:     map[string][]byte{sk.KeyID(): sk.Public().Bytes()},
		}
		path := filepath.Join(dir, "profile"+string(rune('a'+i))+".json")
		if err := p.Save(path); err != nil {
			t.Fatal(err)
		}
		paths[c.Name] = path
	}
	return paths
}

// runCmd runs the binary's run function with stdin and returns exit code, stdout, stderr.
func runCmd(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), cmdIO{Stdin: bytes.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(string) string { return "" }}, args)
	return code, stdout.String(), stderr.String()
}

func TestEnvelopeOpenVectors(t *testing.T) {
	v := loadEnvelopeVectors(t)
	profiles := vectorProfiles(t, v)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, c.Envelope, "envelope", "open", "--profile", profiles[c.Name])
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != string(mustHex(t, c.Plaintext)) {
				t.Errorf("stdout is %d bytes, want the %d-byte plaintext", len(stdout), len(c.Plaintext)/2)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
		})
	}
	// Each negative vector is refused with exit 1, nothing on stdout, and a message
	// naming the check that failed.
	wantCheck := map[string]string{
		"flipped bit in signature.pqc_signature":               "ml-dsa check failed on signature.pqc_signature",
		"flipped bit in signature.hmac_signature":              "hmac check failed on signature.hmac_signature",
		"flipped bit in encrypted.ciphertext_data":             "ml-dsa+hmac check failed",
		"changed character in status":                          "ml-dsa+hmac check failed",
		"wrong algorithm name ML-KEM-1024":                     "format check failed on encrypted.algorithm",
		"tenant mismatch: both tenant ids name another tenant": "tenant check failed on encrypted.tenant_id",
		"changed character in signature.key_id":                "key check failed on signature.key_id",
		"validly signed but undecryptable ciphertext":          "aead check failed on encrypted.ciphertext_data",
		"tenant mismatch: validly signed for another tenant":   "tenant check failed",
		"changed character in signature.hmac_key_id":           "key check failed on signature.hmac_key_id",
		"version 2": "format check failed on version",
		"flipped bit in encrypted.ciphertext_kem":  "ml-dsa+hmac check failed",
		"changed character in encrypted.tenant_id": "tenant check failed",
		"ciphertext_data shorter than a tag":       "format check failed on encrypted.ciphertext_data",
		"changed character in signature.algorithm": "format check failed on signature.algorithm",
		"changed character in encrypted.key_id":    "key check failed on encrypted.key_id",
		"flipped success":                          "ml-dsa+hmac check failed",
		"nonce of 16 bytes":                        "format check failed on encrypted.nonce",
	}
	for _, n := range v.Negative {
		t.Run("negative/"+n.Name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, n.Envelope, "envelope", "open", "--profile", profiles[n.Case])
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, "refused the envelope") || !strings.Contains(stderr, "check failed") {
				t.Errorf("stderr %q does not say which check refused the envelope", stderr)
			}
			if want, ok := wantCheck[n.Name]; ok && !strings.Contains(stderr, want) {
				t.Errorf("stderr %q, want it to contain %q", stderr, want)
			}
		})
	}
}

func TestEnvelopeOpenErrors(t *testing.T) {
	v := loadEnvelopeVectors(t)
	profiles := vectorProfiles(t, v)
	c := v.Cases[0]
	loose := filepath.Join(t.TempDir(), "loose.json")
	data, _ := os.ReadFile(profiles[c.Name])
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	var otherCase string
	for _, o := range v.Cases {
		if o.TenantID != c.TenantID {
			otherCase = o.Name
		}
	}
	tests := []struct {
		name       string
		args       []string
		stdin      []byte
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"envelope", "--help"}, nil, 0, "usage: quantaseal envelope open --profile FILE", ""},
		{"open help", []string{"envelope", "open", "--help"}, nil, 0, "", "-profile"},
		{"no subcommand", []string{"envelope"}, nil, 2, "", "missing subcommand"},
		{"unknown subcommand", []string{"envelope", "seal"}, nil, 2, "", `unknown subcommand "seal"`},
		{"no profile flag", []string{"envelope", "open"}, c.Envelope, 2, "", "--profile is required"},
		{"extra argument", []string{"envelope", "open", "--profile", profiles[c.Name], "file.json"}, c.Envelope, 2, "", "standard input"},
		{"missing profile file", []string{"envelope", "open", "--profile", filepath.Join(t.TempDir(), "none.json")}, c.Envelope, 1, "", "no such file"},
		{"world-readable profile", []string{"envelope", "open", "--profile", loose}, c.Envelope, 1, "", "chmod 600"},
		{"empty stdin", []string{"envelope", "open", "--profile", profiles[c.Name]}, nil, 1, "", "format check failed"},
		{"another tenant's profile", []string{"envelope", "open", "--profile", profiles[otherCase]}, c.Envelope, 1, "", "tenant check failed on encrypted.tenant_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) || (tt.wantStdout == "" && stdout != "") {
				t.Errorf("stdout %q, want %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestEnvelopeOpenMeta(t *testing.T) {
	v := loadEnvelopeVectors(t)
	profiles := vectorProfiles(t, v)
	for _, c := range v.Cases {
		if c.Name != "create_user 403" {
			continue
		}
		code, _, stderr := runCmd(t, c.Envelope, "envelope", "open", "--profile", profiles[c.Name], "--meta")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(stderr), &meta); err != nil {
			t.Fatalf("--meta stderr %q is not JSON: %v", stderr, err)
		}
		if meta["status"] != float64(403) || meta["success"] != false {
			t.Errorf("meta %v, want status 403 and success false", meta)
		}
		return
	}
	t.Fatal("no create_user 403 vector")
}

func TestKeysGenerate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "profile.json")
	code, stdout, stderr := runCmd(t, nil, "keys", "generate", "--out", path, "--tenant", "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("profile mode %04o, want 0600", fi.Mode().Perm())
	}
	var out struct {
		Profile              string `json:"profile"`
		TenantID             string `json:"tenant_id"`
		ResponseKEMPublicKey string `json:"response_kem_public_key"`
		ResponseKeyID        string `json:"response_key_id"`
		HMACKeyID            string `json:"hmac_key_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout %q is not JSON: %v", stdout, err)
	}
	pub, err := base64.StdEncoding.DecodeString(out.ResponseKEMPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := envelope.ParseEncapsulationKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p, err := envelope.LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := envelope.NewResponseKey(p.ResponseKEMSeed.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if ek.KeyID() != out.ResponseKeyID || rk.KeyID() != out.ResponseKeyID {
		t.Errorf("printed key id %s, public key %s, profile key %s", out.ResponseKeyID, ek.KeyID(), rk.KeyID())
	}
	if p.TenantID != "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7" || out.TenantID != p.TenantID || out.Profile != path {
		t.Errorf("tenant %q / %q, profile %q", p.TenantID, out.TenantID, out.Profile)
	}
	if envelope.HMACKeyID(p.HMACKey.Bytes()) != out.HMACKeyID {
		t.Error("printed hmac_key_id is not the profile's")
	}
	if strings.Contains(stdout+stderr, base64.StdEncoding.EncodeToString(p.ResponseKEMSeed.Bytes())) ||
		strings.Contains(stdout+stderr, base64.StdEncoding.EncodeToString(p.HMACKey.Bytes())) {
		t.Error("keys generate printed a secret")
	}

	// End to end: the gateway seals to the printed public key; after registration the
	// profile carries the gateway's signing key, and envelope open decrypts.
	signer, _ := envelope.GenerateSigningKey(nil)
	hk, _ := envelope.NewHMACKey(p.HMACKey.Bytes())
	e, err := envelope.Seal(envelope.SealInput{TenantID: p.TenantID, Recipient: ek, Signer: signer, HMACKey: hk,
		Status: 200, AuditEventID: "aud_01JDQ90000000000000000000A", IssuedAt: fi.ModTime(), Plaintext: []byte("hello")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SigningKeys[signer.KeyID()] = signer.Public().Bytes()
	if err := p.Save(path); err != nil {
		t.Fatal(err)
	}
	sealed, _ := e.MarshalJSON()
	if code, stdout, stderr := runCmd(t, sealed, "envelope", "open", "--profile", path); code != 0 || stdout != "hello" {
		t.Errorf("envelope open = %d, %q, %q", code, stdout, stderr)
	}

	// An existing profile is not replaced without --force.
	before, _ := os.ReadFile(path)
	code, _, stderr = runCmd(t, nil, "keys", "generate", "--out", path)
	if code != 1 || !strings.Contains(stderr, "--force") {
		t.Errorf("second generate: exit %d, stderr %q; want 1 and a hint about --force", code, stderr)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("generate without --force changed the existing profile")
	}
	code, _, stderr = runCmd(t, nil, "keys", "generate", "--out", path, "--force")
	if code != 0 {
		t.Fatalf("generate --force: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadFile(path); bytes.Equal(before, after) {
		t.Error("generate --force did not replace the profile")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after --force %04o, want 0600", fi.Mode().Perm())
	}
}

func TestKeysUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOutput string
	}{
		{"help", []string{"keys", "--help"}, 0, "usage: quantaseal keys generate --out FILE"},
		{"generate help", []string{"keys", "generate", "-h"}, 0, "-out"},
		{"no subcommand", []string{"keys"}, 2, "missing subcommand"},
		{"unknown subcommand", []string{"keys", "rotate"}, 2, `unknown subcommand "rotate"`},
		{"no --out", []string{"keys", "generate"}, 2, "--out is required"},
		{"bad flag", []string{"keys", "generate", "--bogus"}, 2, "bogus"},
		{"directory missing", []string{"keys", "generate", "--out", filepath.Join(t.TempDir(), "no", "such", "dir.json")}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, nil, tt.args...)
			if code != tt.wantCode || !strings.Contains(stdout+stderr, tt.wantOutput) {
				t.Errorf("exit %d, output %q; want %d and %q", code, stdout+stderr, tt.wantCode, tt.wantOutput)
			}
		})
	}
}
