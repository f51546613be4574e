// Package client is the Go client for tenants of the QuantaSeal gateway: it calls the
// outbound API (POST /api/v2/proxy/outbound) and verifies and decrypts the
// HybridCryptoEnvelope that answers every call, using the tenant's client profile
// (docs/spec/envelope-v1.md "Client profile").
//
// # Results and errors
//
// [Client.Outbound] returns a [Result] whenever the gateway answered with an envelope,
// including for upstream errors (Result.Success false, Result.Status the upstream
// status). A call the gateway rejected before reaching upstream returns an [*APIError]
// with the machine code of the gateway's JSON error body. An envelope that fails
// verification returns the [*envelope.OpenError] that names the failed check.
//
// [Open] is the standalone equivalent for an envelope obtained some other way (for
// example from a transparent-mode call with Accept: application/vnd.quantaseal.envelope+json).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

// Defaults of [Config].
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 64 << 20
)

// outboundPath is the gateway's outbound API.
const outboundPath = "/api/v2/proxy/outbound"

// Config configures a [Client].
type Config struct {
	// BaseURL is the gateway's HTTP API origin, e.g. "https://quantaseal.example.com".
	BaseURL string
	// APIKey is the tenant API key (qs_live_…); when zero, Profile.APIKey is used.
	APIKey secret.Secret
	// Profile holds the tenant id and the keys that open envelopes (required).
	Profile *envelope.Profile
	// HTTPClient sends the requests; nil means a new http.Client.
	HTTPClient *http.Client
	// Timeout bounds each call (0 means DefaultTimeout; negative means none beyond ctx).
	Timeout time.Duration
	// MaxResponseBytes bounds a response body (0 means DefaultMaxResponseBytes).
	MaxResponseBytes int64
}

// Client calls the gateway. It is safe for concurrent use.
type Client struct {
	endpoint string
	apiKey   secret.Secret
	keys     envelope.OpenKeys
	hc       *http.Client
	timeout  time.Duration
	maxBody  int64
}

// New checks cfg and parses the profile's keys once.
func New(cfg Config) (*Client, error) {
	if cfg.Profile == nil {
		return nil, errors.New("client: Config.Profile is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	endpoint := u.JoinPath(outboundPath).String()
	apiKey := cfg.APIKey
	if apiKey.IsZero() {
		apiKey = cfg.Profile.APIKey
	}
	if apiKey.IsZero() {
		return nil, errors.New("client: no API key in Config.APIKey or the profile")
	}
	keys, err := cfg.Profile.OpenKeys()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{endpoint: endpoint, apiKey: apiKey, keys: keys, hc: cfg.HTTPClient,
		timeout: cfg.Timeout, maxBody: cfg.MaxResponseBytes}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	return c, nil
}

// Result is a verified, decrypted envelope.
type Result struct {
	// Status is the upstream HTTP status (or the gateway's own where no upstream answered).
	Status int
	// Success is true exactly when Status is 2xx.
	Success bool
	// Next is the cursor of the next page ("" on the last page); pass it as the
	// payload's "after" to continue.
	Next string
	// AuditEventID is the audit event that recorded the call.
	AuditEventID string
	// Body is the upstream response body, verified and decrypted.
	Body []byte
	// Envelope is the verified envelope as received.
	Envelope *envelope.Envelope
}

// APIError is the gateway's JSON error for a call rejected before upstream, e.g.
// 401 invalid_api_key, 400 invalid_payload (with Field), 403 operation_not_allowed,
// 503 unavailable. A response that is neither an envelope nor such an error has Code
// "unexpected_response".
type APIError struct {
	Status        int    // HTTP status
	Code          string // the body's "error"
	Message       string
	Field         string
	IntegrationID string
	AuditEventID  string
}

func (e *APIError) Error() string {
	s := "quantaseal: HTTP " + strconv.Itoa(e.Status) + " " + e.Code
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.AuditEventID != "" {
		s += " [audit " + e.AuditEventID + "]"
	}
	return s
}

// Temporary reports whether retrying the call later may succeed: the gateway or a
// dependency was unavailable.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusBadGateway ||
		e.Status == http.StatusGatewayTimeout || e.Status == http.StatusTooManyRequests
}

type outboundRequest struct {
	IntegrationID string `json:"integration_id"`
	Operation     string `json:"operation"`
	Payload       any    `json:"payload"`
}

// Outbound calls operation on integrationID with payload (any JSON-encodable value;
// nil sends {}) and returns the verified, decrypted result. See the package doc for
// the errors.
func (c *Client) Outbound(ctx context.Context, integrationID, operation string, payload any) (*Result, error) {
	if payload == nil {
		payload = struct{}{}
	}
	body, err := json.Marshal(outboundRequest{IntegrationID: integrationID, Operation: operation, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("quantaseal outbound %s: encode payload: %w", operation, err)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("quantaseal outbound %s: %w", operation, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", envelope.MediaType+", application/json")
	req.Header.Set("X-API-Key", c.apiKey.Reveal())
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("quantaseal outbound %s: %w", operation, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("quantaseal outbound %s: read response: %w", operation, err)
	}
	if int64(len(data)) > c.maxBody {
		return nil, fmt.Errorf("quantaseal outbound %s: response larger than %d bytes", operation, c.maxBody)
	}
	res, err := c.decode(resp, data)
	if err != nil {
		return nil, fmt.Errorf("quantaseal outbound %s: %w", operation, err)
	}
	return res, nil
}

// probe tells an envelope from an error body without decoding the ciphertext.
type probe struct {
	Encrypted     json.RawMessage `json:"encrypted"`
	Error         string          `json:"error"`
	Message       string          `json:"message"`
	Field         string          `json:"field"`
	IntegrationID string          `json:"integration_id"`
	AuditEventID  string          `json:"audit_event_id"`
}

func (c *Client) decode(resp *http.Response, data []byte) (*Result, error) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != envelope.MediaType {
		var p probe
		if mt != "application/json" || json.Unmarshal(data, &p) != nil {
			return nil, &APIError{Status: resp.StatusCode, Code: "unexpected_response",
				Message: fmt.Sprintf("neither an envelope nor a JSON error (content type %q)", resp.Header.Get("Content-Type"))}
		}
		if p.Encrypted == nil {
			if p.Error == "" {
				return nil, &APIError{Status: resp.StatusCode, Code: "unexpected_response", Message: "JSON without an error code or an envelope"}
			}
			return nil, &APIError{Status: resp.StatusCode, Code: p.Error, Message: p.Message, Field: p.Field,
				IntegrationID: p.IntegrationID, AuditEventID: p.AuditEventID}
		}
	}
	body, e, err := envelope.Open(data, c.keys)
	if err != nil {
		return nil, err
	}
	return &Result{Status: e.Status, Success: e.Success, Next: e.Next, AuditEventID: e.AuditEventID, Body: body, Envelope: e}, nil
}

// Open verifies and decrypts an envelope with a profile's keys: the standalone
// equivalent of the product docs' client.encryption.decrypt(envelope). Errors are
// those of [envelope.Open]; a profile without tenant_id is an error.
func Open(envelopeJSON []byte, profile *envelope.Profile) ([]byte, *envelope.Envelope, error) {
	if profile == nil {
		return nil, nil, errors.New("client: open: no profile")
	}
	keys, err := profile.OpenKeys()
	if err != nil {
		return nil, nil, fmt.Errorf("client: open: %w", err)
	}
	return envelope.Open(envelopeJSON, keys)
}
