package main

import (
	"testing"
)

// TestGoals is `make sim` with its goals as bounds, on several seeds, so
// that a change to the controller that makes the dynamics worse fails
// the build. It runs in simulated time: seconds, race detector included.
func TestGoals(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		for _, sc := range scenarios {
			res := sc.run(seed)
			t.Logf("seed %d: %s", seed, res)
			var bad []string
			switch sc.name {
			case "spike", "spike-weighted":
				// Within 10% of the target in at most 3 TTLs, less than
				// 10% past it, at most one turn.
				if !(res.settle <= 3) {
					bad = append(bad, "settle_ttls above 3")
				}
				if !(res.overshoot < 10) {
					bad = append(bad, "overshoot_pct of 10 or more")
				}
				if res.reversals > 1 {
					bad = append(bad, "more than one reversal")
				}
			case "recover", "shift-expire":
				// The traffic share within 5 points of the ramp.
				if !(res.maxDev <= 5) {
					bad = append(bad, "max_dev_pts above 5")
				}
				if res.reversals > 0 || res.overshoot > 1 {
					bad = append(bad, "the traffic share turned or went past the full share")
				}
			case "stale-signal":
				// Nothing changes once the signal is stale.
				if res.settle != 0 || res.reversals != 0 || res.maxDev > 0.5 {
					bad = append(bad, "something moved after the signal aged out")
				}
			default:
				t.Fatalf("scenario %s has no goals", sc.name)
			}
			for _, b := range bad {
				t.Errorf("seed %d, scenario %s: %s: %s", seed, sc.name, b, res)
			}
		}
	}
}
