//go:build race

package replication

// raceEnabled skips timing measurements, which the race detector distorts.
const raceEnabled = true
