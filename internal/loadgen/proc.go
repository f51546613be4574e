package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is the user+system CPU time this process has used (getrusage RUSAGE_SELF).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times. It is 100 on every Linux
// architecture Go supports (the kernel fixes it for the ABI; sysconf needs cgo).
const clockTick = 10 * time.Millisecond

// ProcessCPU is the user+system CPU time of process pid, all threads, from fields 14
// and 15 of /proc/PID/stat (proc(5)); its resolution is 10 ms.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: process CPU: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime from a /proc/PID/stat line.
func parseStatCPU(b []byte) (time.Duration, error) {
	cpu, _, err := parseStat(b)
	return cpu, err
}

// parseStat reads utime+stime and the parent's pid from a /proc/PID/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are counted after
// its last ')'.
func parseStat(b []byte) (cpu time.Duration, ppid int, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("loadgen: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[1] field 4 (ppid); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("loadgen: malformed /proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("loadgen: malformed /proc stat times %q %q", f[11], f[12])
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("loadgen: malformed /proc stat ppid %q", f[1])
	}
	return time.Duration(ut+st) * clockTick, ppid, nil
}

// ProcessFamilyCPU is the user+system CPU time of process root and of its live
// children: a PostgreSQL server's postmaster and the backends and background workers it
// forks. A child that exits takes its CPU time with it (it is not counted once gone),
// so deltas are exact only for children that live through the window, as a
// connection pool's backends and the background workers do.
func ProcessFamilyCPU(root int) (time.Duration, error) {
	total, err := ProcessCPU(root)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("loadgen: process family CPU: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited since ReadDir
		}
		if cpu, ppid, err := parseStat(b); err == nil && ppid == root {
			total += cpu
		}
	}
	return total, nil
}

// PeakRSS is the peak resident set size of process pid in bytes (VmHWM of
// /proc/PID/status).
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("loadgen: peak RSS: %w", err)
	}
	return parseVmHWM(b)
}

func parseVmHWM(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("loadgen: malformed VmHWM line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("loadgen: malformed VmHWM line %q", line)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("loadgen: no VmHWM in /proc status")
}

// ResetPeakRSS resets the peak RSS of process pid to its current RSS (writing "5" to
// /proc/PID/clear_refs, Linux ≥ 4.0), so that the next [PeakRSS] covers one scenario.
func ResetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("loadgen: reset peak RSS: %w", err)
	}
	return nil
}
