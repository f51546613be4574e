package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/id"
)

func TestAuditPage(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	now := h.clock.Now()
	ops := []string{"list_users", "get_user", "create_user", ""}
	for i := range 40 {
		dec := "allow"
		if i%4 == 0 {
			dec = "deny"
		}
		h.aud.add(t, audit.Event{TenantID: h.tenantA.ID, IntegrationID: a.intID, Operation: ops[i%len(ops)], Caller: "key_a",
			Decision: dec, Status: 200}, now.Add(-time.Duration(40-i)*10*time.Minute))
	}
	// One event outside the default 24 h window.
	old := h.aud.add(t, audit.Event{TenantID: h.tenantA.ID, Operation: "list_groups", Decision: "allow"}, now.Add(-48*time.Hour))
	h.aud.checkpoint(t, now)
	c := h.client()
	c.login(h.keyA)

	tests := []struct {
		query string
		count int
		check func(t *testing.T, body string)
	}{
		{"", 41, func(t *testing.T, body string) {
			if strings.Contains(body, old.ID) {
				t.Error("default window shows an event of two days ago")
			}
			for _, want := range []string{`<svg`, `class="allow"`, `class="deny"`, "list_users", "(unknown operation)", "allowed"} {
				if !strings.Contains(body, want) {
					t.Errorf("chart lacks %q", want)
				}
			}
		}},
		{"decision=deny", 10, func(t *testing.T, body string) {
			if strings.Contains(body, `<span class="decision allow">`) {
				t.Error("deny filter shows allowed events")
			}
		}},
		{"operation=get_user", 10, nil},
		{"integration_id=" + a.intID + "&decision=allow", 31, nil},
		{"from=" + url.QueryEscape(now.Add(-50*time.Hour).Format(formTime)), 42, nil},
		{"from=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(-20*time.Minute).Format(formTime)), 5, nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := c.get("/console/audit?" + tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			if want := fmt.Sprintf("(%d matching)", tc.count); !strings.Contains(r.body, want) {
				t.Errorf("page does not say %q", want)
			}
			if tc.check != nil {
				tc.check(t, r.body)
			}
		})
	}
	bad := []struct{ query, field string }{
		{"decision=maybe", "decision"},
		{"operation=drop", "operation"},
		{"integration_id=nope", "integration_id"},
		{"from=yesterday", "from"},
		{"from=" + now.Format(formTime) + "&to=" + now.Add(-time.Hour).Format(formTime), "from"},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.query, func(t *testing.T) {
			r := c.get("/console/audit?" + tc.query)
			if r.status != http.StatusBadRequest || !fieldErrorNear(r.body, tc.field, "") {
				t.Errorf("status %d, no error next to %s", r.status, tc.field)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		// 41 events in the window: pages of auditPageSize, newest first.
		pages := (41 + auditPageSize - 1) / auditPageSize
		r := c.get("/console/audit")
		if !strings.Contains(r.body, fmt.Sprintf("Page 1 of %d", pages)) || !strings.Contains(r.body, "page=2") {
			t.Errorf("page 1 of %d not shown", pages)
		}
		if got := strings.Count(r.body, `class="event-link"`); got != auditPageSize {
			t.Errorf("page 1 lists %d events, want %d", got, auditPageSize)
		}
		r = c.get(fmt.Sprintf("/console/audit?page=%d", pages))
		if got := strings.Count(r.body, `class="event-link"`); got != 41-(pages-1)*auditPageSize {
			t.Errorf("last page lists %d events", got)
		}
		// A page past the end shows the last page.
		if r := c.get("/console/audit?page=99"); !strings.Contains(r.body, fmt.Sprintf("Page %d of %d", pages, pages)) {
			t.Error("page past the end not clamped")
		}
	})
	t.Run("scan limit", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxScanEvents = 1000 })
		for i := range 1001 {
			h.aud.add(t, audit.Event{TenantID: h.tenantA.ID, Operation: "list_users", Decision: "allow"},
				now.Add(-time.Duration(1001-i)*time.Second))
		}
		c := h.client()
		c.login(h.keyA)
		if r := c.get("/console/audit"); !strings.Contains(r.body, "more than 1000 events") {
			t.Error("truncation is not reported")
		}
	})
	t.Run("no audit store", func(t *testing.T) {
		h := newHarness(t, nil)
		handler, err := New(Config{Now: h.clock.Now}, Deps{Registry: h.reg, Vault: h.vlt})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(handler)
		defer srv.Close()
		c := h.client()
		c.base = srv.URL
		c.login(h.keyA)
		if r := c.get("/console/audit"); r.status != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", r.status)
		}
	})
}

func TestAuditEventAndVerify(t *testing.T) {
	h := newHarness(t, nil)
	a := h.seed(h.tenantA, "a-okta")
	now := h.clock.Now()
	var ids []string
	for i := range 5 {
		e := h.aud.add(t, audit.Event{TenantID: h.tenantA.ID, IntegrationID: a.intID, Operation: "list_users",
			Decision: "allow", Status: 200}, now.Add(time.Duration(i)*time.Second-time.Hour))
		ids = append(ids, e.ID)
	}
	h.aud.checkpoint(t, now)
	c := h.client()
	c.login(h.keyA)

	r := c.get("/console/audit/events/" + ids[1])
	for _, want := range []string{"Proof verified", "quantaseal.audit/v1", ids[4], "ML-DSA-65"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("event page lacks %q", want)
		}
	}
	if r := c.get("/console/audit/events/not-an-id"); r.status != http.StatusNotFound {
		t.Errorf("bad id: status %d", r.status)
	}
	if r := c.get("/console/audit/events/" + id.New("aud")); r.status != http.StatusNotFound {
		t.Errorf("unknown id: status %d", r.status)
	}

	r = c.post("/console/audit/verify", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Every chain verifies") || !strings.Contains(r.body, h.tenantA.ID+"/w1") {
		t.Fatalf("verify: status %d\n%s", r.status, r.body)
	}
	if strings.Contains(r.body, h.tenantB.ID) {
		t.Error("verify shows tenant B's chain")
	}

	h.aud.tamper(ids[2], func(e *audit.Event) { e.Status = 500 })
	r = c.post("/console/audit/verify", nil)
	if !strings.Contains(r.body, "Verification failed") || !strings.Contains(r.body, "broken</span> at seq 4 (hash)") {
		t.Errorf("tampered chain not reported at seq 4 (hash):\n%s", r.body)
	}
	if r := c.get("/console/audit/events/" + ids[1]); !strings.Contains(r.body, "Proof does not verify") {
		t.Error("tampered proof reported as verified")
	}

	t.Run("too large", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.MaxVerifyEvents = 1 })
		h.seed(h.tenantA, "a")
		h.seed(h.tenantA, "b")
		c := h.client()
		c.login(h.keyA)
		if r := c.post("/console/audit/verify", nil); !strings.Contains(r.body, "Too large to verify here") {
			t.Error("large chain not refused")
		}
	})
}
