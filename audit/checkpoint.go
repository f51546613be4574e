package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/quantaseal/gateway/internal/avxstate"
	"github.com/quantaseal/gateway/internal/secret"
)

// CheckpointContext is the ML-DSA-65 context string of checkpoint signatures.
const CheckpointContext = "quantaseal-audit-checkpoint-v1"

// checkpointHeader is the first line of a checkpoint note.
const checkpointHeader = "quantaseal.audit/v1"

// SignedCheckpoint is the JSON form of a signed checkpoint (audit-v1, Checkpoints).
type SignedCheckpoint struct {
	Note      string `json:"note"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // standard base64 with padding
}

// Checkpoint is the parsed content of a checkpoint note.
type Checkpoint struct {
	ChainID string
	Seq     int64
	Hash    string // hex, as in Event.Hash
	Time    time.Time
}

// Note returns the exact signed text:
//
//	quantaseal.audit/v1\n<chain_id>\n<seq>\n<base64 of the raw hash>\n<time>\n
func (c Checkpoint) Note() (string, error) {
	raw, err := hex.DecodeString(c.Hash)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("checkpoint hash %q is not 64 hex digits", c.Hash)
	}
	if c.ChainID == "" || strings.ContainsAny(c.ChainID, "\n\r") {
		return "", fmt.Errorf("checkpoint chain id %q is empty or contains a line break", c.ChainID)
	}
	if c.Seq < 1 {
		return "", fmt.Errorf("checkpoint seq %d < 1", c.Seq)
	}
	return checkpointHeader + "\n" + c.ChainID + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" +
		base64.StdEncoding.EncodeToString(raw) + "\n" + c.Time.UTC().Format(TimeLayout) + "\n", nil
}

// ParseCheckpointNote parses and strictly validates a checkpoint note: exactly five
// lines each ending in "\n", the fixed header, a non-empty chain id, a decimal seq ≥ 1
// without leading zeros, the padded standard base64 of 32 bytes and an RFC 3339 UTC time.
func ParseCheckpointNote(note string) (Checkpoint, error) {
	if !strings.HasSuffix(note, "\n") {
		return Checkpoint{}, errors.New("checkpoint note: does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(note, "\n"), "\n")
	if len(lines) != 5 {
		return Checkpoint{}, fmt.Errorf("checkpoint note: %d lines, want 5", len(lines))
	}
	if lines[0] != checkpointHeader {
		return Checkpoint{}, fmt.Errorf("checkpoint note: header %q, want %q", lines[0], checkpointHeader)
	}
	var c Checkpoint
	c.ChainID = lines[1]
	if c.ChainID == "" || strings.Contains(c.ChainID, "\r") {
		return Checkpoint{}, errors.New("checkpoint note: empty or malformed chain id")
	}
	seq, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil || seq < 1 || strconv.FormatInt(seq, 10) != lines[2] {
		return Checkpoint{}, fmt.Errorf("checkpoint note: seq %q is not a canonical decimal ≥ 1", lines[2])
	}
	c.Seq = seq
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[3])
	if err != nil || len(raw) != sha256.Size {
		return Checkpoint{}, fmt.Errorf("checkpoint note: hash %q is not base64 of 32 bytes", lines[3])
	}
	c.Hash = hex.EncodeToString(raw)
	t, err := time.Parse(time.RFC3339Nano, lines[4])
	if err != nil || !strings.HasSuffix(lines[4], "Z") {
		return Checkpoint{}, fmt.Errorf("checkpoint note: time %q is not RFC 3339 UTC", lines[4])
	}
	c.Time = t
	return c, nil
}

// Signer signs checkpoint notes with the gateway's ML-DSA-65 key using the context
// [CheckpointContext]. KeyID is [KeyID] of the public key.
type Signer interface {
	KeyID() string
	Sign(note []byte) ([]byte, error)
}

// KeyID returns the key id of an ML-DSA-65 public key: the first 16 hex digits of
// SHA-256(public key).
func KeyID(publicKey []byte) string {
	sum := sha256.Sum256(publicKey)
	return hex.EncodeToString(sum[:8])
}

// SeedSigner is a [Signer] over an ML-DSA-65 key derived from a 32-byte seed (FIPS 204
// ML-DSA.KeyGen_internal). Signatures are deterministic (FIPS 204 "deterministic
// variant"), which keeps test vectors reproducible and needs no randomness at run time.
type SeedSigner struct {
	priv  *mldsa65.PrivateKey
	pub   []byte
	keyID string
}

// NewSeedSigner derives the signing key from a 32-byte seed.
func NewSeedSigner(seed secret.Secret) (*SeedSigner, error) {
	b := seed.Bytes()
	if len(b) != mldsa65.SeedSize {
		return nil, fmt.Errorf("audit signing key: seed is %d bytes, want %d", len(b), mldsa65.SeedSize)
	}
	var s [mldsa65.SeedSize]byte
	copy(s[:], b)
	pub, priv := mldsa65.NewKeyFromSeed(&s)
	clear(s[:])
	clear(b)
	pb := pub.Bytes()
	return &SeedSigner{priv: priv, pub: pb, keyID: KeyID(pb)}, nil
}

// KeyID implements [Signer].
func (s *SeedSigner) KeyID() string { return s.keyID }

// PublicKey returns the packed ML-DSA-65 public key (1952 bytes).
func (s *SeedSigner) PublicKey() []byte { return append([]byte(nil), s.pub...) }

// Sign implements [Signer].
func (s *SeedSigner) Sign(note []byte) ([]byte, error) {
	sig := make([]byte, mldsa65.SignatureSize)
	err := mldsa65.SignTo(s.priv, note, []byte(CheckpointContext), false, sig)
	avxstate.Clean() // see package avxstate
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return sig, nil
}

// SignCheckpoint formats c as a note and signs it with s.
func SignCheckpoint(s Signer, c Checkpoint) (SignedCheckpoint, error) {
	note, err := c.Note()
	if err != nil {
		return SignedCheckpoint{}, err
	}
	sig, err := s.Sign([]byte(note))
	if err != nil {
		return SignedCheckpoint{}, err
	}
	return SignedCheckpoint{Note: note, KeyID: s.KeyID(), Signature: base64.StdEncoding.EncodeToString(sig)}, nil
}

// verifySignature checks sc's signature with the public key for its key id.
func verifySignature(sc SignedCheckpoint, keys map[string][]byte) (member, reason string) {
	pubBytes, ok := keys[sc.KeyID]
	if !ok {
		return "key_id", fmt.Sprintf("unknown signing key %q", sc.KeyID)
	}
	if KeyID(pubBytes) != sc.KeyID {
		return "key_id", fmt.Sprintf("key id %q does not match its public key", sc.KeyID)
	}
	var pub mldsa65.PublicKey
	if err := pub.UnmarshalBinary(pubBytes); err != nil {
		return "key_id", fmt.Sprintf("public key %q: %v", sc.KeyID, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sc.Signature)
	if err != nil || len(sig) != mldsa65.SignatureSize {
		return "signature", "signature is not base64 of an ML-DSA-65 signature"
	}
	ok = mldsa65.Verify(&pub, []byte(sc.Note), []byte(CheckpointContext), sig)
	avxstate.Clean() // see package avxstate
	if !ok {
		return "signature", "ML-DSA-65 signature does not verify"
	}
	return "", ""
}
