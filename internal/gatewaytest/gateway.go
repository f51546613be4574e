package gatewaytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options configure a `quantaseal serve` process. Everything reaches it as QUANTASEAL_*
// environment variables (cmd/quantaseal/config.go); nothing of the test's own
// environment is inherited except PATH.
type Options struct {
	// DataDir is QUANTASEAL_DATA_DIR. "": a fresh t.TempDir().
	DataDir string
	// AdminToken is QUANTASEAL_ADMIN_TOKEN. "": a random token.
	AdminToken string
	// DatabaseURL is QUANTASEAL_DATABASE_URL. "": the embedded store.
	DatabaseURL string
	// AllowedDomains is QUANTASEAL_OKTA_ALLOWED_DOMAINS (the Okta double's origin).
	AllowedDomains []string
	// LogLevel is QUANTASEAL_LOG_LEVEL. "": debug, so leak scans see the most output.
	LogLevel string
	// Env adds variables ("NAME=value"): QUANTASEAL_KMS_*, AWS_*, timeouts.
	Env []string
	// ReadyTimeout bounds the wait for /readyz. 0: 60s.
	ReadyTimeout time.Duration
}

// Gateway is a `quantaseal serve` process, possibly restarted several times on the
// same ports and data directory.
type Gateway struct {
	opts       Options
	AdminToken string
	DataDir    string
	HTTPURL    string // http://127.0.0.1:PORT
	GRPCAddr   string // 127.0.0.1:PORT
	httpAddr   string
	logs       *LogBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	conn    *grpc.ClientConn
}

// Start starts the gateway on free loopback ports and waits until /readyz answers 200.
// At the end of the test a still-running gateway is stopped with SIGTERM and must exit
// with status 0 and without a reported data race.
func Start(t testing.TB, o Options) *Gateway {
	t.Helper()
	bin := Binary(t)
	if o.DataDir == "" {
		o.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if o.AdminToken == "" {
		o.AdminToken = "qs_admin_test_" + RandomHex(t, 16)
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	g := &Gateway{opts: o, AdminToken: o.AdminToken, DataDir: o.DataDir, logs: &LogBuffer{}}
	for attempt := 0; ; attempt++ {
		g.httpAddr, g.GRPCAddr = FreeAddr(t), FreeAddr(t)
		g.HTTPURL = "http://" + g.httpAddr
		err := g.start(t, bin)
		if err == nil {
			break
		}
		if attempt < 2 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("gateway did not become ready: %v\ngateway output:\n%s", err, g.Logs())
	}
	t.Cleanup(func() {
		g.mu.Lock()
		if g.conn != nil {
			g.conn.Close()
		}
		g.mu.Unlock()
		if g.Running() {
			g.Stop(t)
		}
	})
	return g
}

// start runs the process once on g's addresses and waits for readiness.
func (g *Gateway) start(t testing.TB, bin string) error {
	mark := len(g.logs.Bytes())
	cmd := exec.Command(bin, "serve")
	cmd.Env = g.Environ()
	cmd.Stdout, cmd.Stderr = g.logs, g.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	done := make(chan struct{})
	g.mu.Lock()
	g.cmd, g.done, g.waitErr = cmd, done, nil
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.waitErr = err
		g.mu.Unlock()
		close(done)
	}()
	if err := g.waitReady(t, done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w (output since start: %s)", err, g.logs.Bytes()[mark:])
	}
	return nil
}

// Environ is the complete environment of the process, also usable for [RunCLI].
func (g *Gateway) Environ() []string {
	o := g.opts
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + o.DataDir,
		"TMPDIR=" + os.TempDir(),
		"QUANTASEAL_DATA_DIR=" + o.DataDir,
		"QUANTASEAL_HTTP_ADDR=" + g.httpAddr,
		"QUANTASEAL_GRPC_ADDR=" + g.GRPCAddr,
		"QUANTASEAL_ADMIN_TOKEN=" + o.AdminToken,
		"QUANTASEAL_LOG_LEVEL=" + o.LogLevel,
		"QUANTASEAL_DRAIN_DELAY=50ms",
	}
	if len(o.AllowedDomains) > 0 {
		env = append(env, "QUANTASEAL_OKTA_ALLOWED_DOMAINS="+strings.Join(o.AllowedDomains, ","))
	}
	if o.DatabaseURL != "" {
		env = append(env, "QUANTASEAL_DATABASE_URL="+o.DatabaseURL)
	}
	return append(env, o.Env...)
}

