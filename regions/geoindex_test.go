package regions

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestRadixIndex: for intervals clustered as a database's are (dense
// blocks, sparse space, runs of neighbouring starts), the index gives
// for every address a range that holds its interval, of at most
// leafMax+1 intervals where the key's bits allow a split.
func TestRadixIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    uint
		n    int
	}{
		{"IPv4 one interval", 32, 1},
		{"IPv4 few", 32, 40},
		{"IPv4 many", 32, 50000},
		{"IPv6 first half", 64, 50000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.w)))
			starts := []uint64{0}
			for len(starts) < tc.n {
				// A cluster of consecutive starts around a random
				// address, as dense as one key apart.
				base := rng.Uint64() &^ (^uint64(0) >> tc.w)
				step := uint64(1) << (64 - tc.w) << rng.IntN(12)
				for k := range min(1+rng.IntN(3000), tc.n-len(starts)) {
					starts = append(starts, base+uint64(k)*step)
				}
			}
			slices.Sort(starts)
			starts = slices.Compact(starts)
			x := newRadixIndex(len(starts), tc.w, func(i int, k uint64) bool { return starts[i] <= k })
			probe := func(k uint64) {
				want := sort.Search(len(starts), func(i int) bool { return starts[i] > k }) - 1
				first, last := x.find(k)
				if want < int(first) || want > int(last) || int(last) >= len(starts) {
					t.Fatalf("key %#x: interval %d, index range [%d, %d]", k, want, first, last)
				}
				if last-first > leafMax {
					t.Fatalf("key %#x: range [%d, %d] of %d intervals, more than %d", k, first, last, last-first+1, leafMax+1)
				}
			}
			for _, s := range starts {
				probe(s)
				probe(s - 1<<(64-tc.w)) // the address before, wrapping at 0
			}
			for range 20000 {
				probe(rng.Uint64() &^ (^uint64(0) >> tc.w))
			}
			probe(^uint64(0) &^ (^uint64(0) >> tc.w))
			t.Logf("%d intervals, index of %d bytes", len(starts), x.bytes())
		})
	}
}
