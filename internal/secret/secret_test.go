package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/quantaseal/gateway/internal/secret"
)

const plain = "qs_live_supersecretvalue"

func TestSecretNeverFormats(t *testing.T) {
	s := secret.New(plain)
	type wrapper struct {
		Key secret.Secret
		Ptr *secret.Secret
	}
	w := wrapper{Key: s, Ptr: &s}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "secret", s, "wrapper", w)
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%s":   fmt.Sprintf("%s", s), //lint:ignore S1025 the fmt %s path is what is tested
		"%+v":  fmt.Sprintf("%+v", w),
		"%#v":  fmt.Sprintf("%#v", w),
		"%q":   fmt.Sprintf("%q", s),
		"json": string(js),
		"slog": logBuf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, plain) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
		if !strings.Contains(out, secret.Redacted) {
			t.Errorf("%s does not say %q: %s", name, secret.Redacted, out)
		}
	}
}

func TestSecretReveal(t *testing.T) {
	s := secret.FromBytes([]byte(plain))
	if s.Reveal() != plain || string(s.Bytes()) != plain || s.Len() != len(plain) || s.IsZero() {
		t.Fatalf("Reveal/Bytes/Len/IsZero disagree with the plaintext")
	}
	if !s.Equal(secret.New(plain)) || s.Equal(secret.New(plain+"x")) {
		t.Fatal("Equal is wrong")
	}
	if !(secret.Secret{}).IsZero() {
		t.Fatal("zero value is not zero")
	}
}
