package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "signing.key")
	k1, created, err := loadOrCreateKeyFile(p, 32)
	if err != nil || !created || k1.Len() != 32 {
		t.Fatalf("create: %v created=%v len=%d", err, created, k1.Len())
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	k2, created, err := loadOrCreateKeyFile(p, 32)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v created=%v equal=%v", err, created, k1.Equal(k2))
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKeyFile(p, 32); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("abc"), 0o600)
	if _, _, err := loadOrCreateKeyFile(short, 32); err == nil {
		t.Fatal("short key accepted")
	}
}
