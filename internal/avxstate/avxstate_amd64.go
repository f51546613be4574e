//go:build amd64 && !purego

package avxstate

import "golang.org/x/sys/cpu"

// hasAVX guards VZEROUPPER, which is an AVX instruction. circl only runs its AVX2
// code when the CPU has AVX2, so without AVX there is nothing to clean.
var hasAVX = cpu.X86.HasAVX

// Clean executes VZEROUPPER when the CPU has AVX; elsewhere it does nothing.
func Clean() {
	if hasAVX {
		vzeroupper()
	}
}

//go:noescape
func vzeroupper()
