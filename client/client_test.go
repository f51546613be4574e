package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quantaseal/gateway/client"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

const (
	tenantID = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7"
	apiKey   = "qs_live_0123456789abcdef"
)

// gateway is a fake gateway: it checks the API key and the request shape and answers
// with real envelopes sealed for the tenant, or with the error the test asks for.
type gateway struct {
	t        *testing.T
	signer   *envelope.SigningKey
	response *envelope.ResponseKey
	hmacKey  *envelope.HMACKey
	// respond decides the answer; nil seals {"ok":true} with status 200.
	respond func(w http.ResponseWriter, req outbound)
	got     []outbound
}

type outbound struct {
	IntegrationID string         `json:"integration_id"`
	Operation     string         `json:"operation"`
	Payload       map[string]any `json:"payload"`
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	g := &gateway{t: t}
	var err error
	if g.signer, err = envelope.GenerateSigningKey(nil); err != nil {
		t.Fatal(err)
	}
	if g.response, err = envelope.GenerateResponseKey(nil); err != nil {
		t.Fatal(err)
	}
	if g.hmacKey, err = envelope.GenerateHMACKey(nil); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gateway) profile() *envelope.Profile {
	return &envelope.Profile{
		TenantID: tenantID, APIKey: secret.New(apiKey), HMACKey: g.hmacKey.Secret(),
		ResponseKEMSeed: g.response.Seed(),
		SigningKeys:     map[string][]byte{g.signer.KeyID(): g.signer.Public().Bytes()},
	}
}

// sealed returns an envelope for the tenant.
func (g *gateway) sealed(status int, next string, body []byte) *envelope.Envelope {
	e, err := envelope.Seal(envelope.SealInput{
		TenantID: tenantID, Recipient: g.response.Public(), Signer: g.signer, HMACKey: g.hmacKey,
		Status: status, Next: next, AuditEventID: "aud_01JDQ90000000000000000000A",
		IssuedAt: time.Now(), Plaintext: body,
	}, nil)
	if err != nil {
		g.t.Error(err)
	}
	return e
}

func writeEnvelope(w http.ResponseWriter, httpStatus int, e *envelope.Envelope) {
	data, _ := e.MarshalJSON()
	w.Header().Set("Content-Type", envelope.MediaType)
	w.WriteHeader(httpStatus)
	w.Write(data)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/proxy/outbound" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("X-API-Key") != apiKey {
		writeJSON(w, 401, map[string]string{"error": "invalid_api_key", "message": "missing or unknown API key", "audit_event_id": "aud_01JDQ90000000000000000000Z"})
		return
	}
	var req outbound
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_payload", "message": err.Error()})
		return
	}
	g.got = append(g.got, req)
	if g.respond == nil {
		writeEnvelope(w, 200, g.sealed(200, "", []byte(`{"ok":true}`)))
		return
	}
	g.respond(w, req)
}

func (g *gateway) client(t *testing.T, srv *httptest.Server, edit func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{BaseURL: srv.URL, Profile: g.profile(), HTTPClient: srv.Client()}
	if edit != nil {
		edit(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOutbound(t *testing.T) {
	users := []byte(`[{"id":"00u1","profile":{"login":"ada@example.com"}}]`)
	forbidden := []byte(`{"errorCode":"E0000006","errorSummary":"You do not have permission"}`)
	tests := []struct {
		name    string
		respond func(g *gateway) func(http.ResponseWriter, outbound)
		want    client.Result
	}{
		{"200 with next", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				writeEnvelope(w, 200, g.sealed(200, "00ub0oNGTSWTBKOLGLNR", users))
			}
		}, client.Result{Status: 200, Success: true, Next: "00ub0oNGTSWTBKOLGLNR", AuditEventID: "aud_01JDQ90000000000000000000A", Body: users}},
		{"upstream 403 in an HTTP 200 envelope", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) { writeEnvelope(w, 200, g.sealed(403, "", forbidden)) }
		}, client.Result{Status: 403, Success: false, AuditEventID: "aud_01JDQ90000000000000000000A", Body: forbidden}},
		{"upstream 403 in an HTTP 403 envelope", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) { writeEnvelope(w, 403, g.sealed(403, "", forbidden)) }
		}, client.Result{Status: 403, Success: false, AuditEventID: "aud_01JDQ90000000000000000000A", Body: forbidden}},
		{"envelope labelled application/json", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				data, _ := g.sealed(204, "", nil).MarshalJSON()
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.Write(data)
			}
		}, client.Result{Status: 204, Success: true, AuditEventID: "aud_01JDQ90000000000000000000A", Body: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			g.respond = tt.respond(g)
			srv := httptest.NewServer(g)
			defer srv.Close()
			res, err := g.client(t, srv, nil).Outbound(t.Context(), "int_01JDQ8Z4V5G7K9M2N3P4R5S6T9", "list_users",
				map[string]any{"filter": `status eq "ACTIVE"`, "limit": 25})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *res, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Envelope" }, cmp.Ignore())); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			if res.Envelope == nil || res.Envelope.Signature.KeyID != g.signer.KeyID() {
				t.Error("Result.Envelope is not the verified envelope")
			}
			wantReq := outbound{IntegrationID: "int_01JDQ8Z4V5G7K9M2N3P4R5S6T9", Operation: "list_users",
				Payload: map[string]any{"filter": `status eq "ACTIVE"`, "limit": float64(25)}}
			if len(g.got) != 1 {
				t.Fatalf("gateway saw %d requests", len(g.got))
			}
			if diff := cmp.Diff(wantReq, g.got[0]); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutboundNilPayloadSendsObject(t *testing.T) {
	g := newGateway(t)
	var raw string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		raw = string(b)
		writeEnvelope(w, 200, g.sealed(200, "", nil))
	}))
	defer srv.Close()
	if _, err := g.client(t, srv, nil).Outbound(t.Context(), "int_x", "list_groups", nil); err != nil {
		t.Fatal(err)
	}
	if want := `{"integration_id":"int_x","operation":"list_groups","payload":{}}`; raw != want {
		t.Errorf("body %s, want %s", raw, want)
	}
}

