package regions

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/geo"
)

// Test regions with real coordinates, so that nearest steering orders
// them the way a map does.
func steerRegions() []*Region {
	return []*Region{
		steerRegion("eu-west", 53.35, -6.26, "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "2001:db8:1::1"),
		steerRegion("eu-central", 50.11, 8.68, "192.0.2.11", "2001:db8:2::1"),
		steerRegion("us-east", 39.04, -77.49, "198.51.100.1", "2001:db8:3::1"),
		steerRegion("ap-ne", 35.68, 139.69, "203.0.113.1", "2001:db8:4::1"),
		steerRegion("v4-only", 48.86, 2.35, "192.0.2.21"),
		steerRegion("v6-only", 48.86, 2.35, "2001:db8:6::1"),
	}
}

func steerRegion(name string, lat, lon float64, vips ...string) *Region {
	r := &Region{Name: name, Location: Location{Lat: lat, Lon: lon}, Check: HealthCheck{Type: "tcp", Port: 80}}
	for _, v := range vips {
		r.VIPs = append(r.VIPs, netip.MustParseAddr(v))
	}
	return r
}

// svcRegion is a service region.
func svcRegion(name string, weight uint32) ServiceRegion {
	return ServiceRegion{Region: name, Weight: weight}
}

func steerService(name string, p Policy, regions ...ServiceRegion) *Service {
	return &Service{Name: name, TTL: 60, Policy: p, Regions: regions}
}

// steerState holds the test regions and the given services.
func steerState(services ...*Service) *State {
	st := NewState()
	st.Revision = 7
	for _, r := range steerRegions() {
		st.Regions[r.Name] = r
	}
	for _, s := range services {
		st.Services[s.Name] = s
	}
	return st
}

// setReports stores one report per value, from probers p1, p2..., each
// saying every VIP of the region is up or down; the probers are
// registered and trusted.
func setReports(st *State, region string, ups ...bool) {
	m := map[string]*HealthReport{}
	for i, up := range ups {
		id := fmt.Sprintf("p%d", i+1)
		m[id] = report(st, region, id, up)
	}
	st.Health[region] = m
}

// report is a trusted report by a registered prober on every VIP of region.
func report(st *State, region, prober string, up bool) *HealthReport {
	reg := st.Probers[prober]
	if reg == nil {
		reg = &ProberInfo{ID: prober, Region: "eu-west", Lease: int64(len(st.Probers) + 100)}
		st.Probers[prober] = reg
	}
	h := &HealthReport{Region: region, Prober: prober, Trusted: true, Lease: reg.Lease}
	if r := st.Regions[region]; r != nil {
		for _, a := range r.VIPs {
			h.VIPs = append(h.VIPs, VIPHealth{Addr: a, Up: up})
		}
	}
	return h
}

// buildSnap compiles st and fails the test on any problem.
func buildSnap(tb testing.TB, st *State, opts SnapshotOptions) *Snapshot {
	tb.Helper()
	s := BuildSnapshot(st, nil, opts)
	if p := s.Problems(); len(p) > 0 {
		tb.Fatalf("problems: %s", strings.Join(p, "; "))
	}
	return s
}

// mustView finds a service or fails.
func mustView(tb testing.TB, s *Snapshot, name string) *ServiceView {
	tb.Helper()
	v := s.ServiceByName(name)
	if v == nil {
		tb.Fatalf("no service %s", name)
	}
	return v
}

// testLocator is a GeoIP database as a list of networks: the longest
// network holding the address wins, as in an mmdb. It counts its calls
// and does not allocate.
type testLocator struct {
	nets  []locNet
	calls int
}

type locNet struct {
	p   netip.Prefix
	loc geo.Location
}

func (l *testLocator) Locate(a netip.Addr) geo.Location {
	l.calls++
	best := -1
	for i := range l.nets {
		if l.nets[i].p.Contains(a) && (best < 0 || l.nets[i].p.Bits() > l.nets[best].p.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return geo.Location{}
	}
	loc := l.nets[best].loc
	loc.Network = l.nets[best].p
	return loc
}

func locAt(cc, cont string, lat, lon float64) geo.Location {
	return geo.Location{Country: cc, Continent: cont, Lat: lat, Lon: lon, HasCoords: true}
}

// Client networks of the test locator.
var (
	clientDE   = netip.MustParseAddr("198.18.1.9")    // in 198.18.0.0/16, Berlin
	clientFR   = netip.MustParseAddr("198.18.5.9")    // in 198.18.5.0/24, Paris
	clientUS   = netip.MustParseAddr("100.64.3.4")    // in 100.64.0.0/10, New York
	clientJP   = netip.MustParseAddr("203.0.113.77")  // in 203.0.113.0/24, Tokyo
	clientAS   = netip.MustParseAddr("198.51.100.99") // American Samoa, continent OC
	clientIE   = netip.MustParseAddr("192.0.2.200")   // in 192.0.2.128/25, Dublin
	clientNone = netip.MustParseAddr("10.1.2.3")      // in no network
	clientDE6  = netip.MustParseAddr("2001:db8:100:1::5")
	clientBare = netip.MustParseAddr("100.100.1.1") // in 100.100.0.0/20: a country without coordinates
)

func newLocator() *testLocator {
	return &testLocator{nets: []locNet{
		{netip.MustParsePrefix("198.18.0.0/16"), locAt("DE", "EU", 52.52, 13.40)},
		{netip.MustParsePrefix("198.18.5.0/24"), locAt("FR", "EU", 48.86, 2.35)},
		{netip.MustParsePrefix("100.64.0.0/10"), locAt("US", "NA", 40.71, -74.01)},
		{netip.MustParsePrefix("203.0.113.0/24"), locAt("JP", "AS", 35.68, 139.69)},
		{netip.MustParsePrefix("198.51.100.0/24"), locAt("AS", "OC", -14.27, -170.70)},
		{netip.MustParsePrefix("192.0.2.128/25"), locAt("IE", "EU", 53.35, -6.26)},
		{netip.MustParsePrefix("2001:db8:100::/40"), locAt("DE", "EU", 52.52, 13.40)},
		{netip.MustParsePrefix("100.100.0.0/20"), geo.Location{Country: "ZZ"}},
	}}
}

func newClient(a netip.Addr, loc Locator) *Client {
	return &Client{Addr: a, Bits: a.BitLen(), Locator: loc}
}

// splitmix is a seeded PRNG for rnd values: the tests' randomness is a
// fixed sequence, so their outcome is too.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	return mix64(uint64(*s))
}

// regionCounts decides n times with rnd from a seeded PRNG and counts the
// regions chosen ("" for no region).
func regionCounts(s *Snapshot, v *ServiceView, c *Client, qtype uint16, n int, seed uint64) map[string]int {
	rng := splitmix(seed)
	counts := map[string]int{}
	for range n {
		counts[s.Decide(v, c, qtype, rng.next()).Region]++
	}
	return counts
}
