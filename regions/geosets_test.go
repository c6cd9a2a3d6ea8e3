package regions

import (
	"math/rand/v2"
	"testing"
)

// TestLocSets: next and prev find the nearest interval of a location
// set, against a scan, from every position, for sets rare and common in
// the intervals, an alias among them, and lengths around the blocks'.
func TestLocSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{1, 2, setLeaf - 1, setLeaf, setLeaf + 1, 5*setLeaf + 3, 3000} {
		loc := make([]uint16, n)
		for i := range loc {
			loc[i] = uint16(rng.IntN(40))
			if rng.IntN(50) == 0 {
				loc[i] = aliasLoc + uint16(rng.IntN(3))
			}
		}
		ts := newLocSets(loc)
		for _, members := range [][]uint16{{39}, {1, 2, 3}, {aliasLoc}, {}} {
			var other locSet
			for _, l := range members {
				other.add(l)
			}
			in := func(i int) bool { return other.has(loc[i]) }
			for i := range n {
				want := n
				for j := i; j < n; j++ {
					if in(j) {
						want = j
						break
					}
				}
				if got := ts.next(i, &other); got != want {
					t.Fatalf("n=%d set %v: next(%d) = %d, want %d", n, members, i, got, want)
				}
				want = -1
				for j := i; j >= 0; j-- {
					if in(j) {
						want = j
						break
					}
				}
				if got := ts.prev(i, &other); got != want {
					t.Fatalf("n=%d set %v: prev(%d) = %d, want %d", n, members, i, got, want)
				}
			}
			if got := ts.next(n, &other); got != n {
				t.Fatalf("n=%d: next past the end = %d", n, got)
			}
			if got := ts.prev(-1, &other); got != -1 {
				t.Fatalf("n=%d: prev before the start = %d", n, got)
			}
		}
	}
}
