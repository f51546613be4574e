package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Garbage-collector defaults for `serve`.
//
// The gateway's live heap is small (tens of MiB: caches, connection pools, the streams
// in flight) while every call allocates tens of KiB of short-lived protobuf, header and
// audit data, so with Go's default GOGC=100 the collector runs every few MiB of
// allocation and took about a fifth of the gateway's CPU under load (profiled with
// `make bench`, issue 8). GOGC=400 lets the heap grow to five times the live data
// between collections, which removed most of that cost (cmd/quantaseal
// BenchmarkGatewayTransparentCall: about 14% less CPU per call).
//
// A larger GOGC alone would let a large live heap — envelope calls sealing 1 MiB
// responses, bounded by extproc's body budget to a few hundred MiB — grow five-fold too,
// so a soft memory limit caps it (measured with the bench's envelope_memory scenario:
// peak RSS followed the limit, 1 GiB, rather than the live heap): the collector
// works harder as the heap approaches the limit instead of growing past it. The limit is
// 512 MiB, or 80% of the container's memory limit (cgroup v2 memory.max, or v1
// memory.limit_in_bytes) when that is smaller, leaving the rest for non-heap memory
// (goroutine stacks, SQLite's page cache, the runtime itself).
//
// Go's own GOGC and GOMEMLIMIT environment variables still win: when either is set,
// that setting is left to the runtime.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 512 << 20
	cgroupLimitShare   = 0.8
)

// cgroupLimitFiles are read in order; the first that holds a number is the container's
// memory limit.
var cgroupLimitFiles = []string{
	"/sys/fs/cgroup/memory.max",                   // cgroup v2
	"/sys/fs/cgroup/memory/memory.limit_in_bytes", // cgroup v1
}

// gcSettings is what tuneGC decided, for the startup log line.
type gcSettings struct {
	GCPercent   int   // -1: left to GOGC
	MemoryLimit int64 // -1: left to GOMEMLIMIT
	CgroupLimit int64 // 0: none found
}

func (s gcSettings) LogValue() slog.Value {
	attrs := []slog.Attr{}
	if s.GCPercent >= 0 {
		attrs = append(attrs, slog.Int("gc_percent", s.GCPercent))
	} else {
		attrs = append(attrs, slog.String("gc_percent", "from GOGC"))
	}
	if s.MemoryLimit >= 0 {
		attrs = append(attrs, slog.Int64("memory_limit_bytes", s.MemoryLimit))
	} else {
		attrs = append(attrs, slog.String("memory_limit_bytes", "from GOMEMLIMIT"))
	}
	if s.CgroupLimit > 0 {
		attrs = append(attrs, slog.Int64("cgroup_memory_limit_bytes", s.CgroupLimit))
	}
	return slog.GroupValue(attrs...)
}

// planGC decides the settings from the environment and the cgroup files without
// applying them.
func planGC(getenv func(string) string, readFile func(string) ([]byte, error)) gcSettings {
	s := gcSettings{GCPercent: defaultGCPercent, MemoryLimit: defaultMemoryLimit}
	if getenv("GOGC") != "" {
		s.GCPercent = -1
	}
	if getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit = -1
		return s
	}
	s.CgroupLimit = cgroupMemoryLimit(readFile)
	if s.CgroupLimit > 0 {
		s.MemoryLimit = min(s.MemoryLimit, int64(float64(s.CgroupLimit)*cgroupLimitShare))
	}
	return s
}

// cgroupMemoryLimit returns the container's memory limit in bytes, or 0 when there is
// none ("max" in v2; v1 reports "no limit" as a number near MaxInt64).
func cgroupMemoryLimit(readFile func(string) ([]byte, error)) int64 {
	for _, name := range cgroupLimitFiles {
		b, err := readFile(name)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0
		}
		return n
	}
	return 0
}

// tuneGC applies planGC's settings to the runtime and returns them.
func tuneGC(getenv func(string) string) gcSettings {
	s := planGC(getenv, os.ReadFile)
	if s.GCPercent >= 0 {
		debug.SetGCPercent(s.GCPercent)
	}
	if s.MemoryLimit >= 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	return s
}
