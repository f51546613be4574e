//go:build !race

package e2e

// raceEnabled: the suite runs without -race.
const raceEnabled = false
