package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/loadgen"
)

// child is a server process under test.
type child struct {
	name     string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	logPath  string
	grpcAddr string
	httpAddr string
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits (then kills after timeout).
func (c *child) stop(timeout time.Duration) error {
	select {
	case <-c.exited:
		return c.waitErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within %s; killed", c.name, timeout)
	}
	return c.waitErr
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...) // bin and args are already wrapped by pinned
	cmd.Env = env
	cmd.Stderr = logf
	c := &child{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	return c, nil
}

func (c *child) start(stdout io.Writer) error {
	if stdout != nil {
		c.cmd.Stdout = stdout
	}
	if err := c.cmd.Start(); err != nil {
		if f, ok := c.cmd.Stderr.(*os.File); ok {
			f.Close()
		}
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		if f, ok := c.cmd.Stderr.(*os.File); ok {
			f.Close()
		}
		close(c.exited)
	}()
	return nil
}

// startNoop runs this binary's noop-server subcommand and reads its address.
func startNoop(dir, cpus string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bin, args := pinned(cpus, self, []string{"noop-server", "--addr", "127.0.0.1:0"})
	c, err := startChild("noop server", filepath.Join(dir, "noop.log"), os.Environ(), bin, args...)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	if err := c.start(pw); err != nil {
		return nil, err
	}
	go func() { <-c.exited; pw.Close() }() // ends the scanner below
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addrc <- a
			}
		}
	}()
	select {
	case a := <-addrc:
		c.grpcAddr = a
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("noop server exited: %v\n%s", c.waitErr, c.logTail())
	case <-time.After(15 * time.Second):
		_ = c.stop(time.Second)
		return nil, errors.New("noop server did not report its address")
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gatewayEnv is the environment of a gateway child: this process's, minus every
// QUANTASEAL_* variable (serve rejects unknown ones), plus the given settings.
func gatewayEnv(settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QUANTASEAL_") {
			env = append(env, kv)
		}
	}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

// gatewayRun is a started, seeded gateway.
type gatewayRun struct {
	*child
	admin   string
	fixture fixture
	keys    envelope.OpenKeys
	dbDrop  func()
	// dbCPU reads the CPU time of the PostgreSQL server when it runs on this machine
	// (nil: embedded store, or a server whose processes cannot be read).
	dbCPU func() (time.Duration, error)
	// profileDir, when set, receives a CPU profile of each measured scenario, taken
	// through debugAddr (QUANTASEAL_DEBUG_ADDR).
	profileDir, debugAddr string
}

// startGateway starts `quantaseal serve` for store ("embedded" or "postgres") with a
// fresh data directory (and a fresh database), waits for /readyz and seeds one tenant,
// credential and integration through the HTTP API.
func startGateway(ctx context.Context, o *options, store, dir string, usersPage func(origin string) ([]byte, error)) (*gatewayRun, error) {
	grpcPort, err1 := freePort()
	httpPort, err2 := freePort()
	oktaPort, err3 := freePort()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	origin := fmt.Sprintf("http://127.0.0.1:%d", oktaPort)
	g := &gatewayRun{admin: randomHex(16)}
	dataDir := filepath.Join(dir, "data-"+store)
	settings := map[string]string{
		"QUANTASEAL_DATA_DIR":             dataDir,
		"QUANTASEAL_GRPC_ADDR":            fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"QUANTASEAL_HTTP_ADDR":            fmt.Sprintf("127.0.0.1:%d", httpPort),
		"QUANTASEAL_ADMIN_TOKEN":          g.admin,
		"QUANTASEAL_OKTA_ALLOWED_DOMAINS": origin,
		"QUANTASEAL_DRAIN_DELAY":          "0s",
		"QUANTASEAL_LOG_LEVEL":            o.gatewayLogLevel,
	}
	if o.gatewayProfile != "" {
		if err := os.MkdirAll(o.gatewayProfile, 0o755); err != nil {
			return nil, fmt.Errorf("--gateway-profile: %w", err)
		}
		debugPort, err := freePort()
		if err != nil {
			return nil, err
		}
		g.profileDir, g.debugAddr = o.gatewayProfile, fmt.Sprintf("127.0.0.1:%d", debugPort)
		settings["QUANTASEAL_DEBUG_ADDR"] = g.debugAddr
	}
	for k, v := range o.gatewayEnv {
		settings[k] = v
	}
	if store == "postgres" {
		u, drop, err := freshDatabase(ctx, o.databaseURL)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		g.dbDrop = drop
		settings["QUANTASEAL_DATABASE_URL"] = u
		if g.dbCPU, err = postgresCPU(ctx, o.databaseURL); err != nil {
			fmt.Fprintf(os.Stderr, "quantaseal-bench: %v (the db CPU column shows -)\n", err)
		}
	}
	bin, args := pinned(o.serverCPUs, o.gateway, []string{"serve"})
	c, err := startChild("gateway ("+store+")", filepath.Join(dir, "gateway-"+store+".log"), gatewayEnv(settings), bin, args...)
	if err != nil {
		g.close()
		return nil, err
	}
	g.child = c
	c.grpcAddr, c.httpAddr = settings["QUANTASEAL_GRPC_ADDR"], settings["QUANTASEAL_HTTP_ADDR"]
	if err := c.start(nil); err != nil {
		g.child = nil
		g.close()
		return nil, err
	}
	if err := g.waitReady(ctx, 60*time.Second); err != nil {
		g.close()
		return nil, err
	}
	page, err := usersPage(origin)
	if err != nil {
		g.close()
		return nil, err
	}
	if err := g.seed(ctx, origin, page); err != nil {
		g.close()
		return nil, fmt.Errorf("seed %s: %w\n%s", c.name, err, c.logTail())
	}
	return g, nil
}

