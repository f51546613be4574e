package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quantaseal/gateway/internal/gatewaytest"
)

// gatewayOptions configure one `quantaseal serve` subprocess. Everything reaches the
// gateway as QUANTASEAL_* environment variables (cmd/quantaseal/config.go).
type gatewayOptions struct {
	DataDir        string // QUANTASEAL_DATA_DIR; required
	DatabaseURL    string // QUANTASEAL_DATABASE_URL; "" is the embedded store
	AdminToken     string // QUANTASEAL_ADMIN_TOKEN; required
	KMS            string // QUANTASEAL_KMS: "" (local) or "aws"
	KMSEndpoint    string
	KMSRegion      string
	KMSKeyID       string
	AllowedDomains []string // QUANTASEAL_OKTA_ALLOWED_DOMAINS
	// Env is added to the subprocess environment (AWS_* for the KMS client).
	Env []string
	// Logs collects stdout and stderr; several runs on one data directory share it.
	Logs *gatewaytest.LogBuffer
}

// gateway is a running `quantaseal serve`.
type gateway struct {
	opts     gatewayOptions
	HTTPURL  string // http://127.0.0.1:PORT
	GRPCAddr string // 127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// gatewayEnv is the complete environment of the subprocess: nothing of the test's own
// environment leaks in except PATH (an unknown QUANTASEAL_* variable is a startup
// error, and AWS_* or HOME could change the gateway's behaviour).
func gatewayEnv(t *testing.T, o gatewayOptions, httpAddr, grpcAddr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"TMPDIR=" + os.TempDir(),
		"QUANTASEAL_DATA_DIR=" + o.DataDir,
		"QUANTASEAL_HTTP_ADDR=" + httpAddr,
		"QUANTASEAL_GRPC_ADDR=" + grpcAddr,
		"QUANTASEAL_ADMIN_TOKEN=" + o.AdminToken,
		// debug, so that the leak scan also covers the most verbose output.
		"QUANTASEAL_LOG_LEVEL=debug",
		"QUANTASEAL_DRAIN_DELAY=100ms",
		"QUANTASEAL_OKTA_ALLOWED_DOMAINS=" + strings.Join(o.AllowedDomains, ","),
	}
	if o.DatabaseURL != "" {
		env = append(env, "QUANTASEAL_DATABASE_URL="+o.DatabaseURL)
	}
	if o.KMS != "" {
		env = append(env, "QUANTASEAL_KMS="+o.KMS)
	}
	for name, v := range map[string]string{
		"QUANTASEAL_KMS_ENDPOINT": o.KMSEndpoint,
		"QUANTASEAL_KMS_REGION":   o.KMSRegion,
		"QUANTASEAL_KMS_KEY_ID":   o.KMSKeyID,
	} {
		if v != "" {
			env = append(env, name+"="+v)
		}
	}
	return append(env, o.Env...)
}

// startGateway starts `quantaseal serve` on free loopback ports, waits until /readyz
// answers 200 and registers a cleanup that stops it with SIGTERM and checks that it
// exits 0.
func startGateway(t *testing.T, o gatewayOptions) *gateway {
	t.Helper()
	if o.Logs == nil {
		o.Logs = &gatewaytest.LogBuffer{}
	}
	var g *gateway
	// The ports are picked before the gateway binds them; retry once if one was taken.
	for attempt := 0; ; attempt++ {
		httpAddr, grpcAddr := gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
		g = &gateway{opts: o, HTTPURL: "http://" + httpAddr, GRPCAddr: grpcAddr, done: make(chan struct{})}
		g.cmd = exec.Command(gatewaytest.Binary(t), "serve")
		g.cmd.Env = gatewayEnv(t, o, httpAddr, grpcAddr)
		g.cmd.Stdout, g.cmd.Stderr = o.Logs, o.Logs
		if err := g.cmd.Start(); err != nil {
			t.Fatalf("start gateway: %v", err)
		}
		go func() { g.waitErr = g.cmd.Wait(); close(g.done) }()
		err := g.waitReady(t.Context(), 90*time.Second)
		if err == nil {
			break
		}
		g.kill()
		if attempt == 0 && bytes.Contains(o.Logs.Bytes(), []byte("address already in use")) {
			continue
		}
		t.Fatalf("gateway not ready: %v\ngateway output:\n%s", err, o.Logs.Bytes())
	}
	t.Cleanup(func() { g.Stop(t) })
	return g
}

func (g *gateway) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-g.done:
			return errors.New("gateway exited: " + errString(g.waitErr))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.HTTPURL+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for /readyz")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-g.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (g *gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
}

// Stop sends SIGTERM and checks the graceful shutdown: exit status 0 within the
// shutdown budget and no data race reported. It is idempotent.
func (g *gateway) Stop(t *testing.T) {
	t.Helper()
	g.stopOnce.Do(func() {
		select {
		case <-g.done:
			t.Errorf("gateway exited before it was stopped (%s)\ngateway output:\n%s", errString(g.waitErr), g.opts.Logs.Bytes())
			return
		default:
		}
		if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		select {
		case <-g.done:
		case <-time.After(45 * time.Second):
			g.kill()
			t.Errorf("gateway did not exit within 45s of SIGTERM\ngateway output:\n%s", g.opts.Logs.Bytes())
			return
		}
		if g.waitErr != nil {
			t.Errorf("gateway exited with %v after SIGTERM, want status 0\ngateway output:\n%s", g.waitErr, g.opts.Logs.Bytes())
		}
		if bytes.Contains(g.opts.Logs.Bytes(), []byte("WARNING: DATA RACE")) {
			t.Errorf("the gateway reported a data race:\n%s", g.opts.Logs.Bytes())
		}
	})
}

// runCLI runs a quantaseal subcommand (audit verify/export) and returns its exit
// status and combined output.
func runCLI(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		t.Fatalf("quantaseal %v: %v", args, err)
		return -1, ""
	}
}
