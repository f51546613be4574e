package console

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/internal/secret"
	"github.com/quantaseal/gateway/registry"
	"github.com/quantaseal/gateway/vault"
)

// fakeRegistry is an in-memory Registry that scopes every read and write by tenant, as
// the real stores do.
type fakeRegistry struct {
	mu           sync.Mutex
	tenants      map[string]registry.Tenant
	keys         map[string]registry.APIKey // by id
	integrations map[string]registry.Integration
	creds        func(tenantID, credID string) bool // does the credential exist in the tenant
	fail         error                              // when set, every call returns it
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{tenants: map[string]registry.Tenant{}, keys: map[string]registry.APIKey{},
		integrations: map[string]registry.Integration{}}
}

func (f *fakeRegistry) LookupAPIKey(_ context.Context, hash []byte) (registry.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return registry.APIKey{}, f.fail
	}
	for _, k := range f.keys {
		if string(k.Hash) == string(hash) {
			return k, nil
		}
	}
	return registry.APIKey{}, registry.ErrNotFound
}

func (f *fakeRegistry) CreateTenant(_ context.Context, t registry.Tenant, first registry.APIKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tenants[t.ID]; ok {
		return registry.ErrConflict
	}
	f.tenants[t.ID] = t
	f.keys[first.ID] = first
	return nil
}

func (f *fakeRegistry) GetTenant(_ context.Context, tenantID string) (registry.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tenants[tenantID]
	if !ok {
		return registry.Tenant{}, registry.ErrNotFound
	}
	return t, nil
}

func (f *fakeRegistry) ListTenants(context.Context) ([]registry.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Tenant
	for _, t := range f.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeRegistry) CreateAPIKey(_ context.Context, k registry.APIKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tenants[k.TenantID]; !ok {
		return registry.ErrNotFound
	}
	f.keys[k.ID] = k
	return nil
}

func (f *fakeRegistry) ListAPIKeys(_ context.Context, tenantID string) ([]registry.APIKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.APIKey
	for _, k := range f.keys {
		if k.TenantID == tenantID {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeRegistry) RevokeAPIKey(_ context.Context, tenantID, keyID string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[keyID]
	if !ok || k.TenantID != tenantID {
		return registry.ErrNotFound
	}
	if k.RevokedAt == nil {
		k.RevokedAt = &at
	}
	f.keys[keyID] = k
	return nil
}

func (f *fakeRegistry) CreateIntegration(_ context.Context, in registry.Integration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.integrations {
		if x.TenantID == in.TenantID && x.Name == in.Name {
			return registry.ErrConflict
		}
	}
	if f.creds != nil && !f.creds(in.TenantID, in.CredentialID) {
		return registry.ErrNotFound
	}
	in.AllowedOperations = slices.Clone(in.AllowedOperations)
	f.integrations[in.ID] = in
	return nil
}

func (f *fakeRegistry) GetIntegration(_ context.Context, tenantID, integrationID string) (registry.Integration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.integrations[integrationID]
	if !ok || in.TenantID != tenantID {
		return registry.Integration{}, fmt.Errorf("get integration: %w", registry.ErrNotFound)
	}
	return in, nil
}

func (f *fakeRegistry) ListIntegrations(_ context.Context, tenantID string) ([]registry.Integration, error) {
	return f.listWhere(func(in registry.Integration) bool { return in.TenantID == tenantID }), nil
}

func (f *fakeRegistry) ListIntegrationsByCredential(_ context.Context, tenantID, credentialID string) ([]registry.Integration, error) {
	return f.listWhere(func(in registry.Integration) bool {
		return in.TenantID == tenantID && in.CredentialID == credentialID
	}), nil
}

func (f *fakeRegistry) listWhere(keep func(registry.Integration) bool) []registry.Integration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Integration
	for _, in := range f.integrations {
		if keep(in) {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeRegistry) UpdateIntegration(_ context.Context, in registry.Integration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.integrations[in.ID]
	if !ok || old.TenantID != in.TenantID {
		return registry.ErrNotFound
	}
	for _, x := range f.integrations {
		if x.TenantID == in.TenantID && x.Name == in.Name && x.ID != in.ID {
			return registry.ErrConflict
		}
	}
	in.AllowedOperations = slices.Clone(in.AllowedOperations)
	f.integrations[in.ID] = in
	return nil
}

func (f *fakeRegistry) DeleteIntegration(_ context.Context, tenantID, integrationID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.integrations[integrationID]
	if !ok || in.TenantID != tenantID {
		return registry.ErrNotFound
	}
	for _, k := range f.keys {
		if k.IntegrationID == integrationID && k.RevokedAt == nil {
			return registry.ErrConflict
		}
	}
	delete(f.integrations, integrationID)
	return nil
}

// snapshot is a printable copy of the registry, to check that a refused request changed
// nothing.
func (f *fakeRegistry) snapshot() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, m := range []map[string]string{
		mapOf(f.tenants, func(t registry.Tenant) string { return t.Name }),
		mapOf(f.keys, func(k registry.APIKey) string { return fmt.Sprint(k.TenantID, k.IntegrationID, k.RevokedAt != nil) }),
		mapOf(f.integrations, func(in registry.Integration) string { return fmt.Sprintf("%+v", in) }),
	} {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			b.WriteString(k + "=" + m[k] + "\n")
		}
	}
	return b.String()
}

func mapOf[T any](m map[string]T, f func(T) string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = f(v)
	}
	return out
}

