// Package awskms is the production key provider: a [vault.KeyWrapper] over AWS KMS
// (aws-sdk-go-v2) that wraps each tenant's vault key seed with the tenant's KMS key.
//
// # Keys and encryption context
//
// Wrap calls KMS Encrypt with the key that [Config.KeyIDFor] names for the tenant (or
// [Config.KeyID] for every tenant) and the encryption context
// {"tenant_id": tenant, "purpose": purpose}. Unwrap calls Decrypt with the same context
// and no KeyId: a symmetric KMS ciphertext names its own key, the caller's IAM policy
// decides whether it may use it, and the context binds the result to the tenant and
// purpose (a seed copied to another tenant does not decrypt). Not pinning KeyId on Decrypt
// also means that pointing a tenant at a new key later does not strand seeds wrapped under
// the old one.
//
// # Errors
//
// Every failure is an [*Error]. Failures that may pass (no connection, DNS, TLS, timeouts,
// HTTP 5xx, throttling, KMSInternalException, DependencyTimeoutException) are temporary
// and match [vault.ErrUnavailable], so the HTTP API answers 503. A KMS answer such as
// AccessDeniedException, InvalidCiphertextException, NotFoundException, DisabledException
// or KMSInvalidStateException is not retryable: it needs an operator.
//
// Each call is bounded by [Config.Timeout] including the SDK's retries
// ([Config.MaxAttempts] attempts, backoff capped at one second), so a KMS outage costs a
// request at most that long.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/quantaseal/gateway/vault"
)

// Provider is the provider name recorded with wrapped keys.
const Provider = "awskms"

// Defaults for zero Config fields.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 3
	maxBackoff         = time.Second
)

// Config configures the KMS wrapper.
type Config struct {
	// KeyID is the KMS key (id, ARN, alias name or alias ARN) used for every tenant when
	// KeyIDFor is nil.
	KeyID string
	// KeyIDFor, if set, names the KMS key of a tenant ("the tenant's KMS CMK"). It is
	// called on every Wrap, which happens once per tenant (vault key creation).
	KeyIDFor func(tenantID string) (string, error)
	// Endpoint overrides the KMS endpoint (e.g. http://127.0.0.1:4599 for a local KMS).
	Endpoint string
	// Region is the AWS region; empty means the SDK's default chain (AWS_REGION, shared
	// config).
	Region string
	// Timeout bounds each Wrap and Unwrap, retries included (0: DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts is the number of attempts per call (0: DefaultMaxAttempts).
	MaxAttempts int
	// Credentials, if set, replaces the SDK's default credential chain (environment,
	// shared files, web identity, ECS/EC2 roles).
	Credentials aws.CredentialsProvider
}

// Wrapper is a vault.KeyWrapper over AWS KMS. It is safe for concurrent use.
type Wrapper struct {
	client  *kms.Client
	keyFor  func(string) (string, error)
	timeout time.Duration
}

// New loads the AWS configuration (standard credential chain unless cfg.Credentials is
// set) and returns a Wrapper. It does not call KMS.
func New(ctx context.Context, cfg Config) (*Wrapper, error) {
	if cfg.KeyID == "" && cfg.KeyIDFor == nil {
		return nil, errors.New("awskms: KeyID or KeyIDFor is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = maxBackoff
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("awskms: no AWS region: set Region or AWS_REGION")
	}
	client := kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	keyFor := cfg.KeyIDFor
	if keyFor == nil {
		keyID := cfg.KeyID
		keyFor = func(string) (string, error) { return keyID, nil }
	}
	return &Wrapper{client: client, keyFor: keyFor, timeout: cfg.Timeout}, nil
}

func encryptionContext(tenantID, purpose string) map[string]string {
	return map[string]string{"tenant_id": tenantID, "purpose": purpose}
}

// Wrap encrypts plaintext (at most 4096 bytes, the KMS Encrypt limit) under the tenant's
// KMS key with encryption context {tenant_id, purpose}.
func (w *Wrapper) Wrap(ctx context.Context, tenantID, purpose string, plaintext []byte) ([]byte, error) {
	keyID, err := w.resolve(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("awskms: resolve key for tenant %s: %w", tenantID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	out, err := w.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(keyID),
		Plaintext:         plaintext,
		EncryptionContext: encryptionContext(tenantID, purpose),
	})
	if err != nil {
		return nil, classify("encrypt", err)
	}
	return out.CiphertextBlob, nil
}

// Unwrap decrypts a value made by Wrap for the same tenant and purpose.
func (w *Wrapper) Unwrap(ctx context.Context, tenantID, purpose string, wrapped []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	out, err := w.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		EncryptionContext: encryptionContext(tenantID, purpose),
	})
	if err != nil {
		return nil, classify("decrypt", err)
	}
	return out.Plaintext, nil
}

