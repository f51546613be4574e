//go:build race

package e2e

// raceEnabled: the suite runs under -race, so the gateway binary is built with it too.
const raceEnabled = true