func TestOutboundAPIErrors(t *testing.T) {
	tests := []struct {
		name          string
		respond       func(w http.ResponseWriter, _ outbound)
		want          client.APIError
		wantTemporary bool
	}{
		{"invalid_payload with field", func(w http.ResponseWriter, _ outbound) {
			writeJSON(w, 400, map[string]string{"error": "invalid_payload", "message": "limit must be 1-200", "field": "payload.limit", "audit_event_id": "aud_1"})
		}, client.APIError{Status: 400, Code: "invalid_payload", Message: "limit must be 1-200", Field: "payload.limit", AuditEventID: "aud_1"}, false},
		{"operation_not_allowed", func(w http.ResponseWriter, _ outbound) {
			writeJSON(w, 403, map[string]string{"error": "operation_not_allowed", "message": "create_user is not allowed", "integration_id": "int_1", "audit_event_id": "aud_2"})
		}, client.APIError{Status: 403, Code: "operation_not_allowed", Message: "create_user is not allowed", IntegrationID: "int_1", AuditEventID: "aud_2"}, false},
		{"unavailable", func(w http.ResponseWriter, _ outbound) {
			writeJSON(w, 503, map[string]string{"error": "unavailable", "message": "audit store unavailable"})
		}, client.APIError{Status: 503, Code: "unavailable", Message: "audit store unavailable"}, true},
		{"plain-text proxy error", func(w http.ResponseWriter, _ outbound) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(502)
			io.WriteString(w, "upstream connect error")
		}, client.APIError{Status: 502, Code: "unexpected_response", Message: `neither an envelope nor a JSON error (content type "text/plain")`}, true},
		{"JSON without error code", func(w http.ResponseWriter, _ outbound) { writeJSON(w, 200, map[string]string{"hello": "world"}) },
			client.APIError{Status: 200, Code: "unexpected_response", Message: "JSON without an error code or an envelope"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			g.respond = tt.respond
			srv := httptest.NewServer(g)
			defer srv.Close()
			res, err := g.client(t, srv, nil).Outbound(t.Context(), "int_1", "create_user", map[string]any{})
			var ae *client.APIError
			if !errors.As(err, &ae) || res != nil {
				t.Fatalf("Outbound = %v, %v; want an *APIError", res, err)
			}
			if diff := cmp.Diff(tt.want, *ae); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if ae.Temporary() != tt.wantTemporary {
				t.Errorf("Temporary() = %v", ae.Temporary())
			}
			if strings.Contains(err.Error(), apiKey) {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
	t.Run("wrong API key", func(t *testing.T) {
		g := newGateway(t)
		srv := httptest.NewServer(g)
		defer srv.Close()
		_, err := g.client(t, srv, func(c *client.Config) { c.APIKey = secret.New("qs_live_wrong") }).Outbound(t.Context(), "int_1", "list_users", nil)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != "invalid_api_key" || ae.Status != 401 {
			t.Fatalf("err = %v, want 401 invalid_api_key", err)
		}
		if strings.Contains(err.Error(), "qs_live_wrong") {
			t.Errorf("error %q contains the API key", err)
		}
	})
}

func TestOutboundRefusesBadEnvelopes(t *testing.T) {
	tests := []struct {
		name      string
		respond   func(g *gateway) func(http.ResponseWriter, outbound)
		wantCheck string
	}{
		{"status rewritten in transit", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				e := g.sealed(403, "", []byte("denied"))
				e.Status, e.Success = 200, true
				writeEnvelope(w, 200, e)
			}
		}, envelope.CheckSignatures},
		{"signed by an unknown gateway key", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				other, _ := envelope.GenerateSigningKey(nil)
				e, _ := envelope.Seal(envelope.SealInput{TenantID: tenantID, Recipient: g.response.Public(), Signer: other,
					HMACKey: g.hmacKey, Status: 200, AuditEventID: "aud_1", IssuedAt: time.Now(), Plaintext: []byte("x")}, nil)
				writeEnvelope(w, 200, e)
			}
		}, envelope.CheckKey},
		{"envelope for another tenant", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				e, _ := envelope.Seal(envelope.SealInput{TenantID: "ten_other", Recipient: g.response.Public(), Signer: g.signer,
					HMACKey: g.hmacKey, Status: 200, AuditEventID: "aud_1", IssuedAt: time.Now(), Plaintext: []byte("x")}, nil)
				writeEnvelope(w, 200, e)
			}
		}, envelope.CheckTenant},
		{"truncated envelope", func(g *gateway) func(http.ResponseWriter, outbound) {
			return func(w http.ResponseWriter, _ outbound) {
				data, _ := g.sealed(200, "", []byte("x")).MarshalJSON()
				w.Header().Set("Content-Type", envelope.MediaType)
				w.Write(data[:len(data)/2])
			}
		}, envelope.CheckFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t)
			g.respond = tt.respond(g)
			srv := httptest.NewServer(g)
			defer srv.Close()
			res, err := g.client(t, srv, nil).Outbound(t.Context(), "int_1", "list_users", nil)
			var oe *envelope.OpenError
			if !errors.As(err, &oe) || res != nil {
				t.Fatalf("Outbound = %v, %v; want an *envelope.OpenError", res, err)
			}
			if oe.Check != tt.wantCheck {
				t.Errorf("check %s (%v), want %s", oe.Check, err, tt.wantCheck)
			}
		})
	}
}

