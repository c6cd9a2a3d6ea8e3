package regions

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/meridian-gslb/meridian/regions/latency"
)

// bigState is 1,000 services over 50 regions (each service uses all 50),
// every policy, three probers reporting on every region, and a latency
// table.
func bigState() *State {
	st := NewState()
	st.Revision = 1
	continents := []string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}
	countries := []string{"DE", "FR", "GB", "US", "CA", "JP", "CN", "IN", "BR", "AU", "ZA", "NG", "MX", "ES", "IT", "NL", "SE", "PL", "KR", "SG"}
	var names []string
	for i := range 50 {
		name := fmt.Sprintf("region-%02d", i)
		names = append(names, name)
		st.Regions[name] = &Region{
			Name: name,
			VIPs: []netip.Addr{
				netip.AddrFrom4([4]byte{198, 18, byte(i), 1}),
				netip.AddrFrom4([4]byte{198, 18, byte(i), 2}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i), 15: 1}),
			},
			Location: Location{Lat: float64(i%18)*10 - 85, Lon: float64(i)*7 - 175, Continent: continents[i%7]},
			Check:    HealthCheck{Type: "tcp", Port: 443},
		}
		reports := map[string]*HealthReport{}
		for p := range 3 {
			id := fmt.Sprintf("prober-%d", p)
			reports[id] = report(st, name, id, (i+p)%7 != 0)
		}
		st.Health[name] = reports
	}
	policies := []Policy{PolicyWeighted, PolicyFailover, PolicyGeo, PolicyNearest, PolicyLatency}
	for i := range 1000 {
		svc := &Service{Name: fmt.Sprintf("svc-%04d.example.", i), TTL: 60, Policy: policies[i%len(policies)], Sticky: i%2 == 0}
		for j, n := range names {
			svc.Regions = append(svc.Regions, ServiceRegion{Region: n, Weight: uint32(1 + (i+j)%5)})
		}
		if svc.Policy == PolicyGeo {
			svc.Geo = &GeoMap{Countries: map[string][]string{}, Continents: map[string][]string{}, Default: names[:3]}
			for k, cc := range countries {
				svc.Geo.Countries[cc] = []string{names[k], names[k+20], names[k+30]}
			}
			for k, c := range continents {
				svc.Geo.Continents[c] = []string{names[k*7], names[k*7+1]}
			}
		}
		st.Services[svc.Name] = svc
	}
	var entries []latency.Entry
	for i := range 10000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i/256), byte(i), 0}), 24)
		for k := range 3 {
			entries = append(entries, latency.Entry{Prefix: p, Region: names[(i+k*13)%50], RTTms: float64(5 + (i*k)%200)})
		}
	}
	st.Latency = &LatencyData{ID: "bench", Entries: len(entries), CSV: latency.FormatCSV(entries)}
	return st
}

// BenchmarkBuildSnapshot rebuilds the snapshot of 1,000 services × 50
// regions after a health change, as the watcher does: the latency table
// comes from the previous snapshot.
func BenchmarkBuildSnapshot(b *testing.B) {
	st := bigState()
	prev := BuildSnapshot(st, nil, SnapshotOptions{})
	if p := prev.Problems(); len(p) > 0 {
		b.Fatalf("problems: %v", p)
	}
	if len(prev.Services()) != 1000 || len(prev.Regions()) != 50 {
		b.Fatalf("%d services, %d regions", len(prev.Services()), len(prev.Regions()))
	}
	next := st.Clone()
	next.Revision++
	next.Health["region-03"] = map[string]*HealthReport{}
	b.ReportAllocs()
	for b.Loop() {
		s := BuildSnapshot(next, prev, SnapshotOptions{})
		if s.Latency() != prev.Latency() {
			b.Fatal("latency table compiled again")
		}
	}
}

