package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
	"github.com/quantaseal/gateway/registry"
)

func (s *server) auditOrFail() (AuditReader, *apiError) {
	if s.deps.Audit == nil {
		return nil, unavailable(errors.New("no audit store configured"))
	}
	return s.deps.Audit, nil
}

// listEvents: GET /api/v2/audit/events?integration_id=&since=&limit=&after=.
func (s *server) listEvents(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	qv := r.URL.Query()
	for name := range qv {
		switch name {
		case "integration_id", "since", "limit", "after":
			if len(qv[name]) > 1 {
				return badRequest(name, "given more than once")
			}
		default:
			return badRequest(name, "unknown query parameter")
		}
	}
	var q audit.Query
	if v := qv.Get("integration_id"); v != "" {
		if !id.Valid(registry.IntegrationIDPrefix, v) {
			return badRequest("integration_id", "not an integration id")
		}
		q.IntegrationID = v
	}
	if v := qv.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return badRequest("since", "must be an RFC 3339 time")
		}
		q.Since = t
	}
	if v := qv.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > audit.MaxListLimit {
			return badRequest("limit", "must be an integer from 1 to "+strconv.Itoa(audit.MaxListLimit))
		}
		q.Limit = n
	}
	if v := qv.Get("after"); v != "" {
		if !id.Valid("aud", v) {
			return badRequest("after", "not a cursor returned by this endpoint")
		}
		q.After = v
	}
	a, e := s.auditOrFail()
	if e != nil {
		return e
	}
	events, next, err := a.ListEvents(r.Context(), key.TenantID, q)
	if err != nil {
		return fromError("audit events", err)
	}
	if events == nil {
		events = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "next": next})
	return nil
}

// eventProof: GET /api/v2/audit/events/{id}: the event, the following events up to the
// next checkpoint, and that checkpoint (audit-v1, Verification).
func (s *server) eventProof(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	evID, e := pathID(r, "id", "aud", "audit event")
	if e != nil {
		return e
	}
	a, e := s.auditOrFail()
	if e != nil {
		return e
	}
	p, err := a.EventProof(r.Context(), key.TenantID, evID)
	if err != nil {
		return fromError("audit event", err)
	}
	if p.Following == nil {
		p.Following = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// latestCheckpoints: GET /api/v2/audit/checkpoints/latest (one per chain of the tenant).
func (s *server) latestCheckpoints(w http.ResponseWriter, r *http.Request, key registry.APIKey) *apiError {
	a, e := s.auditOrFail()
	if e != nil {
		return e
	}
	cps, err := a.LatestCheckpoints(r.Context(), key.TenantID)
	if err != nil {
		return fromError("audit checkpoints", err)
	}
	if cps == nil {
		cps = []audit.SignedCheckpoint{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"checkpoints": cps})
	return nil
}
