package regions

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestSnapshotIncremental drives a state through random changes of the
// kinds a watcher delivers (services written, added and deleted, a key
// in another case naming a service twice, an invalid service, health
// reports, drains, a new region) and builds each state twice: from the
// previous snapshot, as the server does, and from scratch. Both must
// answer alike, and the incremental build must compile only what
// changed and share the rest.
func TestSnapshotIncremental(t *testing.T) {
	db := openGeo(t, randomGeoDB(t, 5, 2000))
	regionNames := []string{"eu-west", "eu-central", "us-east", "ap-ne"}
	rng := rand.New(rand.NewPCG(3, 4))
	randomService := func(name string) *Service {
		svc := &Service{Name: name, TTL: 60}
		for _, r := range rng.Perm(len(regionNames))[:2+rng.IntN(3)] {
			svc.Regions = append(svc.Regions, ServiceRegion{Region: regionNames[r], Weight: uint32(rng.IntN(4))})
		}
		switch rng.IntN(4) {
		case 0:
			svc.Policy = PolicyWeighted
		case 1:
			svc.Policy = PolicyNearest
		default:
			svc.Policy = PolicyGeo
			pick := func() []string { return []string{svc.Regions[rng.IntN(len(svc.Regions))].Region} }
			svc.Geo = &GeoMap{Continents: map[string][]string{"EU": pick(), "NA": pick()}, Default: pick()}
			if rng.IntN(2) == 0 {
				svc.Geo.Countries = map[string][]string{"FR": pick()}
			}
		}
		return svc
	}
	cur := steerState()
	for i := range 60 {
		svc := randomService(fmt.Sprintf("s%02d.example.", i))
		cur.Services[svc.Name] = svc
	}
	opts := SnapshotOptions{GeoIP: db}
	prev := BuildSnapshot(cur, nil, opts)
	clients := []netip.Addr{netip.MustParseAddr("16.1.2.3"), netip.MustParseAddr("48.7.7.7"), netip.MustParseAddr("80.1.0.9"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2400:cb00::7")}
	for step := range 300 {
		next := cur.Derive()
		var what string
		wantCompiled := -1 // -1: not checked
		k := rng.IntN(10)
		regionChange := k >= 6
		switch {
		case k < 3:
			key := fmt.Sprintf("s%02d.example.", rng.IntN(70))
			what = "write " + key
			next.PutService(key, randomService(key))
			wantCompiled = 1
		case k == 3:
			key := fmt.Sprintf("s%02d.example.", rng.IntN(70))
			what = "delete " + key
			next.DeleteService(key)
			wantCompiled = 0
		case k == 4:
			// Another key for an existing name: one of the two is
			// skipped while both are there.
			name := fmt.Sprintf("s%02d.example.", rng.IntN(70))
			key := strings.ToUpper(name)
			what = "odd key " + key
			if rng.IntN(2) == 0 {
				next.DeleteService(key)
			} else {
				next.PutService(key, randomService(name))
			}
		case k == 5:
			key := fmt.Sprintf("s%02d.example.", rng.IntN(70))
			what = "invalid " + key
			svc := randomService(key)
			svc.Regions = append(svc.Regions, ServiceRegion{Region: "nowhere", Weight: 1})
			next.PutService(key, svc)
		case k < 8:
			r := regionNames[rng.IntN(len(regionNames))]
			what = "health " + r
			ups := []bool{true, rng.IntN(2) == 0, rng.IntN(2) == 0}
			setReports(next, r, ups...)
			wantCompiled = 0
		case k == 8:
			r := regionNames[rng.IntN(len(regionNames))]
			what = "drain " + r
			reg := *next.Regions[r]
			reg.Drained = !reg.Drained
			next.Regions[r] = &reg
			wantCompiled = 0
		default:
			what = "region added or removed"
			if _, ok := next.Regions["spare"]; ok {
				delete(next.Regions, "spare")
			} else {
				next.Regions["spare"] = steerRegion("spare", 1, 1, "192.0.2.99")
			}
		}
		if rng.IntN(8) == 0 {
			// Now and then a state copied without Derive: every service
			// is compared.
			c := next.Clone()
			c.Services = next.Services
			next = c
		}
		incr := BuildSnapshot(next, prev, opts)
		full := BuildSnapshot(next, nil, opts)
		label := fmt.Sprintf("step %d (%s)", step, what)
		if a, b := incr.Problems(), full.Problems(); !slices.Equal(a, b) {
			t.Fatalf("%s: problems\n%q\nfrom scratch\n%q", label, a, b)
		}
		if incr.NumServices() != full.NumServices() {
			t.Fatalf("%s: %d services, from scratch %d", label, incr.NumServices(), full.NumServices())
		}
		st := incr.Stats()
		if _, derived := next.servicesChangedSince(cur); derived && len(prev.dups) == 0 && wantCompiled >= 0 && st.Compiled != wantCompiled {
			t.Fatalf("%s: compiled %d services, want %d (%+v)", label, st.Compiled, wantCompiled, st)
		}
		sameNames := true
		for i := range incr.NumServices() {
			v, w := incr.ServiceAt(i), full.ServiceAt(i)
			if v.Name() != w.Name() || incr.ServiceByName(v.Name()) != v {
				t.Fatalf("%s: service %d is %s, from scratch %s", label, i, v.Name(), w.Name())
			}
			if pv := prev.ServiceByName(v.Name()); pv == nil || i >= prev.NumServices() || prev.ServiceAt(i) != pv {
				sameNames = false
			}
			for _, a := range clients {
				for _, qt := range []uint16{QTypeA, QTypeAAAA} {
					c := &Client{Addr: a, Bits: a.BitLen(), Locator: db}
					if d, e := incr.Decide(v, c, qt, 7), full.Decide(w, c, qt, 7); fmt.Sprint(d) != fmt.Sprint(e) {
						t.Fatalf("%s: %s for %s type %d: %+v, from scratch %+v", label, v.Name(), a, qt, d, e)
					}
				}
			}
			// A service that did not change, in a build that changed no
			// region, is shared whole.
			if pv := prev.ServiceByName(v.Name()); !regionChange && pv != nil && pv.Service() == v.Service() && pv != v {
				t.Fatalf("%s: %s not taken over", label, v.Name())
			}
		}
		sameKeys := len(cur.Services) == len(next.Services)
		for k := range next.Services {
			if _, ok := cur.Services[k]; !ok {
				sameKeys = false
			}
		}
		if sameKeys && sameNames && prev.NumServices() == incr.NumServices() && !incr.SameServiceNames(prev) {
			t.Fatalf("%s: the keys and the services' names did not change, their index did", label)
		}
		gi, gf := incr.GeoTables(), full.GeoTables()
		if len(gi.Partitions) != len(gf.Partitions) || gi.Merged != gf.Merged || gi.MergedServices != gf.MergedServices {
			t.Fatalf("%s: geo tables %+v, from scratch %+v", label, gi, gf)
		}
		cur, prev = next, incr
	}
}