// fakeVault keeps credentials in memory and validates them with vault.Credential.Validate,
// so validation errors are the real ones. It records the secrets it was given so tests
// can check a submitted secret arrived.
type fakeVault struct {
	mu       sync.Mutex
	creds    map[string]vault.CredentialMeta
	received []string // secrets passed to Seal/Rotate
	n        int
	now      func() time.Time
}

func newFakeVault(now func() time.Time) *fakeVault {
	return &fakeVault{creds: map[string]vault.CredentialMeta{}, now: now}
}

func (v *fakeVault) record(c vault.Credential) {
	for _, s := range []secret.Secret{c.ClientSecret, c.PrivateKey, c.Token} {
		if !s.IsZero() {
			v.received = append(v.received, s.Reveal())
		}
	}
}

func (v *fakeVault) Seal(_ context.Context, tenantID, name, credType string, c vault.Credential) (vault.CredentialMeta, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c.Type == "" {
		c.Type = credType
	}
	if err := c.Validate(); err != nil {
		return vault.CredentialMeta{}, err
	}
	v.record(c)
	v.n++
	m := vault.CredentialMeta{TenantID: tenantID, ID: id.New("vlt"), Name: name, Type: credType,
		Fingerprint: fmt.Sprintf("hmac-sha256:fake%d", v.n), CreatedAt: v.now()}
	v.creds[m.ID] = m
	return m, nil
}

func (v *fakeVault) Rotate(_ context.Context, tenantID, credentialID string, c vault.Credential) (vault.CredentialMeta, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.creds[credentialID]
	if !ok || m.TenantID != tenantID {
		return vault.CredentialMeta{}, vault.ErrNotFound
	}
	if c.Type == "" {
		c.Type = m.Type
	}
	if err := c.Validate(); err != nil {
		return vault.CredentialMeta{}, err
	}
	v.record(c)
	v.n++
	m.Fingerprint = fmt.Sprintf("hmac-sha256:fake%d", v.n)
	m.RotatedAt = v.now()
	v.creds[credentialID] = m
	return m, nil
}

func (v *fakeVault) Get(_ context.Context, tenantID, credentialID string) (vault.CredentialMeta, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.creds[credentialID]
	if !ok || m.TenantID != tenantID {
		return vault.CredentialMeta{}, fmt.Errorf("vault get: %w", vault.ErrNotFound)
	}
	return m, nil
}

func (v *fakeVault) has(tenantID, credentialID string) bool {
	_, err := v.Get(context.Background(), tenantID, credentialID)
	return err == nil
}

