//go:build race

package testenv

// Race reports whether the test binary was built with the race detector, which changes
// allocation counts (so allocation budgets are checked only without it) and is passed
// on to binaries the tests build.
const Race = true
