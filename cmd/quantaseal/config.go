package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/quantaseal/gateway/internal/secret"
)

// Config is the whole gateway configuration: one YAML file, decoded strictly, then the
// QUANTASEAL_* environment overrides of envOverrides. Defaults are safe: loopback binds,
// the embedded store, the local key provider, fail closed.
type Config struct {
	DataDir     string        `yaml:"data_dir"`
	HTTPAddr    string        `yaml:"http_addr"`
	GRPCAddr    string        `yaml:"grpc_addr"`
	AdminToken  secret.Secret `yaml:"-"`
	DatabaseURL secret.Secret `yaml:"-"` // may carry a password
	LogLevel    string        `yaml:"log_level"`
	KMS         KMSConfig     `yaml:"kms"`
	Okta        OktaConfig    `yaml:"okta"`
	Audit       AuditConfig   `yaml:"audit"`
	Server      ServerConfig  `yaml:"server"`
}

// KMSConfig selects the key provider that wraps each tenant's vault key.
type KMSConfig struct {
	Provider string        `yaml:"provider"` // local | aws
	Endpoint string        `yaml:"endpoint"` // aws: endpoint override (local KMS servers, VPC endpoints)
	Region   string        `yaml:"region"`
	KeyID    string        `yaml:"key_id"` // aws: default key id or ARN for tenants without their own
	KeyFile  string        `yaml:"key_file"`
	CacheTTL time.Duration `yaml:"cache_ttl"` // how long an unwrapped vault key is kept in memory
	Timeout  time.Duration `yaml:"timeout"`
}

// OktaConfig governs where credentials may be sent and how tokens are fetched.
type OktaConfig struct {
	AllowedDomains []string      `yaml:"allowed_domains"` // extra origins: custom domains, loopback test doubles
	CAFile         string        `yaml:"ca_file"`
	TokenTimeout   time.Duration `yaml:"token_timeout"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// AuditConfig tunes the audit chain's group commit and checkpoints.
type AuditConfig struct {
	// WriterID names this process's shard of each tenant's chain ("<tenant>/<writer>").
	// Replicas may share one (appends serialise on the chain head) or use their own
	// stable id, such as a pod ordinal, to append in parallel (docs/design/audit-chains.md).
	WriterID      string        `yaml:"writer_id"`
	CommitTimeout time.Duration `yaml:"commit_timeout"`
	MaxBatch      int           `yaml:"max_batch"`
	// MaxDelay is how long the committer waits for more events once the previous batch
	// held more than one (there is load); an idle gateway commits at once. Every commit
	// pays a transaction and an fsync whatever its size, so under load a short wait
	// makes batches — and throughput — much larger (README, Performance).
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxInFlight is how many group commits may be in flight at once; 0 picks 2 on
	// PostgreSQL (a batch is sent while the previous one commits) and 1 on the
	// embedded store (audit.Config.MaxInFlight).
	MaxInFlight        int           `yaml:"max_in_flight"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	CheckpointEvery    int           `yaml:"checkpoint_every"`
	// HashResponses buffers the response of transparent calls without an envelope so
	// their events carry response_sha256 and response_bytes. Off by default: those calls
	// then need only Envoy's header phases (no body buffering), and their events leave
	// both members empty (docs/spec/audit-v1.md).
	HashResponses bool `yaml:"hash_responses"`
}

