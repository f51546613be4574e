package main

import (
	"errors"
	"io/fs"
	"testing"
)

func TestPlanGC(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	const v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	for _, tc := range []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  gcSettings
	}{
		{"no cgroup", nil, nil, gcSettings{GCPercent: 400, MemoryLimit: 512 << 20}},
		{"v2 unlimited", nil, map[string]string{v2: "max\n"}, gcSettings{GCPercent: 400, MemoryLimit: 512 << 20}},
		{"v2 512 MiB", nil, map[string]string{v2: "536870912\n"},
			gcSettings{GCPercent: 400, MemoryLimit: 429496729, CgroupLimit: 536870912}},
		{"v2 8 GiB keeps 512 MiB", nil, map[string]string{v2: "8589934592"},
			gcSettings{GCPercent: 400, MemoryLimit: 512 << 20, CgroupLimit: 8589934592}},
		{"v1 256 MiB", nil, map[string]string{v1: "268435456"},
			gcSettings{GCPercent: 400, MemoryLimit: 214748364, CgroupLimit: 268435456}},
		{"v1 unlimited", nil, map[string]string{v1: "9223372036854771712"}, gcSettings{GCPercent: 400, MemoryLimit: 512 << 20}},
		{"garbage", nil, map[string]string{v2: "lots"}, gcSettings{GCPercent: 400, MemoryLimit: 512 << 20}},
		{"GOGC set", map[string]string{"GOGC": "100"}, nil, gcSettings{GCPercent: -1, MemoryLimit: 512 << 20}},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "2GiB"}, map[string]string{v2: "536870912"},
			gcSettings{GCPercent: 400, MemoryLimit: -1}},
		{"both set", map[string]string{"GOGC": "off", "GOMEMLIMIT": "2GiB"}, nil, gcSettings{GCPercent: -1, MemoryLimit: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planGC(env(tc.env), files(tc.files)); got != tc.want {
				t.Errorf("planGC = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCgroupLimitUnreadable(t *testing.T) {
	readErr := func(string) ([]byte, error) { return nil, errors.New("permission denied") }
	if got := cgroupMemoryLimit(readErr); got != 0 {
		t.Errorf("cgroupMemoryLimit with unreadable files = %d, want 0", got)
	}
}
