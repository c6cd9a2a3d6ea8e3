//go:build race

package regions

// raceEnabled is true when the tests run under the race detector, which
// makes a real database build from tor-geoipdb several times slower.
const raceEnabled = true