func (v *fakeVault) List(_ context.Context, tenantID string) ([]vault.CredentialMeta, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []vault.CredentialMeta
	for _, m := range v.creds {
		if m.TenantID == tenantID {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (v *fakeVault) Delete(_ context.Context, tenantID, credentialID string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.creds[credentialID]
	if !ok || m.TenantID != tenantID {
		return vault.ErrNotFound
	}
	delete(v.creds, credentialID)
	return nil
}

func (v *fakeVault) SealBytes(_ context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	return []byte("sealed:" + tenantID + ":" + purpose), nil
}

func (v *fakeVault) snapshot() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("%v", mapOf(v.creds, func(m vault.CredentialMeta) string { return fmt.Sprintf("%+v", m) }))
}

// fakeAudit holds hand-built chains whose hashes and checkpoints are real, so that
// audit.Verify and audit.VerifyProof run on them.
type fakeAudit struct {
	mu     sync.Mutex
	events []audit.Event // in creation order
	cps    map[string][]audit.SignedCheckpoint
	signer *audit.SeedSigner
}

func newFakeAudit(t *testing.T) *fakeAudit {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	s, err := audit.NewSeedSigner(secret.FromBytes(seed))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAudit{cps: map[string][]audit.SignedCheckpoint{}, signer: s}
}

func (a *fakeAudit) keys() []SigningKey {
	return []SigningKey{{KeyID: a.signer.KeyID(), PublicKey: a.signer.PublicKey(), Current: true}}
}

// add appends e to its tenant's chain at time at, completing its chain members.
func (a *fakeAudit) add(t *testing.T, e audit.Event, at time.Time) audit.Event {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	e.ID = id.New("aud")
	e.ChainID = e.TenantID + "/w1"
	e.Time = at.UTC().Format(audit.TimeLayout)
	e.Seq, e.PrevHash = 1, audit.ZeroHash
	for i := len(a.events) - 1; i >= 0; i-- {
		if a.events[i].ChainID == e.ChainID {
			e.Seq, e.PrevHash = a.events[i].Seq+1, a.events[i].Hash
			break
		}
	}
	e.Hash = e.ComputeHash()
	a.events = append(a.events, e)
	return e
}

// checkpoint signs the head of every chain.
func (a *fakeAudit) checkpoint(t *testing.T, at time.Time) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	heads := map[string]audit.Event{}
	for _, e := range a.events {
		heads[e.ChainID] = e
	}
	for chain, e := range heads {
		cp, err := audit.SignCheckpoint(a.signer, audit.Checkpoint{ChainID: chain, Seq: e.Seq, Hash: e.Hash, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		a.cps[chain] = append(a.cps[chain], cp)
	}
}

func (a *fakeAudit) ListEvents(_ context.Context, tenantID string, q audit.Query) ([]audit.Event, string, error) {
	limit, err := q.Normalize()
	if err != nil {
		return nil, "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Event
	for _, e := range a.events {
		ts, _ := e.Timestamp()
		if e.TenantID != tenantID || (q.IntegrationID != "" && e.IntegrationID != q.IntegrationID) ||
			(!q.Since.IsZero() && ts.Before(q.Since)) || (q.After != "" && e.ID <= q.After) {
			continue
		}
		out = append(out, e)
		if len(out) == limit {
			return out, e.ID, nil
		}
	}
	return out, "", nil
}

func (a *fakeAudit) EventProof(_ context.Context, tenantID, eventID string) (audit.Proof, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, e := range a.events {
		if e.ID != eventID || e.TenantID != tenantID {
			continue
		}
		p := audit.Proof{Event: e}
		for _, cp := range a.cps[e.ChainID] {
			c, _ := audit.ParseCheckpointNote(cp.Note)
			if c.Seq >= e.Seq {
				p.Checkpoint = &cp
				for _, f := range a.events[i+1:] {
					if f.ChainID == e.ChainID && f.Seq <= c.Seq {
						p.Following = append(p.Following, f)
					}
				}
				break
			}
		}
		return p, nil
	}
	return audit.Proof{}, audit.ErrNotFound
}

func (a *fakeAudit) Chains(context.Context) ([]audit.Head, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	heads := map[string]audit.Head{}
	for _, e := range a.events {
		heads[e.ChainID] = audit.Head{Chain: audit.Chain{ID: e.ChainID, TenantID: e.TenantID}, Seq: e.Seq, Hash: e.Hash}
	}
	var out []audit.Head
	for _, h := range heads {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (a *fakeAudit) ChainEvents(_ context.Context, chainID string, afterSeq int64, limit int) ([]audit.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Event
	for _, e := range a.events {
		if e.ChainID == chainID && e.Seq > afterSeq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (a *fakeAudit) Checkpoints(_ context.Context, chainID string, fromSeq int64) ([]audit.SignedCheckpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.cps[chainID]), nil
}

// tamper rewrites one event's member without fixing its hash.
func (a *fakeAudit) tamper(eventID string, f func(*audit.Event)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.events {
		if a.events[i].ID == eventID {
			f(&a.events[i])
		}
	}
}
