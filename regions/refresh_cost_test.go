package regions

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
)

// TestRefreshCost builds the snapshot after one change at 10,000
// services, from the snapshot before it as the server does, and checks
// what the build did and allocated for each kind of change: a service
// written is compiled alone; a region's health or drain refreshes the
// services that use it, each in one allocation that shares with the view
// before what the service alone decides (viewConst, slotConst); a
// region no service uses refreshes none. The pointer slices of the
// snapshot (entries, services) are copied whatever changed: 16 bytes a
// service.
func TestRefreshCost(t *testing.T) {
	const n = 10000
	st := scaleState(n)
	// A fourth region that no service lists.
	st.Regions["sa-east"] = &Region{Name: "sa-east", VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.40")}, Check: HealthCheck{Type: "tcp", Port: 443}}
	setReports(st, "sa-east", true, true)
	prev := BuildSnapshot(st, nil, SnapshotOptions{})
	if p := prev.Problems(); len(p) > 0 || prev.NumServices() != n {
		t.Fatalf("problems %v, %d services", p, prev.NumServices())
	}
	drain := func(name string) func(*State) {
		return func(st *State) {
			r := *st.Regions[name]
			r.Drained = true
			st.Regions[name] = &r
		}
	}
	for _, tc := range []struct {
		name                string
		change              func(*State)
		compiled, refreshed int
	}{
		{"one service's weights", func(st *State) {
			svc := *st.Services["s00005.example."]
			svc.Regions = slices.Clone(svc.Regions)
			svc.Regions[0].Weight++
			st.PutService(svc.Name, &svc)
		}, 1, 0},
		{"the health of a region every service uses", markDown("eu-west"), 0, n},
		{"a drain of a region every service uses", drain("us-east"), 0, n},
		{"the health of a region no service uses", markDown("sa-east"), 0, 0},
		{"a drain of a region no service uses", drain("sa-east"), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := st.Derive()
			tc.change(next)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s := BuildSnapshot(next, prev, SnapshotOptions{})
			runtime.ReadMemStats(&after)
			if bs := s.Stats(); bs.Compiled != tc.compiled || bs.Refreshed != tc.refreshed || bs.Services != n {
				t.Fatalf("build %+v, want %d compiled and %d refreshed of %d", bs, tc.compiled, tc.refreshed, n)
			}
			shared, own := 0, 0
			for i := range s.NumServices() {
				v, old := s.ServiceAt(i), prev.ServiceAt(i)
				switch {
				case v == old:
					shared++
				case v.viewConst == old.viewConst:
					for j := range v.slots {
						if v.slots[j].slotConst != old.slots[j].slotConst {
							t.Fatalf("%s: slot %d compiled again on a refresh", v.name, j)
						}
					}
				default:
					own++
				}
			}
			if own != tc.compiled || shared != n-tc.compiled-tc.refreshed {
				t.Fatalf("%d views compiled, %d taken over: want %d and %d", own, shared, tc.compiled, n-tc.compiled-tc.refreshed)
			}
			if raceEnabled {
				return // the race detector's allocations count too
			}
			// Per refreshed service: its entry, view and three slots
			// (448 bytes); per service: the snapshot's pointer slices;
			// per compiled service a few kilobytes; and the regions.
			allocs, bytes := after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc
			maxAllocs := uint64(tc.refreshed + 200*tc.compiled + 200)
			maxBytes := uint64(448*tc.refreshed + 16*n + 8192*tc.compiled + 64<<10)
			t.Logf("%d allocations, %d bytes", allocs, bytes)
			if allocs > maxAllocs || bytes > maxBytes {
				t.Errorf("%d allocations and %d bytes: want at most %d and %d", allocs, bytes, maxAllocs, maxBytes)
			}
		})
	}
}
