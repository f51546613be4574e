package audit_test

import (
	"crypto/sha256"

	"github.com/quantaseal/gateway/internal/secret"
)

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func secretOf(b []byte) secret.Secret { return secret.FromBytes(b) }
