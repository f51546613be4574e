//go:build !amd64 || purego

package avxstate

// Clean does nothing: only amd64 has the AVX/SSE transition to clean up after.
func Clean() {}
