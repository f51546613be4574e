package id

import (
	"sort"
	"testing"
	"time"
)

func TestNewIsValidAndMonotonic(t *testing.T) {
	var ids []string
	for range 1000 {
		ids = append(ids, New("aud"))
	}
	for _, s := range ids {
		if !Valid("aud", s) {
			t.Fatalf("%q is not valid", s)
		}
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in sequence are not sorted")
	}
	seen := map[string]bool{}
	for _, s := range ids {
		if seen[s] {
			t.Fatalf("duplicate %q", s)
		}
		seen[s] = true
	}
}

func TestULIDTimestamp(t *testing.T) {
	// The ULID spec's example: time 1469918176385 encodes as "01ARYZ6S41".
	ms := uint64(time.UnixMilli(1469918176385).UnixMilli())
	var raw [16]byte
	for i := range 6 {
		raw[i] = byte(ms >> (40 - 8*i))
	}
	got := encode(raw)[:10]
	if got != "01ARYZ6S41" {
		t.Fatalf("timestamp part = %s, want 01ARYZ6S41", got)
	}
}

func TestValid(t *testing.T) {
	good := New("ten")
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{good, true},
		{"int" + good[3:], false},
		{"ten_", false},
		{good + "0", false},
		{"ten_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", false}, // overflows 128 bits
		{"ten_01ARYZ6S41TSV4RRFFQ69G5FAU", false}, // U is not Crockford
		{"ten_01ARYZ6S41TSV4RRFFQ69G5FAV", true},
	} {
		if got := Valid("ten", tc.s); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