// scaleState is 10,000 services over three regions, as bench/scale
// makes them: half weighted, 30% geo with continent maps drawn at
// random, 20% nearest; three probers reporting on every region.
func scaleState(n int) *State {
	st := NewState()
	st.Revision = 1
	names := []string{"eu-west", "us-east", "ap-northeast"}
	for i, name := range names {
		st.Regions[name] = &Region{Name: name, VIPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(10 * (i + 1))})},
			Location: Location{Lat: float64(10 * i), Lon: float64(40 * i)}, Check: HealthCheck{Type: "tcp", Port: 443}}
		reports := map[string]*HealthReport{}
		for p := range 3 {
			id := fmt.Sprintf("prober-%d", p)
			reports[id] = report(st, name, id, true)
		}
		st.Health[name] = reports
	}
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	perm := func() []string {
		p := rng.Perm(3)
		return []string{names[p[0]], names[p[1]], names[p[2]]}
	}
	for i := range n {
		svc := &Service{Name: fmt.Sprintf("s%05d.example.", i), TTL: 60}
		for _, r := range names {
			svc.Regions = append(svc.Regions, ServiceRegion{Region: r, Weight: uint32(1 + rng.IntN(100))})
		}
		switch k := i % 10; {
		case k < 5:
			svc.Policy = PolicyWeighted
		case k < 8:
			svc.Policy = PolicyGeo
			svc.Geo = &GeoMap{Continents: map[string][]string{}, Default: perm()}
			for _, c := range []string{"AF", "AS", "EU", "NA", "OC", "SA"} {
				svc.Geo.Continents[c] = perm()
			}
		default:
			svc.Policy = PolicyNearest
		}
		st.Services[svc.Name] = svc
	}
	return st
}

// BenchmarkBuildSnapshot10k is the control path at 10,000 services with
// the GeoIP database of the geo tests: the build after one service
// changed, after one region's health changed (every service uses it),
// and the memory of the compiled services (bytes/service).
func BenchmarkBuildSnapshot10k(b *testing.B) {
	db := openGeo(b, randomGeoDB(b, 8, 20000))
	st := scaleState(10000)
	opts := SnapshotOptions{GeoIP: db}
	prev := BuildSnapshot(st, nil, opts)
	if p := prev.Problems(); len(p) > 0 || prev.NumServices() != 10000 || prev.GeoTables().Pending != 0 {
		b.Fatalf("problems %v, %d services, tables %+v", p, prev.NumServices(), prev.GeoTables())
	}
	// As the watcher delivers it: the state derived from the previous
	// one, the change noted.
	b.Run("one-service", func(b *testing.B) {
		next := st.Derive()
		svc := *next.Services["s00005.example."]
		svc.Regions = slices.Clone(svc.Regions)
		svc.Regions[0].Weight++
		next.PutService(svc.Name, &svc)
		b.ReportAllocs()
		for b.Loop() {
			if s := BuildSnapshot(next, prev, opts); s.Stats().Compiled != 1 || !s.SameServiceNames(prev) {
				b.Fatalf("%+v", s.Stats())
			}
		}
	})
	// A copy with no record of what changed: every service is compared.
	b.Run("one-service-compared", func(b *testing.B) {
		next := st.Clone()
		svc := *next.Services["s00005.example."]
		svc.Regions = slices.Clone(svc.Regions)
		svc.Regions[0].Weight++
		next.Services[svc.Name] = &svc
		b.ReportAllocs()
		for b.Loop() {
			if s := BuildSnapshot(next, prev, opts); s.Stats().Compiled != 1 {
				b.Fatalf("%+v", s.Stats())
			}
		}
	})
	b.Run("one-region-health", func(b *testing.B) {
		next := st.Derive()
		markDown("eu-west")(next)
		b.ReportAllocs()
		for b.Loop() {
			if s := BuildSnapshot(next, prev, opts); s.Stats().Compiled != 0 || s.Stats().Refreshed != 10000 {
				b.Fatalf("%+v", s.Stats())
			}
		}
	})
	bytes := 0
	for _, v := range prev.Services() {
		bytes += v.Bytes()
	}
	b.ReportMetric(float64(bytes)/10000, "bytes/service")
	info := prev.GeoTables()
	b.ReportMetric(float64(len(info.Partitions)), "partitions")
	b.ReportMetric(float64(info.MergeBytes)/float64(max(info.Merged, 1)), "bytes/merge")
}