func TestOutboundLimitsAndDeadlines(t *testing.T) {
	g := newGateway(t)
	g.respond = func(w http.ResponseWriter, req outbound) {
		if req.Operation == "slow" {
			time.Sleep(200 * time.Millisecond)
		}
		writeEnvelope(w, 200, g.sealed(200, "", make([]byte, 4096)))
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	t.Run("response too large", func(t *testing.T) {
		_, err := g.client(t, srv, func(c *client.Config) { c.MaxResponseBytes = 1024 }).Outbound(t.Context(), "int_1", "list_users", nil)
		if err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, err := g.client(t, srv, func(c *client.Config) { c.Timeout = 20 * time.Millisecond }).Outbound(t.Context(), "int_1", "slow", nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a deadline error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := g.client(t, srv, nil).Outbound(ctx, "int_1", "list_users", nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	g := newGateway(t)
	noTenant := g.profile()
	noTenant.TenantID = ""
	noKey := g.profile()
	noKey.APIKey = secret.Secret{}
	tests := []struct {
		name string
		cfg  client.Config
	}{
		{"no profile", client.Config{BaseURL: "http://127.0.0.1:8080"}},
		{"relative base URL", client.Config{BaseURL: "/api", Profile: g.profile()}},
		{"ftp base URL", client.Config{BaseURL: "ftp://example.com", Profile: g.profile()}},
		{"profile without tenant", client.Config{BaseURL: "http://127.0.0.1:8080", Profile: noTenant}},
		{"no API key anywhere", client.Config{BaseURL: "http://127.0.0.1:8080", Profile: noKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := client.New(tt.cfg); err == nil {
				t.Errorf("New = %v, want an error", c)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	g := newGateway(t)
	data, _ := g.sealed(200, "n", []byte("body")).MarshalJSON()
	body, e, err := client.Open(data, g.profile())
	if err != nil || string(body) != "body" || e.Next != "n" {
		t.Fatalf("Open = %q, %v, %v", body, e, err)
	}
	other := newGateway(t)
	if _, _, err := client.Open(data, other.profile()); err == nil {
		t.Error("opened with another tenant's profile")
	}
	if _, _, err := client.Open(data, nil); err == nil {
		t.Error("opened without a profile")
	}
}
