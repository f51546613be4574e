package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/policy"
	"github.com/quantaseal/gateway/registry"
)

// auditPageSize is how many events the audit table shows per page.
const auditPageSize = 25

// defaultAuditWindow is the time window of the audit page when none is given.
const defaultAuditWindow = 24 * time.Hour

// formTime is how the audit page's datetime-local inputs spell a time (UTC).
const formTime = "2006-01-02T15:04"

var errNoAudit = errors.New("console: no audit store configured")

func (s *server) auditStore() (Audit, error) {
	if s.deps.Audit == nil {
		return nil, errNoAudit
	}
	return s.deps.Audit, nil
}

// auditFilter is the audit page's query.
type auditFilter struct {
	IntegrationID string
	Operation     string
	Decision      string
	From, To      time.Time
	Page          int
}

func parseFormTime(v string) (time.Time, bool) {
	for _, layout := range []string{formTime, "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *server) parseAuditFilter(q url.Values) (auditFilter, fieldErrors) {
	errs := fieldErrors{}
	f := auditFilter{
		IntegrationID: q.Get("integration_id"), Operation: q.Get("operation"), Decision: q.Get("decision"), Page: 1,
	}
	if f.IntegrationID != "" && !id.Valid(registry.IntegrationIDPrefix, f.IntegrationID) {
		errs["integration_id"] = "Choose an integration from the list."
		f.IntegrationID = ""
	}
	if f.Operation != "" {
		if _, ok := policy.Lookup(policy.SystemOkta, f.Operation); !ok {
			errs["operation"] = "Choose an operation from the catalogue."
			f.Operation = ""
		}
	}
	switch f.Decision {
	case "", "allow", "deny":
	default:
		errs["decision"] = "Choose allow or deny."
		f.Decision = ""
	}
	now := s.now().UTC()
	f.To = now
	if v := q.Get("to"); v != "" {
		t, ok := parseFormTime(v)
		if !ok {
			errs["to"] = "Enter a date and time (UTC)."
		} else {
			f.To = t
		}
	}
	f.From = f.To.Add(-defaultAuditWindow)
	if v := q.Get("from"); v != "" {
		t, ok := parseFormTime(v)
		if !ok {
			errs["from"] = "Enter a date and time (UTC)."
		} else {
			f.From = t
		}
	}
	if !f.From.Before(f.To) {
		errs["from"] = "Must be before the end of the window."
		f.From = f.To.Add(-defaultAuditWindow)
	}
	if v := q.Get("page"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 1_000_000 {
			f.Page = n
		}
	}
	return f, errs
}

func (f auditFilter) values(page int) url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"integration_id": f.IntegrationID, "operation": f.Operation, "decision": f.Decision} {
		if x != "" {
			v.Set(k, x)
		}
	}
	v.Set("from", f.From.Format(time.RFC3339))
	v.Set("to", f.To.Format(time.RFC3339))
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

// scanEvents reads the tenant's events of the filter's window, in creation order, and
// keeps those that match. It stops after cfg.MaxScanEvents events (truncated).
func (s *server) scanEvents(r *http.Request, a Audit, tenantID string, f auditFilter) (matched []audit.Event, truncated bool, err error) {
	q := audit.Query{IntegrationID: f.IntegrationID, Since: f.From, Limit: audit.MaxListLimit}
	scanned := 0
	// Ids are creation-ordered; a replica's clock may differ a little, so the scan
	// runs a minute past the window before it stops.
	stopAfter := f.To.Add(time.Minute)
	for {
		page, next, err := a.ListEvents(r.Context(), tenantID, q)
		if err != nil {
			return nil, false, err
		}
		for _, e := range page {
			scanned++
			ts, err := e.Timestamp()
			if err != nil {
				continue
			}
			if ts.After(stopAfter) {
				return matched, false, nil
			}
			if ts.Before(f.From) || !ts.Before(f.To) ||
				(f.Operation != "" && e.Operation != f.Operation) || (f.Decision != "" && e.Decision != f.Decision) {
				continue
			}
			matched = append(matched, e)
		}
		if next == "" {
			return matched, false, nil
		}
		if scanned >= s.cfg.MaxScanEvents {
			return matched, true, nil
		}
		q.After = next
	}
}

type auditPageData struct {
	Filter       auditFilter
	FromValue    string
	ToValue      string
	Errors       fieldErrors
	Integrations []registry.Integration
	Names        map[string]string // integration id → name
	Operations   []string
	Events       []audit.Event
	Total        int
	Truncated    bool
	MaxScan      int
	Chart        chart
	Page, Pages  int
	PrevURL      string
	NextURL      string
}

