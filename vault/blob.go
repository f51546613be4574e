package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"

	"github.com/quantaseal/gateway/internal/avxstate"
)

// Sealed blob v1 (docs/spec/vault-v1.md §3):
//
//	magic "QSV" | version 0x01 | kind | ML-KEM-768 ciphertext (1088) | nonce (12) | AES-256-GCM ciphertext+tag
const (
	blobVersion  = 0x01
	headerLen    = 5
	nonceLen     = 12
	tagLen       = 16
	kemCTOffset  = headerLen
	nonceOffset  = kemCTOffset + mlkem768.CiphertextSize
	aeadOffset   = nonceOffset + nonceLen
	minBlobLen   = aeadOffset + tagLen
	maxFieldLen  = 0xffff // AAD fields are uint16 length-prefixed
	hkdfInfoBase = "quantaseal vault v1"
)

// Blob kinds: what the plaintext is, so that a credential blob never opens as a tenant
// secret of the same name and vice versa.
const (
	kindCredential byte = 0x01
	kindSecret     byte = 0x02
)

var blobMagic = [3]byte{'Q', 'S', 'V'}

// errOpen is the one error for every authentication failure, so that the error does not
// tell which binding (tenant, id, type, bits) was wrong.
var errOpen = errors.New("sealed blob does not open: wrong tenant, id or type, or modified")

// sealedBlob is a parsed v1 blob. Its slices alias the input.
type sealedBlob struct {
	kind  byte
	kemCT []byte
	nonce []byte
	aead  []byte
}

// parseBlob splits b into its v1 fields. It checks only the layout; authenticity is
// checked by open.
func parseBlob(b []byte) (sealedBlob, error) {
	if len(b) < minBlobLen {
		return sealedBlob{}, fmt.Errorf("sealed blob too short (%d bytes)", len(b))
	}
	if [3]byte(b[:3]) != blobMagic {
		return sealedBlob{}, errors.New("not a sealed blob (bad magic)")
	}
	if b[3] != blobVersion {
		return sealedBlob{}, fmt.Errorf("unsupported sealed blob version %d", b[3])
	}
	if b[4] != kindCredential && b[4] != kindSecret {
		return sealedBlob{}, fmt.Errorf("unknown sealed blob kind %d", b[4])
	}
	return sealedBlob{
		kind:  b[4],
		kemCT: b[kemCTOffset:nonceOffset],
		nonce: b[nonceOffset:aeadOffset],
		aead:  b[aeadOffset:],
	}, nil
}

func (s sealedBlob) header() []byte {
	return []byte{blobMagic[0], blobMagic[1], blobMagic[2], blobVersion, s.kind}
}

func (s sealedBlob) marshal() []byte {
	out := make([]byte, 0, aeadOffset+len(s.aead))
	out = append(out, s.header()...)
	out = append(out, s.kemCT...)
	out = append(out, s.nonce...)
	return append(out, s.aead...)
}

// binding is what a blob is bound to through the AEAD additional data.
type binding struct {
	kind     byte
	tenantID string
	id       string // credential id, or the purpose for kindSecret
	typ      string // credential type, or "" for kindSecret
}

func (b binding) check() error {
	for _, f := range []string{b.tenantID, b.id, b.typ} {
		if len(f) > maxFieldLen {
			return errors.New("binding field too long")
		}
	}
	return nil
}

// aad is header || len16(tenant_id) || tenant_id || len16(id) || id || len16(type) || type.
func (b binding) aad() []byte {
	out := make([]byte, 0, headerLen+6+len(b.tenantID)+len(b.id)+len(b.typ))
	out = append(out, blobMagic[0], blobMagic[1], blobMagic[2], blobVersion, b.kind)
	for _, f := range []string{b.tenantID, b.id, b.typ} {
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}

// aeadKey is HKDF-SHA-256(ss, salt = ML-KEM ciphertext, info = "quantaseal vault v1" 0x00
// tenant_id), 32 bytes.
func aeadKey(ss, kemCT []byte, tenantID string) (cipher.AEAD, error) {
	info := make([]byte, 0, len(hkdfInfoBase)+1+len(tenantID))
	info = append(info, hkdfInfoBase...)
	info = append(info, 0)
	info = append(info, tenantID...)
	key, err := hkdf.Key(sha256.New, ss, kemCT, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// seal encrypts plaintext to pub under bind.
func seal(pub *mlkem768.PublicKey, bind binding, plaintext []byte) ([]byte, error) {
	if err := bind.check(); err != nil {
		return nil, err
	}
	s := sealedBlob{
		kind:  bind.kind,
		kemCT: make([]byte, mlkem768.CiphertextSize),
		nonce: make([]byte, nonceLen),
	}
	ss := make([]byte, mlkem768.SharedKeySize)
	pub.EncapsulateTo(s.kemCT, ss, nil) // nil seed: crypto/rand
	avxstate.Clean()                    // before HKDF and AES-GCM (see package avxstate)
	gcm, err := aeadKey(ss, s.kemCT, bind.tenantID)
	clear(ss)
	if err != nil {
		return nil, err
	}
	_, _ = rand.Read(s.nonce) // crypto/rand.Read never fails (Go 1.24+)
	s.aead = gcm.Seal(nil, s.nonce, plaintext, bind.aad())
	return s.marshal(), nil
}

// open authenticates and decrypts b with priv under bind.
func open(priv *mlkem768.PrivateKey, bind binding, b []byte) ([]byte, error) {
	s, err := parseBlob(b)
	if err != nil {
		return nil, err
	}
	if s.kind != bind.kind || bind.check() != nil {
		return nil, errOpen
	}
	ss := make([]byte, mlkem768.SharedKeySize)
	// ML-KEM decapsulation never fails: a modified ciphertext yields an unrelated
	// (implicit-rejection) shared secret, so the GCM check below catches it.
	priv.DecapsulateTo(ss, s.kemCT)
	avxstate.Clean()
	gcm, err := aeadKey(ss, s.kemCT, bind.tenantID)
	clear(ss)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, s.nonce, s.aead, bind.aad())
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}
