package regions

import (
	"fmt"
	"net/netip"
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