func (s *server) auditPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	a, err := s.auditStore()
	if err != nil {
		return err
	}
	f, errs := s.parseAuditFilter(r.URL.Query())
	ins, err := s.deps.Registry.ListIntegrations(r.Context(), sess.tenantID)
	if err != nil {
		return err
	}
	events, truncated, err := s.scanEvents(r, a, sess.tenantID, f)
	if err != nil {
		return err
	}
	d := auditPageData{
		Filter: f, FromValue: f.From.Format(formTime), ToValue: f.To.Format(formTime), Errors: errs,
		Integrations: ins, Total: len(events), Truncated: truncated, MaxScan: s.cfg.MaxScanEvents,
		Chart: buildChart(events, f.From, f.To),
	}
	d.Names = map[string]string{}
	for _, in := range ins {
		d.Names[in.ID] = in.Name
	}
	for _, op := range policy.Operations(policy.SystemOkta) {
		d.Operations = append(d.Operations, op.Name)
	}
	// Newest first.
	slices.Reverse(events)
	d.Pages = max(1, (len(events)+auditPageSize-1)/auditPageSize)
	d.Page = min(f.Page, d.Pages)
	start := (d.Page - 1) * auditPageSize
	d.Events = events[start:min(start+auditPageSize, len(events))]
	if d.Page > 1 {
		d.PrevURL = "/console/audit?" + f.values(d.Page-1).Encode()
	}
	if d.Page < d.Pages {
		d.NextURL = "/console/audit?" + f.values(d.Page+1).Encode()
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
	}
	s.render(w, r, sess, status, "audit", "Audit", "audit", d)
	return nil
}

func (s *server) keyMap() map[string][]byte {
	keys := map[string][]byte{}
	if s.deps.SigningKeys != nil {
		for _, k := range s.deps.SigningKeys() {
			keys[k.KeyID] = k.PublicKey
		}
	}
	return keys
}

type eventPageData struct {
	Event           audit.Event
	IntegrationName string
	Following       []audit.Event
	Checkpoint      *audit.SignedCheckpoint
	ProofOK         bool
	ProofError      string
}

func (s *server) auditEvent(w http.ResponseWriter, r *http.Request, sess *session) error {
	a, err := s.auditStore()
	if err != nil {
		return err
	}
	evID := r.PathValue("id")
	if !id.Valid("aud", evID) {
		return errNotFound
	}
	p, err := a.EventProof(r.Context(), sess.tenantID, evID)
	if err != nil {
		return err
	}
	if p.Event.TenantID != sess.tenantID {
		// The store scopes by tenant; this is a second line of defence.
		return errNotFound
	}
	d := eventPageData{Event: p.Event, Following: p.Following, Checkpoint: p.Checkpoint}
	if id.Valid(registry.IntegrationIDPrefix, p.Event.IntegrationID) {
		in, err := s.deps.Registry.GetIntegration(r.Context(), sess.tenantID, p.Event.IntegrationID)
		switch {
		case err == nil:
			d.IntegrationName = in.Name
		case !errors.Is(err, registry.ErrNotFound): // deleted integrations keep their events
			return err
		}
	}
	if err := audit.VerifyProof(p, s.keyMap()); err != nil {
		d.ProofError = err.Error()
	} else {
		d.ProofOK = true
	}
	s.render(w, r, sess, http.StatusOK, "event", "Audit event "+p.Event.ID, "audit", d)
	return nil
}

// chainResult is the outcome of verifying one chain.
type chainResult struct {
	ChainID     string
	Events      int
	Checkpoints int
	OK          bool
	TooLarge    bool
	Failure     *audit.VerifyError
	Error       string
}

type verifyData struct {
	Chains []chainResult
	AllOK  bool
	Keys   int
}

// verifyChain runs audit.Verify over each of the tenant's chains, read from the store.
func (s *server) verifyChain(w http.ResponseWriter, r *http.Request, sess *session) error {
	a, err := s.auditStore()
	if err != nil {
		return err
	}
	heads, err := a.Chains(r.Context())
	if err != nil {
		return err
	}
	keys := s.keyMap()
	d := verifyData{AllOK: true, Keys: len(keys)}
	for _, h := range heads {
		if h.TenantID != sess.tenantID {
			continue
		}
		res := chainResult{ChainID: h.ID}
		if h.Seq > int64(s.cfg.MaxVerifyEvents) {
			res.TooLarge = true
			d.AllOK = false
			d.Chains = append(d.Chains, res)
			continue
		}
		var events []audit.Event
		for after := int64(0); ; {
			page, err := a.ChainEvents(r.Context(), h.ID, after, audit.MaxListLimit)
			if err != nil {
				return err
			}
			events = append(events, page...)
			if len(page) < audit.MaxListLimit || len(events) > s.cfg.MaxVerifyEvents {
				break
			}
			after = page[len(page)-1].Seq
		}
		cps, err := a.Checkpoints(r.Context(), h.ID, 1)
		if err != nil {
			return err
		}
		res.Events, res.Checkpoints = len(events), len(cps)
		err = audit.Verify(events, cps, keys, s.cfg.VerifyOptions)
		var ve *audit.VerifyError
		switch {
		case err == nil:
			res.OK = true
		case errors.As(err, &ve):
			res.Failure = ve
		default:
			res.Error = err.Error()
		}
		if !res.OK {
			d.AllOK = false
		}
		d.Chains = append(d.Chains, res)
	}
	s.render(w, r, sess, http.StatusOK, "verify", "Verify audit chain", "audit", d)
	return nil
}

type keysData struct {
	Keys []SigningKey
}

func (s *server) signingKeys(w http.ResponseWriter, r *http.Request, sess *session) error {
	var d keysData
	if s.deps.SigningKeys != nil {
		d.Keys = s.deps.SigningKeys()
	}
	s.render(w, r, sess, http.StatusOK, "keys", "Signing keys", "keys", d)
	return nil
}