func (g *Gateway) waitReady(t testing.TB, done chan struct{}) error {
	deadline := time.Now().Add(g.opts.ReadyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-done:
			g.mu.Lock()
			err := g.waitErr
			g.mu.Unlock()
			return fmt.Errorf("gateway exited before it was ready: %v", err)
		default:
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, g.HTTPURL+"/readyz", nil)
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
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running reports whether the process is alive.
func (g *Gateway) Running() bool {
	g.mu.Lock()
	done := g.done
	g.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID returns the current process id (0 when never started).
func (g *Gateway) PID() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil || g.cmd.Process == nil {
		return 0
	}
	return g.cmd.Process.Pid
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would, and waits
// for it to be gone.
func (g *Gateway) Kill(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	if cmd == nil {
		t.Fatal("gatewaytest: Kill before Start")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop sends SIGTERM and checks the graceful shutdown: exit status 0 within 45 s and no
// data race reported. It fails the test otherwise.
func (g *Gateway) Stop(t testing.TB) {
	t.Helper()
	g.mu.Lock()
	cmd, done := g.cmd, g.done
	g.mu.Unlock()
	select {
	case <-done:
		t.Errorf("gateway exited before it was stopped (%v)\ngateway output:\n%s", g.exitErr(), g.Logs())
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-done:
	case <-time.After(45 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("gateway did not exit within 45s of SIGTERM\ngateway output:\n%s", g.Logs())
		return
	}
	if err := g.exitErr(); err != nil {
		t.Errorf("gateway exited with %v after SIGTERM, want status 0\ngateway output:\n%s", err, g.Logs())
	}
	if bytes.Contains(g.Logs(), []byte("WARNING: DATA RACE")) {
		t.Errorf("the gateway reported a data race:\n%s", g.Logs())
	}
}

func (g *Gateway) exitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waitErr
}

// Restart starts the process again on the same ports, data directory and environment
// (after Kill or Stop) and waits for readiness.
func (g *Gateway) Restart(t testing.TB) {
	t.Helper()
	if g.Running() {
		t.Fatal("gatewaytest: Restart while the gateway is running")
	}
	var err error
	for range 20 {
		if err = g.start(t, Binary(t)); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway restart: %v\ngateway output:\n%s", err, g.Logs())
}

// Logs returns everything the process wrote to stdout and stderr, across restarts.
func (g *Gateway) Logs() []byte { return g.logs.Bytes() }

// LogLines returns the JSON log lines (other lines, such as race reports, are skipped).
func (g *Gateway) LogLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(g.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Conn returns a gRPC client connection to the ext_proc server, closed at the end of
// the test. It reconnects by itself after a restart.
func (g *Gateway) Conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conn == nil {
		c, err := grpc.NewClient(g.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc.NewClient: %v", err)
		}
		g.conn = c
	}
	return g.conn
}

// API returns an HTTP API client for the gateway.
func (g *Gateway) API() *API { return NewAPI(g.HTTPURL) }

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// RandomHex returns n random bytes as hex.
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RunCLI runs a quantaseal subcommand with env and returns its exit status and
// combined output (2 minutes at most).
func RunCLI(t testing.TB, env []string, args ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out
	case errors.As(err, &ee):
		return ee.ExitCode(), out
	}
	t.Fatalf("quantaseal %v: %v", args, err)
	return -1, nil
}

// LogBuffer is a goroutine-safe bytes.Buffer for subprocess output; several runs (restarts)
// may share one.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *LogBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}
