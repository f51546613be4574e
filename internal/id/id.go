// Package id makes the prefixed, sortable identifiers the gateway hands out:
// "aud_" for audit events, "ten_" for tenants, "int_" for integrations, "vlt_" for
// vault entries, "key_" for API-key public ids.
//
// The suffix is a ULID (https://github.com/ulid/spec): 48 bits of milliseconds and 80
// random bits in Crockford base32, 26 characters. Within one process ids are monotonic:
// two ids made in the same millisecond increment the random part, so lexical order is
// creation order, which keeps index inserts append-only.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ULIDLen is the length of the ULID suffix.
const ULIDLen = 26

var gen = struct {
	sync.Mutex
	lastMS uint64
	hi     uint16 // top 16 of the 80 random bits
	lo     uint64 // low 64 of the 80 random bits
}{}

// New returns prefix + "_" + a new ULID.
func New(prefix string) string {
	return prefix + "_" + ulid(time.Now())
}

func ulid(now time.Time) string {
	ms := uint64(now.UnixMilli())
	gen.Lock()
	if ms <= gen.lastMS {
		// Same (or earlier, after a clock step back) millisecond: increment the
		// random part so ids stay strictly increasing.
		ms = gen.lastMS
		gen.lo++
		if gen.lo == 0 {
			gen.hi++
		}
	} else {
		var b [10]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		gen.hi = binary.BigEndian.Uint16(b[:2])
		gen.lo = binary.BigEndian.Uint64(b[2:])
		gen.lastMS = ms
	}
	var raw [16]byte
	raw[0] = byte(ms >> 40)
	raw[1] = byte(ms >> 32)
	raw[2] = byte(ms >> 24)
	raw[3] = byte(ms >> 16)
	raw[4] = byte(ms >> 8)
	raw[5] = byte(ms)
	binary.BigEndian.PutUint16(raw[6:], gen.hi)
	binary.BigEndian.PutUint64(raw[8:], gen.lo)
	gen.Unlock()
	return encode(raw)
}

// encode writes 128 bits as 26 Crockford base32 characters (the first carries 3 bits).
func encode(raw [16]byte) string {
	hi := binary.BigEndian.Uint64(raw[:8])
	lo := binary.BigEndian.Uint64(raw[8:])
	var out [ULIDLen]byte
	for i := ULIDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Valid reports whether s is prefix + "_" + a well-formed ULID.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != ULIDLen || rest[0] > '7' {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(crockford, rest[i]) < 0 {
			return false
		}
	}
	return true
}
