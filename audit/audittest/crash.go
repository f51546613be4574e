package audittest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quantaseal/gateway/audit"
)

// HelperEnv, when set in the environment of the test binary, makes its
// TestHelperProcess append until killed; its value is the store's location (a
// PostgreSQL URL or an SQLite file path).
const HelperEnv = "QUANTASEAL_AUDIT_CRASH_HELPER"

// ackPrefix starts each line the helper prints for an acknowledged event.
const ackPrefix = "ack "

// AppendUntilKilled is the body of a store's TestHelperProcess: it appends events from
// 16 goroutines for two tenants and prints "ack <id>" on w once each Append has
// returned (the event is durable), until the process is killed or a minute passes.
func AppendUntilKilled(store audit.Store, w io.Writer) error {
	s, err := audit.NewSeedSigner(secretSeed())
	if err != nil {
		return err
	}
	l, err := audit.NewLog(audit.Config{CheckpointEvery: 100}, store, s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				ev, err := l.Append(ctx, Sample(fmt.Sprintf("ten_%d", g%2), i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				_, err = io.WriteString(w, ackPrefix+ev.ID+"\n")
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// CrashTest re-executes the test binary as TestHelperProcess with HelperEnv=location,
// kills it with SIGKILL once it has acknowledged at least 300 events, then checks that
// every acknowledged event is in store, that a new Log continues each chain and that
// the whole store verifies.
func CrashTest(t *testing.T, location string, store audit.Store) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), HelperEnv+"="+location)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(60 * time.Second)
	killed := false
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("helper exited before it was killed after %d acks", len(acked))
			}
			if id, ok := strings.CutPrefix(line, ackPrefix); ok {
				acked[id] = true
			}
			if len(acked) >= 300 {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatalf("helper acknowledged only %d events in 60s", len(acked))
		}
	}
	// Lines already written before the kill are still in the pipe.
	for line := range lines {
		if id, ok := strings.CutPrefix(line, ackPrefix); ok {
			acked[id] = true
		}
	}
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die of SIGKILL: %v", werr)
	}
	t.Logf("helper killed after %d acknowledged events", len(acked))

	ctx := t.Context()
	evs, _ := Load(t, store)
	for _, e := range evs {
		delete(acked, e.ID)
	}
	if len(acked) != 0 {
		t.Fatalf("%d acknowledged events are missing after SIGKILL", len(acked))
	}
	heads := map[string]int64{}
	for _, e := range evs {
		heads[e.ChainID] = e.Seq
	}
	l := NewLog(t, store, audit.Config{CheckpointEvery: 100})
	for _, tenant := range []string{"ten_0", "ten_1"} {
		ev, err := l.Append(ctx, Sample(tenant, 0))
		if err != nil {
			t.Fatal(err)
		}
		if want := heads[ev.ChainID] + 1; ev.Seq != want {
			t.Errorf("after restart %s continues at seq %d, want %d", ev.ChainID, ev.Seq, want)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	VerifyStore(t, store, audit.VerifyOptions{MaxUnsigned: 100})
}
