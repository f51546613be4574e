package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/quantaseal/gateway/internal/secret"
)

// loadOrCreateKeyFile returns the n random bytes kept in path, creating the file (mode
// 0600, O_EXCL so two processes starting at once cannot both write one) when it does not
// exist. A key file readable by group or others is refused: it would mean the key has
// already leaked to other local users.
func loadOrCreateKeyFile(path string, n int) (secret.Secret, bool, error) {
	b, err := readKeyFile(path, n)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return secret.Secret{}, false, err
	}
	key := make([]byte, n)
	_, _ = rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process won the race; use its key.
		b, err := readKeyFile(path, n)
		return b, false, err
	}
	if err != nil {
		return secret.Secret{}, false, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return secret.Secret{}, false, fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return secret.Secret{}, false, fmt.Errorf("sync key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return secret.Secret{}, false, fmt.Errorf("close key file %s: %w", path, err)
	}
	return secret.FromBytes(key), true, nil
}

func readKeyFile(path string, n int) (secret.Secret, error) {
	st, err := os.Stat(path)
	if err != nil {
		return secret.Secret{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return secret.Secret{}, fmt.Errorf("key file %s has mode %v: it must not be readable by group or others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("read key file: %w", err)
	}
	if len(b) != n {
		return secret.Secret{}, fmt.Errorf("key file %s holds %d bytes, want %d", path, len(b), n)
	}
	return secret.FromBytes(b), nil
}
