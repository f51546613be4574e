package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Pinning: on a machine with at least two CPUs the server under test (gateway or noop)
// runs on one half of the CPUs this process may use and the load generator — and the
// crypto ceiling — on the other, through taskset. The server then does not share its
// cores with the generator, and the ceiling is measured on as many cores as the server
// had, so throughput ratios compare like with like. --pin=false turns this off.

// pinEnv carries the server's CPU list into the re-executed, pinned driver.
const pinEnv = "QSBENCH_SERVER_CPUS"

// allowedCPUs parses the Cpus_allowed_list line of /proc/self/status ("0-3,6").
func allowedCPUs(status string) ([]int, error) {
	for line := range strings.SplitSeq(status, "\n") {
		v, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		var cpus []int
		for part := range strings.SplitSeq(strings.TrimSpace(v), ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("cpus_allowed_list %q: %w", v, err)
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil || b < a {
					return nil, fmt.Errorf("cpus_allowed_list %q: bad range %q", v, part)
				}
			}
			for c := a; c <= b; c++ {
				cpus = append(cpus, c)
			}
		}
		return cpus, nil
	}
	return nil, fmt.Errorf("no Cpus_allowed_list in /proc/self/status")
}

// splitCPUs gives the server the first half (rounded down) and the generator the rest.
func splitCPUs(cpus []int) (server, gen string) {
	n := len(cpus) / 2
	return cpuList(cpus[:n]), cpuList(cpus[n:])
}

func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// pinSelf re-executes this process under taskset on the generator's CPUs, passing the
// server's in pinEnv. It returns the server CPU list when already pinned, "" when
// pinning is not possible (fewer than two CPUs, no taskset), and does not return when
// it re-executes.
func pinSelf(args []string) (string, error) {
	if cpus := os.Getenv(pinEnv); cpus != "" {
		return cpus, nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "quantaseal-bench: taskset not found; not pinning (server and load generator share the CPUs)")
		return "", nil
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", nil
	}
	cpus, err := allowedCPUs(string(status))
	if err != nil {
		return "", err
	}
	if len(cpus) < 2 {
		fmt.Fprintln(os.Stderr, "quantaseal-bench: one CPU; not pinning")
		return "", nil
	}
	server, gen := splitCPUs(cpus)
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	argv := append([]string{"taskset", "-c", gen, self}, args...)
	env := append(os.Environ(), pinEnv+"="+server)
	return "", syscall.Exec(taskset, argv, env)
}

// pinned wraps a child's command line in taskset when cpus is set.
func pinned(cpus, bin string, args []string) (string, []string) {
	if cpus == "" {
		return bin, args
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return bin, args
	}
	return taskset, append([]string{"-c", cpus, bin}, args...)
}