func (g *gatewayRun) close() {
	if g.child != nil {
		if err := g.stop(30 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "quantaseal-bench: %s: %v\n", g.name, err)
		}
	}
	if g.dbDrop != nil {
		g.dbDrop()
	}
}

func (g *gatewayRun) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+g.httpAddr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", g.name, g.waitErr, g.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s\n%s", g.name, timeout, g.logTail())
		}
	}
}

// api calls the gateway's HTTP API and decodes a 2xx JSON answer into out.
func (g *gatewayRun) api(ctx context.Context, method, path string, auth http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+g.httpAddr+path, body)
	if err != nil {
		return err
	}
	for k, v := range auth {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// seed creates the tenant (with a response key this process keeps, so it can open the
// envelopes), an api_key credential and an okta integration (ARCHITECTURE.md).
func (g *gatewayRun) seed(ctx context.Context, origin string, page []byte) error {
	rk, err := envelope.GenerateResponseKey(nil)
	if err != nil {
		return err
	}
	var tenant struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
		HMACKey  string `json:"hmac_key"`
	}
	admin := http.Header{"Authorization": {"Bearer " + g.admin}}
	if err := g.api(ctx, "POST", "/api/v2/tenants", admin, map[string]any{
		"name": "bench", "response_kem_public_key": base64.StdEncoding.EncodeToString(rk.Public().Bytes()),
	}, &tenant); err != nil {
		return err
	}
	key := http.Header{"X-Api-Key": {tenant.APIKey}}
	var cred struct {
		CredentialID string `json:"credential_id"`
	}
	if err := g.api(ctx, "POST", "/api/v2/vault/seal", key, map[string]any{
		"credential_type": "api_key", "name": "bench-okta", "secret": map[string]any{"token": "00bench" + randomHex(19)},
	}, &cred); err != nil {
		return err
	}
	var integ struct {
		IntegrationID string `json:"integration_id"`
	}
	if err := g.api(ctx, "POST", "/api/v2/integrations", key, map[string]any{
		"system_type": "okta", "name": "bench", "okta_domain": origin, "credential_id": cred.CredentialID,
		"allowed_operations": []string{"list_users", "get_user", "list_groups", "get_system_log"},
		"envelope":           "on_request",
	}, &integ); err != nil {
		return err
	}
	if tenant.APIKey == "" || integ.IntegrationID == "" {
		return errors.New("the API answered without api_key or integration_id")
	}
	hmacRaw, err := base64.StdEncoding.DecodeString(tenant.HMACKey)
	if err != nil {
		return fmt.Errorf("hmac_key: %w", err)
	}
	hk, err := envelope.NewHMACKey(hmacRaw)
	if err != nil {
		return fmt.Errorf("hmac_key: %w", err)
	}
	var signing struct {
		Keys []struct {
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	if err := g.api(ctx, "GET", "/api/v2/signing-keys", nil, nil, &signing); err != nil {
		return err
	}
	g.keys = envelope.OpenKeys{TenantID: tenant.TenantID, Response: rk, HMACKey: hk, Verifying: map[string]*envelope.VerifyingKey{}}
	for _, k := range signing.Keys {
		raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err != nil {
			return fmt.Errorf("signing key: %w", err)
		}
		vk, err := envelope.ParseVerifyingKey(raw)
		if err != nil {
			return fmt.Errorf("signing key: %w", err)
		}
		g.keys.Verifying[vk.KeyID()] = vk
	}
	g.fixture = fixture{origin: origin, apiKey: tenant.APIKey, integrationID: integ.IntegrationID, usersPage: page}
	return nil
}

// memstats reads the gateway's cumulative heap allocation counters from /metrics
// (the Go collector serve registers).
func (g *gatewayRun) memstats(ctx context.Context) (mallocs, bytes float64, err error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+g.httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_mallocs_total":
			mallocs, err = strconv.ParseFloat(v, 64)
			found++
		case "go_memstats_alloc_bytes_total":
			bytes, err = strconv.ParseFloat(v, 64)
			found++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if found != 2 {
		return 0, 0, errors.New("go_memstats counters not in /metrics")
	}
	return mallocs, bytes, sc.Err()
}

// freshDatabase creates an empty database on the server of adminURL and returns its
// URL and a function that drops it.
func freshDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	if adminURL == "" {
		return "", nil, errors.New("no database URL (set QUANTASEAL_TEST_DATABASE_URL or --database-url)")
	}
	name := "qs_bench_" + randomHex(6)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "quantaseal-bench: drop %s: %v\n", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "quantaseal-bench: drop %s: %v\n", name, err)
		}
	}
	return u.String(), drop, nil
}

// profile takes the gateway's CPU profile of the load cfg is about to run — from the
// end of its warm-up for its measured duration — into profileDir/name.pprof, and
// reports on the channel when it is written. Without --gateway-profile it does nothing.
func (g *gatewayRun) profile(ctx context.Context, cfg loadgen.Config, name string) <-chan error {
	done := make(chan error, 1)
	if g.profileDir == "" {
		done <- nil
		return done
	}
	go func() {
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
			done <- ctx.Err()
			return
		}
		seconds := max(1, int(cfg.Duration.Round(time.Second)/time.Second))
		u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.debugAddr, seconds)
		done <- fetchTo(ctx, u, filepath.Join(g.profileDir, name+".pprof"))
	}()
	return done
}

// fetchTo writes the body of a successful GET of u to path.
func fetchTo(ctx context.Context, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
