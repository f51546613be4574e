package envelope

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/quantaseal/gateway/internal/secret"
)

// ErrProfilePermissions is returned (wrapped) by [LoadProfile] for a profile file that
// other users may read or write: it holds the tenant's API key, HMAC key and response
// key seed, so, like ssh with a private key, we refuse it rather than use it.
// chmod 600 the file (in Kubernetes: defaultMode: 0400 on the secret volume).
var ErrProfilePermissions = errors.New("client profile is accessible by group or others")

// Profile is a tenant's client profile (envelope-v1 "Client profile"): everything a
// client needs to call the gateway and open its envelopes.
//
// Formatting a Profile (fmt, encoding/json, slog) never shows its secrets: they are
// [secret.Secret]s. Use [Profile.Save] or [Profile.MarshalFile] to write the real file.
type Profile struct {
	TenantID        string
	APIKey          secret.Secret
	HMACKey         secret.Secret // 64 bytes
	ResponseKEMSeed secret.Secret // 64 bytes, ML-KEM-768 d‖z
	// SigningKeys maps a gateway ML-DSA-65 key id to its public key.
	SigningKeys map[string][]byte
}

type profileFile struct {
	TenantID        string            `json:"tenant_id"`
	APIKey          string            `json:"api_key"`
	HMACKey         string            `json:"hmac_key"`
	ResponseKEMSeed string            `json:"response_kem_seed"`
	SigningKeys     map[string]string `json:"signing_keys"`
}

// ParseProfile decodes a profile and checks it: hmac_key and response_kem_seed are
// base64 of 64 bytes, and every signing key is a 1952-byte ML-DSA-65 public key whose
// key id is the map key. tenant_id and api_key may be empty (a profile from
// `quantaseal keys generate` before registration); [Profile.OpenKeys] needs tenant_id.
func ParseProfile(data []byte) (*Profile, error) {
	var f profileFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("envelope: parse client profile: %s", jsonErrorText(err))
	}
	hk, err := base64.StdEncoding.DecodeString(f.HMACKey)
	if err != nil || len(hk) != HMACKeySize {
		return nil, fmt.Errorf("envelope: client profile: hmac_key must be base64 of %d bytes", HMACKeySize)
	}
	seed, err := base64.StdEncoding.DecodeString(f.ResponseKEMSeed)
	if err != nil || len(seed) != ResponseSeedSize {
		return nil, fmt.Errorf("envelope: client profile: response_kem_seed must be base64 of %d bytes", ResponseSeedSize)
	}
	p := &Profile{
		TenantID:        f.TenantID,
		APIKey:          secret.New(f.APIKey),
		HMACKey:         secret.FromBytes(hk),
		ResponseKEMSeed: secret.FromBytes(seed),
		SigningKeys:     make(map[string][]byte, len(f.SigningKeys)),
	}
	clear(hk)
	clear(seed)
	for id, b64 := range f.SigningKeys {
		pub, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("envelope: client profile: signing_keys[%q] is not base64", id)
		}
		vk, err := ParseVerifyingKey(pub)
		if err != nil {
			return nil, fmt.Errorf("envelope: client profile: signing_keys[%q]: %w", id, err)
		}
		if vk.KeyID() != id {
			return nil, fmt.Errorf("envelope: client profile: signing_keys[%q] holds the key with id %q", id, vk.KeyID())
		}
		p.SigningKeys[id] = pub
	}
	return p, nil
}

// LoadProfile reads and parses a profile file. On Unix it refuses, with
// [ErrProfilePermissions], a file whose mode grants group or others any access.
func LoadProfile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("envelope: load client profile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("envelope: load client profile: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("envelope: load client profile %s (mode %04o): %w; run chmod 600 on it", path, fi.Mode().Perm(), ErrProfilePermissions)
	}
	data, err := readAllLimited(f, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("envelope: load client profile %s: %w", path, err)
	}
	p, err := ParseProfile(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return p, nil
}

func readAllLimited(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		clear(data)
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// MarshalFile returns the profile's file content, secrets included. Handle the result
// as a secret.
func (p *Profile) MarshalFile() ([]byte, error) {
	f := profileFile{
		TenantID:        p.TenantID,
		APIKey:          p.APIKey.Reveal(),
		HMACKey:         base64.StdEncoding.EncodeToString(p.HMACKey.Bytes()),
		ResponseKEMSeed: base64.StdEncoding.EncodeToString(p.ResponseKEMSeed.Bytes()),
		SigningKeys:     make(map[string]string, len(p.SigningKeys)),
	}
	ids := make([]string, 0, len(p.SigningKeys))
	for id := range p.SigningKeys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f.SigningKeys[id] = base64.StdEncoding.EncodeToString(p.SigningKeys[id])
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("envelope: encode client profile: %w", err)
	}
	return append(b, '\n'), nil
}

// Save writes the profile to path with mode 0600, replacing any existing file
// atomically (a temporary file in the same directory, fsync, rename).
func (p *Profile) Save(path string) error {
	data, err := p.MarshalFile()
	if err != nil {
		return err
	}
	defer clear(data)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("envelope: save client profile: %w", err)
	}
	name := tmp.Name()
	err = writeAndSync(tmp, data)
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("envelope: save client profile %s: %w", path, err)
	}
	return nil
}

// SaveNew writes the profile to a new file at path with mode 0600. It fails with an
// error wrapping fs.ErrExist if path exists, without touching it.
func (p *Profile) SaveNew(path string) error {
	data, err := p.MarshalFile()
	if err != nil {
		return err
	}
	defer clear(data)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("envelope: save client profile: %w", err)
	}
	if err := writeAndSync(f, data); err != nil {
		os.Remove(path)
		return fmt.Errorf("envelope: save client profile %s: %w", path, err)
	}
	return nil
}

// writeAndSync sets mode 0600 (whatever the umask did), writes, syncs and closes f.
func writeAndSync(f *os.File, data []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// OpenKeys parses the profile's keys for [Open]. It fails if tenant_id is empty.
func (p *Profile) OpenKeys() (OpenKeys, error) {
	if p.TenantID == "" {
		return OpenKeys{}, errors.New("envelope: client profile has no tenant_id: fill in the tenant id the gateway issued")
	}
	rk, err := NewResponseKey(p.ResponseKEMSeed.Bytes())
	if err != nil {
		return OpenKeys{}, fmt.Errorf("client profile: %w", err)
	}
	hk, err := NewHMACKey(p.HMACKey.Bytes())
	if err != nil {
		return OpenKeys{}, fmt.Errorf("client profile: %w", err)
	}
	vks := make(map[string]*VerifyingKey, len(p.SigningKeys))
	for id, pub := range p.SigningKeys {
		vk, err := ParseVerifyingKey(pub)
		if err != nil {
			return OpenKeys{}, fmt.Errorf("client profile: signing_keys[%q]: %w", id, err)
		}
		if vk.KeyID() != id {
			return OpenKeys{}, fmt.Errorf("client profile: signing_keys[%q] holds the key with id %q", id, vk.KeyID())
		}
		vks[id] = vk
	}
	return OpenKeys{TenantID: p.TenantID, Response: rk, HMACKey: hk, Verifying: vks}, nil
}
