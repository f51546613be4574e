// Package localkey is the "local" key provider: a [vault.KeyWrapper] that protects tenant
// vault keys with a 32-byte key file instead of AWS KMS, so that `quantaseal serve` runs on
// one machine with nothing else to install.
//
// It is for a single machine only: whoever can read the key file and the store can unseal
// every credential. New logs a warning saying so. Production uses
// [github.com/quantaseal/gateway/vault/awskms].
//
// # Format
//
// The key file holds exactly 32 random bytes and must not be readable or writable by group
// or others (mode 0600); New creates it if it is missing and refuses one with wider
// permissions. A wrapped value is
//
//	0x01 | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// with additional data "quantaseal localkey v1" 0x00 followed by the encryption context
// {"purpose", "tenant_id"} canonically encoded: keys in byte order, each key and value
// preceded by its length as a big-endian uint16. A value wrapped for one tenant or purpose
// does not unwrap for another, as with KMS encryption context.
package localkey

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Provider is the provider name recorded with wrapped keys.
const Provider = "local"

const (
	keyLen   = 32
	version  = 0x01
	nonceLen = 12
	aadLabel = "quantaseal localkey v1"
)

// Config configures the local key provider.
type Config struct {
	// Path is the key file. It is created with mode 0600 (and its directory with 0700)
	// if it does not exist.
	Path string
	// Logger receives the single-machine warning (nil: discard).
	Logger *slog.Logger
}

// Wrapper is a vault.KeyWrapper over a key file. It is safe for concurrent use.
type Wrapper struct {
	aead  cipher.AEAD
	keyID string
}

// New loads (or creates) the key file at cfg.Path. It fails if the file is not a regular
// file of exactly 32 bytes, or if its mode grants any permission to group or others.
func New(cfg Config) (*Wrapper, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Path == "" {
		return nil, errors.New("localkey: key file path is required")
	}
	key, created, err := loadOrCreate(cfg.Path)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("localkey: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("localkey: %w", err)
	}
	sum := sha256.Sum256(append([]byte(aadLabel+" key id\x00"), key...))
	clear(key)
	w := &Wrapper{aead: aead, keyID: "local:" + hex.EncodeToString(sum[:8])}
	log.LogAttrs(context.Background(), slog.LevelWarn,
		"local key provider in use: tenant vault keys are protected by a key file on this machine only; use the awskms provider for production",
		slog.String("path", cfg.Path), slog.String("key_id", w.keyID), slog.Bool("created", created))
	return w, nil
}

func loadOrCreate(path string) (key []byte, created bool, err error) {
	key, err = load(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := create(path); err != nil {
		return nil, false, err
	}
	key, err = load(path)
	return key, err == nil, err
}

func load(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("localkey: open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("localkey: stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("localkey: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("localkey: key file %s has mode %#o: group or others may access it; chmod 600 it", path, perm)
	}
	if st.Size() != keyLen {
		return nil, fmt.Errorf("localkey: key file %s is %d bytes, want %d", path, st.Size(), keyLen)
	}
	key := make([]byte, keyLen)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("localkey: read key file: %w", err)
	}
	return key, nil
}

// create writes a new key to a temporary file and links it into place, so that a reader
// never sees a partial key and two processes starting at once keep the same key.
func create(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localkey: create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".localkey-*") // mode 0600
	if err != nil {
		return fmt.Errorf("localkey: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, keyLen)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	_, err = tmp.Write(key)
	clear(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("localkey: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("localkey: install key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable; best effort
		_ = d.Close()
	}
	return nil
}

// aad is the label and the canonical encryption context (docs in the package comment).
func aad(tenantID, purpose string) ([]byte, error) {
	out := append([]byte(aadLabel), 0)
	// Keys in byte order: "purpose" < "tenant_id".
	for _, kv := range [][2]string{{"purpose", purpose}, {"tenant_id", tenantID}} {
		for _, s := range kv {
			if len(s) > 0xffff {
				return nil, errors.New("localkey: encryption context value too long")
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
			out = append(out, s...)
		}
	}
	return out, nil
}

// Wrap encrypts plaintext bound to tenantID and purpose.
func (w *Wrapper) Wrap(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ad, err := aad(tenantID, purpose)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceLen, 1+nonceLen+len(plaintext)+w.aead.Overhead())
	out[0] = version
	_, _ = rand.Read(out[1:])
	return w.aead.Seal(out, out[1:], plaintext, ad), nil
}

// Unwrap decrypts a value made by Wrap for the same tenantID and purpose with the same key
// file. Any mismatch is a non-retryable error.
func (w *Wrapper) Unwrap(ctx context.Context, tenantID, purpose string, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(wrapped) < 1+nonceLen+w.aead.Overhead() || wrapped[0] != version {
		return nil, errors.New("localkey: not a wrapped key (bad length or version)")
	}
	ad, err := aad(tenantID, purpose)
	if err != nil {
		return nil, err
	}
	pt, err := w.aead.Open(nil, wrapped[1:1+nonceLen], wrapped[1+nonceLen:], ad)
	if err != nil {
		return nil, errors.New("localkey: wrapped key does not open with this key file for this tenant and purpose")
	}
	return pt, nil
}

// DescribeKey names the provider and the key file (a hash of the key, not the key).
func (w *Wrapper) DescribeKey(context.Context, string) (provider, keyID string, err error) {
	return Provider, w.keyID, nil
}