// resolve names the KMS key for a tenant: the one the context carries
// ([vault.WithKMSKeyID], set while the tenant is being created), else Config.KeyIDFor's.
func (w *Wrapper) resolve(ctx context.Context, tenantID string) (string, error) {
	if id := vault.KMSKeyIDFromContext(ctx); id != "" {
		return id, nil
	}
	return w.keyFor(tenantID)
}

// DescribeKey names the provider and the tenant's KMS key, for [vault.WrappedKey].
func (w *Wrapper) DescribeKey(ctx context.Context, tenantID string) (provider, keyID string, err error) {
	keyID, err = w.resolve(ctx, tenantID)
	if err != nil {
		return "", "", fmt.Errorf("awskms: resolve key for tenant %s: %w", tenantID, err)
	}
	return Provider, keyID, nil
}

// Error is a failed KMS call. It never holds key material: the SDK's errors carry the
// operation, status, error code, request id and KMS's message only.
type Error struct {
	Op   string // "encrypt" or "decrypt"
	Code string // the KMS error code, e.g. "AccessDeniedException"; "" if KMS never answered
	temp bool
	err  error
}

func (e *Error) Error() string {
	kind := "not retryable"
	if e.temp {
		kind = "unavailable"
	}
	if e.Code != "" {
		return fmt.Sprintf("awskms: %s: %s (%s): %v", e.Op, e.Code, kind, e.err)
	}
	return fmt.Sprintf("awskms: %s (%s): %v", e.Op, kind, e.err)
}

// Temporary reports whether a retry may succeed.
func (e *Error) Temporary() bool { return e.temp }

// Unwrap returns the SDK error, and vault.ErrUnavailable when the error is temporary.
func (e *Error) Unwrap() []error {
	if e.temp {
		return []error{vault.ErrUnavailable, e.err}
	}
	return []error{e.err}
}

// temporaryCodes are KMS error codes that mean "KMS cannot serve now". Throttling and
// 5xx are covered by status too, but a local KMS does not always send the right status.
var temporaryCodes = map[string]bool{
	"ThrottlingException":        true,
	"LimitExceededException":     true,
	"KMSInternalException":       true,
	"DependencyTimeoutException": true,
	"ServiceUnavailable":         true,
	"InternalFailure":            true,
	"RequestTimeout":             true,
}

func classify(op string, err error) error {
	e := &Error{Op: op, err: err}
	var apiErr smithy.APIError
	switch {
	case errors.Is(err, context.Canceled):
		// The caller went away; that is not an outage.
	case errors.As(err, &apiErr) && apiErr.ErrorCode() != "":
		e.Code = apiErr.ErrorCode()
		s := httpStatus(err)
		e.temp = temporaryCodes[e.Code] || apiErr.ErrorFault() == smithy.FaultServer || s >= 500 || s == 429
	default:
		// Status 0: KMS never answered (connection refused, DNS, TLS, our timeout, or the
		// SDK could not get credentials). Otherwise an answer without a KMS error code.
		s := httpStatus(err)
		e.temp = s == 0 || s >= 500 || s == 429
	}
	return e
}

// httpStatus is the HTTP status of KMS's answer, or 0 if there was none.
func httpStatus(err error) int {
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil && respErr.Response.Response != nil {
		return respErr.Response.StatusCode
	}
	return 0
}