// ServerConfig holds the process-level knobs of `serve`.
type ServerConfig struct {
	DrainDelay      time.Duration `yaml:"drain_delay"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	MaxMessageBytes int           `yaml:"max_message_bytes"` // gRPC receive/send limit
	MessageTimeout  time.Duration `yaml:"message_timeout"`   // Envoy's ext_proc message_timeout, so the processor knows its budget
	// MaxBufferedBodyBytes bounds the response bodies that envelope (and hashed) calls
	// hold at once; a call that finds no room waits while Envoy keeps its body, and is
	// answered 503 after a few seconds (extproc.Config.MaxBufferedBodyBytes).
	MaxBufferedBodyBytes int64 `yaml:"max_buffered_body_bytes"`
	// DebugAddr, when set, serves Go's profiler (net/http/pprof) on its own listener.
	// Loopback only: a profile shows the process's code paths and timings. Off by
	// default.
	DebugAddr string `yaml:"debug_addr"`
}

// defaultConfig returns the embedded defaults `make run` uses.
func defaultConfig() Config {
	return Config{
		DataDir:  "./quantaseal-data",
		HTTPAddr: "127.0.0.1:8080",
		GRPCAddr: "127.0.0.1:9002",
		LogLevel: "info",
		KMS: KMSConfig{
			Provider: "local",
			CacheTTL: 5 * time.Minute,
			Timeout:  5 * time.Second,
		},
		Okta: OktaConfig{
			TokenTimeout:   10 * time.Second,
			RequestTimeout: 30 * time.Second,
		},
		Audit: AuditConfig{
			WriterID:           "w1",
			CommitTimeout:      5 * time.Second,
			MaxBatch:           512,
			MaxDelay:           2 * time.Millisecond,
			CheckpointInterval: 5 * time.Second,
			CheckpointEvery:    1000,
		},
		Server: ServerConfig{
			DrainDelay:      2 * time.Second,
			ShutdownTimeout: 30 * time.Second,
			// Envoy buffers whole bodies into one gRPC message; the default
			// per_connection_buffer_limit_bytes is 1 MiB, grpc-go's default receive
			// limit 4 MiB. 16 MiB leaves room for raised Envoy limits without letting
			// one stream pin unbounded memory (envoy-extproc.md §3, gotcha 16).
			MaxMessageBytes: 16 << 20,
			MessageTimeout:  2 * time.Second,
			// 32 bodies of Envoy's default 1 MiB limit: enough to keep a core busy
			// sealing, and about 200 MiB of heap while they are sealed (each costs its
			// body, its ciphertext, the envelope JSON and the reply), whatever the
			// number of streams.
			MaxBufferedBodyBytes: 32 << 20,
		},
	}
}

// envOverride maps one QUANTASEAL_* variable onto the config.
type envOverride struct {
	name  string
	apply func(c *Config, v string) error
}

// integer parses a decimal integer override into dst (a bound is Validate's job).
func integer[T int | int64](dst *T) func(*Config, string) error {
	return func(_ *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		*dst = T(n)
		return nil
	}
}

func duration(dst *time.Duration) func(*Config, string) error {
	return func(_ *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*dst = d
		return nil
	}
}

// envOverrides is the one table of environment overrides.
func envOverrides(c *Config) []envOverride {
	str := func(dst *string) func(*Config, string) error {
		return func(_ *Config, v string) error { *dst = v; return nil }
	}
	return []envOverride{
		{"QUANTASEAL_DATA_DIR", str(&c.DataDir)},
		{"QUANTASEAL_HTTP_ADDR", str(&c.HTTPAddr)},
		{"QUANTASEAL_GRPC_ADDR", str(&c.GRPCAddr)},
		{"QUANTASEAL_ADMIN_TOKEN", func(c *Config, v string) error { c.AdminToken = secret.New(v); return nil }},
		{"QUANTASEAL_DATABASE_URL", func(c *Config, v string) error { c.DatabaseURL = secret.New(v); return nil }},
		{"QUANTASEAL_LOG_LEVEL", str(&c.LogLevel)},
		{"QUANTASEAL_KMS", str(&c.KMS.Provider)},
		{"QUANTASEAL_KMS_ENDPOINT", str(&c.KMS.Endpoint)},
		{"QUANTASEAL_KMS_REGION", str(&c.KMS.Region)},
		{"QUANTASEAL_KMS_KEY_ID", str(&c.KMS.KeyID)},
		{"QUANTASEAL_KMS_KEY_FILE", str(&c.KMS.KeyFile)},
		{"QUANTASEAL_KMS_CACHE_TTL", duration(&c.KMS.CacheTTL)},
		{"QUANTASEAL_OKTA_ALLOWED_DOMAINS", func(c *Config, v string) error {
			c.Okta.AllowedDomains = nil
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					c.Okta.AllowedDomains = append(c.Okta.AllowedDomains, d)
				}
			}
			return nil
		}},
		{"QUANTASEAL_OKTA_CA_FILE", str(&c.Okta.CAFile)},
		{"QUANTASEAL_OKTA_TOKEN_TIMEOUT", duration(&c.Okta.TokenTimeout)},
		{"QUANTASEAL_AUDIT_COMMIT_TIMEOUT", duration(&c.Audit.CommitTimeout)},
		{"QUANTASEAL_AUDIT_WRITER_ID", str(&c.Audit.WriterID)},
		{"QUANTASEAL_AUDIT_MAX_DELAY", duration(&c.Audit.MaxDelay)},
		{"QUANTASEAL_AUDIT_MAX_IN_FLIGHT", integer(&c.Audit.MaxInFlight)},
		{"QUANTASEAL_AUDIT_HASH_RESPONSES", func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			c.Audit.HashResponses = b
			return err
		}},
		{"QUANTASEAL_DRAIN_DELAY", duration(&c.Server.DrainDelay)},
		{"QUANTASEAL_MESSAGE_TIMEOUT", duration(&c.Server.MessageTimeout)},
		{"QUANTASEAL_MAX_BUFFERED_BODY_BYTES", integer(&c.Server.MaxBufferedBodyBytes)},
		{"QUANTASEAL_DEBUG_ADDR", str(&c.Server.DebugAddr)},
	}
}

// fileConfig is the YAML shape; it differs from Config only in holding secrets as strings.
type fileConfig struct {
	Config      `yaml:",inline"`
	AdminToken  string `yaml:"admin_token"`
	DatabaseURL string `yaml:"database_url"`
}

// loadConfig reads the optional YAML file, then applies the environment. Unknown YAML keys
// and unknown QUANTASEAL_* variables are errors: a misspelt setting must not silently
// fall back to a default.
func loadConfig(path string, environ []string) (Config, error) {
	fc := fileConfig{Config: defaultConfig()}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c := fc.Config
	if fc.AdminToken != "" {
		c.AdminToken = secret.New(fc.AdminToken)
	}
	if fc.DatabaseURL != "" {
		c.DatabaseURL = secret.New(fc.DatabaseURL)
	}
	table := envOverrides(&c)
	known := map[string]envOverride{}
	for _, o := range table {
		known[o.name] = o
	}
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "QUANTASEAL_") || strings.HasPrefix(name, "QUANTASEAL_TEST_") {
			continue
		}
		o, ok := known[name]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown environment variable %s (known: %s)", name, knownEnvNames(table)))
			continue
		}
		if err := o.apply(&c, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func knownEnvNames(table []envOverride) string {
	var names []string
	for _, o := range table {
		names = append(names, o.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Validate returns every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data_dir must be set")
	}
	for name, addr := range map[string]string{"http_addr": c.HTTPAddr, "grpc_addr": c.GRPCAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		}
	}
	switch c.KMS.Provider {
	case "local":
	case "aws":
		if c.KMS.Region == "" {
			bad("kms.region is required when kms.provider is aws")
		}
	default:
		bad("kms.provider %q: must be local or aws", c.KMS.Provider)
	}
	if c.KMS.CacheTTL < 0 {
		bad("kms.cache_ttl must not be negative")
	}
	if u := c.DatabaseURL.Reveal(); u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "postgres" && p.Scheme != "postgresql") {
			bad("database_url must be a postgres:// URL")
		}
	}
	for _, d := range c.Okta.AllowedDomains {
		u, err := url.Parse(d)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("okta.allowed_domains entry %q must be an origin such as https://login.example.com", d)
		}
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level %q: must be debug, info, warn or error", c.LogLevel)
	}
	if c.Audit.MaxDelay < 0 || c.Audit.MaxDelay > time.Second {
		bad("audit.max_delay must be between 0 and 1s")
	}
	if c.Audit.MaxInFlight < 0 || c.Audit.MaxInFlight > 8 {
		bad("audit.max_in_flight must be between 0 (automatic) and 8")
	}
	if c.Audit.CommitTimeout <= 0 || c.Okta.TokenTimeout <= 0 || c.Server.MessageTimeout <= 0 {
		bad("audit.commit_timeout, okta.token_timeout and server.message_timeout must be positive")
	}
	if c.Server.MaxMessageBytes < 1<<20 {
		bad("server.max_message_bytes must be at least 1 MiB (Envoy's default buffer limit)")
	}
	if c.Server.MaxBufferedBodyBytes < 1<<20 {
		bad("server.max_buffered_body_bytes must be at least 1 MiB (one body at Envoy's default buffer limit)")
	}
	if a := c.Server.DebugAddr; a != "" && !isLoopbackAddr(a) {
		bad("server.debug_addr %q must be a loopback host:port such as 127.0.0.1:6060 (profiles are not for the network)", a)
	}
	return errors.Join(errs...)
}

// isLoopbackAddr reports whether addr is host:port with a loopback IP or "localhost".
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogValue logs the effective configuration with secrets redacted.
func (c Config) LogValue() slog.Value {
	store := "embedded"
	if !c.DatabaseURL.IsZero() {
		store = "postgres"
	}
	return slog.GroupValue(
		slog.String("data_dir", c.DataDir),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("store", store),
		slog.Any("database_url", c.DatabaseURL),
		slog.Bool("admin_token_set", !c.AdminToken.IsZero()),
		slog.String("kms_provider", c.KMS.Provider),
		slog.String("kms_endpoint", c.KMS.Endpoint),
		slog.Duration("kms_cache_ttl", c.KMS.CacheTTL),
		slog.Any("okta_allowed_domains", c.Okta.AllowedDomains),
		slog.String("okta_ca_file", c.Okta.CAFile),
		slog.String("log_level", c.LogLevel),
		slog.String("debug_addr", c.Server.DebugAddr),
	)
}
