package loadgen

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{"plain", "1234 (quantaseal) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 0 0", 3 * time.Second, false},
		{"name with spaces and parens", "77 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0", 30 * time.Millisecond, false},
		{"no parenthesis", "1234 quantaseal S 1", 0, true},
		{"too short", "1 (x) S 1 2 3", 0, true},
		{"not a number", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatCPU = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatPPID(t *testing.T) {
	cpu, ppid, err := parseStat([]byte("77 (post (gres)) S 4242 2 3 4 5 6 7 8 9 10 1 2 0 0"))
	if err != nil || ppid != 4242 || cpu != 30*time.Millisecond {
		t.Errorf("parseStat = %v, %d, %v; want 30ms, 4242", cpu, ppid, err)
	}
	if _, _, err := parseStat([]byte("77 (x) S p 2 3 4 5 6 7 8 9 10 1 2 0 0")); err == nil {
		t.Error("parseStat accepted a non-numeric ppid")
	}
}

// TestProcessFamilyCPU: a child's CPU time counts towards its parent's family.
func TestProcessFamilyCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	child := exec.Command("sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; sleep 30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	var childCPU time.Duration
	for deadline := time.Now().Add(20 * time.Second); childCPU < 100*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatalf("the child used only %v of CPU", childCPU)
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if childCPU, err = ProcessCPU(child.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	self, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Read last: CPU times only grow, so the family is at least the sum read before.
	family, err := ProcessFamilyCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if family < self+childCPU {
		t.Errorf("family CPU %v < self %v + child %v", family, self, childCPU)
	}
	if own, err := ProcessFamilyCPU(child.Process.Pid); err != nil || own < childCPU {
		t.Errorf("the childless child's family CPU = %v, %v; want at least its own %v", own, err, childCPU)
	}
	if _, err := ProcessFamilyCPU(-1); err == nil {
		t.Error("ProcessFamilyCPU(-1): nil error")
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{"present", "Name:\tq\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1000 kB\n", 2048 << 10, false},
		{"missing", "Name:\tq\nVmRSS:\t 1000 kB\n", 0, true},
		{"bad unit", "VmHWM:\t 10 MB\n", 0, true},
		{"bad number", "VmHWM:\t x kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseVmHWM = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestProcReaders reads this process's own /proc entries.
func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	if _, err := ProcessCPU(pid); err != nil {
		t.Errorf("ProcessCPU(self): %v", err)
	}
	if rss, err := PeakRSS(pid); err != nil || rss <= 0 {
		t.Errorf("PeakRSS(self) = %d, %v", rss, err)
	}
	if err := ResetPeakRSS(pid); err != nil {
		t.Logf("ResetPeakRSS(self): %v (kernel without clear_refs 5?)", err)
	}
	if SelfCPU() <= 0 {
		t.Error("SelfCPU() = 0")
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Error("ProcessCPU(-1): nil error")
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Error("PeakRSS(-1): nil error")
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarise(ds)
	want := Latency{Count: 1000, Mean: 500500 * time.Microsecond, P50: 500 * time.Millisecond,
		P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: time.Second}
	if got != want {
		t.Errorf("summarise = %+v, want %+v", got, want)
	}
	if got := summarise(nil); got != (Latency{}) {
		t.Errorf("summarise(nil) = %+v", got)
	}
	if got := summarise([]time.Duration{7}); got.P50 != 7 || got.P999 != 7 {
		t.Errorf("summarise(one) = %+v", got)
	}
}

// TestOktaBodies checks the sizes the benchmark relies on and that the bodies decode
// into the fields okta-api.md §1.1 and §1.7 name (version and postalCode as strings).
func TestOktaBodies(t *testing.T) {
	users, err := UsersPage("https://example.okta.com", 25)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(users); n < 28<<10 || n > 34<<10 {
		t.Errorf("25-user page is %d bytes, want about 30 KiB", n)
	}
	var us []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Profile struct {
			Login, Email string
		} `json:"profile"`
		Links struct {
			Self struct{ Href string } `json:"self"`
		} `json:"_links"`
	}
	if err := json.Unmarshal(users, &us); err != nil {
		t.Fatal(err)
	}
	if len(us) != 25 || len(us[0].ID) != 20 || us[0].Profile.Login == "" || !strings.HasPrefix(us[0].Links.Self.Href, "https://example.okta.com/api/v1/users/") {
		t.Errorf("users page: %d users, first %+v", len(us), us[0])
	}

	logs, err := SystemLogPage(200)
	if err != nil {
		t.Fatal(err)
	}
	var evs []struct {
		UUID, EventType, Version string
		Client                   struct {
			GeographicalContext struct{ PostalCode string }
		}
	}
	if err := json.Unmarshal(logs, &evs); err != nil {
		t.Fatalf("system log page does not decode with string version/postalCode: %v", err)
	}
	if len(evs) != 200 || evs[0].Version != "0" || evs[0].Client.GeographicalContext.PostalCode == "" {
		t.Errorf("system log: %d events, first %+v", len(evs), evs[0])
	}
	t.Logf("users page %d bytes, system log page %d bytes", len(users), len(logs))

	hs := OktaResponseHeaders("https://example.okta.com", "/api/v1/users?limit=25", len(users))
	links := 0
	for _, h := range hs {
		if h.Key == "link" {
			links++
		}
		if h.Key != strings.ToLower(h.Key) {
			t.Errorf("header %q not lower-case", h.Key)
		}
	}
	if links != 2 {
		t.Errorf("%d link headers, want self and next as separate headers", links)
	}
}

func TestSystemLogPageOfSize(t *testing.T) {
	for _, size := range []int{1 << 20, 64 << 10, 5000} {
		page, events, err := SystemLogPageOfSize(size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var evs []struct{ UUID string }
		if err := json.Unmarshal(page, &evs); err != nil {
			t.Fatalf("size %d: not JSON: %v", size, err)
		}
		if len(page) != size || len(evs) != events || events == 0 || evs[events-1].UUID == "" {
			t.Errorf("size %d: %d bytes, %d events decoded, %d reported", size, len(page), len(evs), events)
		}
		if events < 1000 {
			if bigger, err := SystemLogPage(events + 1); err != nil || len(bigger) <= size {
				t.Errorf("size %d: %d events reported, but %d fit (%d bytes, %v)", size, events, events+1, len(bigger), err)
			}
		}
		if page[len(page)-1] != ']' {
			t.Errorf("size %d: page ends in %q", size, page[len(page)-1])
		}
	}
	if _, _, err := SystemLogPageOfSize(100); err == nil {
		t.Error("a 100-byte page: no error, but no event fits")
	}
}

func TestCeiling(t *testing.T) {
	body, err := UsersPage("https://example.okta.com", 25)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Ceiling(t.Context(), CeilingConfig{Body: body, Concurrency: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Rate{"seal": res.Seal, "seal+json": res.SealJSON, "primitives": res.Primitives} {
		if r.Ops == 0 || r.OpsPerSec <= 0 || r.Elapsed < 90*time.Millisecond || r.CPUPerOp <= 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if res.BodyBytes != len(body) || res.SealJSON.BytesPerOp <= len(body) {
		t.Errorf("body %d bytes, envelope JSON %d bytes", res.BodyBytes, res.SealJSON.BytesPerOp)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Ceiling(ctx, CeilingConfig{Body: body, Duration: time.Second}); err == nil {
		t.Error("Ceiling with a cancelled context: nil error")
	}
}

func TestRateAdd(t *testing.T) {
	var r Rate
	r.add(Rate{Ops: 10, Elapsed: time.Second, CPUPerOp: 2 * time.Millisecond, BytesPerOp: 5})
	r.add(Rate{Ops: 30, Elapsed: time.Second, CPUPerOp: 4 * time.Millisecond})
	want := Rate{Ops: 40, Elapsed: 2 * time.Second, OpsPerSec: 20, CPUPerOp: 3500 * time.Microsecond, BytesPerOp: 5}
	if r != want {
		t.Errorf("add = %+v, want %+v", r, want)
	}
}
