package envelope_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/envelope"
)

func TestKeyIDs(t *testing.T) {
	if got, want := envelope.KeyID(nil), "e3b0c44298fc1c14"; got != want { // SHA-256("")
		t.Errorf("KeyID(empty) = %s, want %s", got, want)
	}
	key := bytes.Repeat([]byte{7}, 64)
	sum := sha256.Sum256(append([]byte("quantaseal hmac key id"), key...))
	if got, want := envelope.HMACKeyID(key), hex.EncodeToString(sum[:8]); got != want {
		t.Errorf("HMACKeyID = %s, want %s", got, want)
	}
	f := newFixture(t)
	hexID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for name, id := range map[string]string{"signing": f.signer.KeyID(), "response": f.response.KeyID(), "hmac": f.hmacKey.KeyID()} {
		if !hexID.MatchString(id) {
			t.Errorf("%s key id %q is not 16 lower-case hex characters", name, id)
		}
	}
	if got := envelope.KeyID(f.signer.Public().Bytes()); got != f.signer.KeyID() {
		t.Errorf("signing key id %s, KeyID(public key) %s", f.signer.KeyID(), got)
	}
	if got := envelope.KeyID(f.response.Public().Bytes()); got != f.response.KeyID() {
		t.Errorf("response key id %s, KeyID(encapsulation key) %s", f.response.KeyID(), got)
	}
}

func TestKeysFromSeedsAreDeterministic(t *testing.T) {
	seed32, seed64 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 64)
	a, _ := envelope.NewSigningKey(seed32)
	b, _ := envelope.NewSigningKey(seed32)
	if !bytes.Equal(a.Public().Bytes(), b.Public().Bytes()) || len(a.Public().Bytes()) != envelope.VerifyingKeySize {
		t.Error("ML-DSA-65 key from a seed is not deterministic or has the wrong size")
	}
	c, _ := envelope.NewResponseKey(seed64)
	d, _ := envelope.NewResponseKey(seed64)
	if !bytes.Equal(c.Public().Bytes(), d.Public().Bytes()) || len(c.Public().Bytes()) != envelope.EncapsulationKeySize {
		t.Error("ML-KEM-768 key from a seed is not deterministic or has the wrong size")
	}
	if !bytes.Equal(a.Seed().Bytes(), seed32) || !bytes.Equal(c.Seed().Bytes(), seed64) {
		t.Error("Seed() does not return the seed")
	}
}

func TestKeyParseErrors(t *testing.T) {
	f := newFixture(t)
	notNormalized := bytes.Repeat([]byte{0xff}, envelope.EncapsulationKeySize) // coefficients ≥ q
	tests := []struct {
		name string
		err  func() error
	}{
		{"signing seed 31 bytes", func() error { _, err := envelope.NewSigningKey(make([]byte, 31)); return err }},
		{"response seed 32 bytes", func() error { _, err := envelope.NewResponseKey(make([]byte, 32)); return err }},
		{"HMAC key 32 bytes", func() error { _, err := envelope.NewHMACKey(make([]byte, 32)); return err }},
		{"verifying key short", func() error { _, err := envelope.ParseVerifyingKey(f.signer.Public().Bytes()[1:]); return err }},
		{"encapsulation key short", func() error { _, err := envelope.ParseEncapsulationKey(f.response.Public().Bytes()[1:]); return err }},
		{"encapsulation key not normalized", func() error { _, err := envelope.ParseEncapsulationKey(notNormalized); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.err(); err == nil {
				t.Error("no error")
			}
		})
	}
	ek, err := envelope.ParseEncapsulationKey(f.response.Public().Bytes())
	if err != nil || ek.KeyID() != f.response.KeyID() {
		t.Errorf("ParseEncapsulationKey(own key) = %v, %v", ek, err)
	}
	vk, err := envelope.ParseVerifyingKey(f.signer.Public().Bytes())
	if err != nil || vk.KeyID() != f.signer.KeyID() {
		t.Errorf("ParseVerifyingKey(own key) = %v, %v", vk, err)
	}
}

// TestKeysNeverFormatSecrets prints keys every way the standard library can and checks
// that no seed or key appears.
func TestKeysNeverFormatSecrets(t *testing.T) {
	f := newFixture(t)
	secrets := [][]byte{f.signer.Seed().Bytes(), f.response.Seed().Bytes(), f.hmacKey.Secret().Bytes()}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("keys", "signer", f.signer, "response", f.response, "hmac", f.hmacKey)
	js, _ := json.Marshal(map[string]any{"signer": f.signer, "response": f.response, "hmac": f.hmacKey})
	outputs := []string{
		fmt.Sprintf("%v %+v %#v %s", f.signer, f.signer, f.signer, f.signer),
		fmt.Sprintf("%v %+v %#v %s", f.response, f.response, f.response, f.response),
		fmt.Sprintf("%v %+v %#v %s", f.hmacKey, f.hmacKey, f.hmacKey, f.hmacKey),
		logs.String(), string(js),
	}
	for _, out := range outputs {
		for _, s := range secrets {
			for _, enc := range []string{hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), string(s)} {
				if strings.Contains(out, enc) {
					t.Errorf("output %q reveals a secret", out)
				}
			}
		}
	}
	if !strings.Contains(outputs[0], f.signer.KeyID()) {
		t.Errorf("signing key prints as %q, want its key id", outputs[0])
	}
}
