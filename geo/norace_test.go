//go:build !race

package geo

// raceEnabled is true when the tests run under the race detector, which
// makes a real build from tor-geoipdb several times slower.
const raceEnabled = false
