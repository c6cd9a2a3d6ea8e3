//go:build race

package main

// raceEnabled is true under the race detector, which makes the timings
// of TestScale1000 meaningless.
const raceEnabled = true
