package regions

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/meridian-gslb/meridian/geo"
)

// allocCases are decisions of every kind, for the allocation test and the
// benchmarks.
func allocCases() []struct {
	name  string
	svc   *Service
	prep  func(*State)
	addr  netip.Addr
	qtype uint16
} {
	sticky := fourRegions(PolicyWeighted)
	sticky.Sticky = true
	nearTol := fourRegions(PolicyNearest)
	nearTol.NearestToleranceKm = 1000
	latTol := fourRegions(PolicyLatency)
	latTol.LatencyToleranceMs = 15
	fallback := fourRegions(PolicyWeighted)
	fallback.AllDown = AllDown{Mode: AllDownFallback, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.250")}}
	allDown := markDown("eu-west", "eu-central", "us-east", "ap-ne")
	// Busy regions: the load factor's first step takes them below their
	// full share, so that decisions go through the spill (geo) and the
	// solved weights (weighted).
	geoLoad := geoService()
	geoLoad.Load = &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9}
	weightedLoad := fourRegions(PolicyWeighted)
	weightedLoad.Load = &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9}
	busy := func(regions ...string) func(*State) {
		return func(st *State) {
			for _, r := range regions {
				setLoad(st, r, time.Now(), 1, 1)
			}
		}
	}
	return []struct {
		name  string
		svc   *Service
		prep  func(*State)
		addr  netip.Addr
		qtype uint16
	}{
		{"weighted", fourRegions(PolicyWeighted), nil, clientDE, QTypeA},
		{"weighted-sticky", sticky, nil, clientDE, QTypeA},
		{"weighted-sticky-v6", sticky, nil, clientDE6, QTypeAAAA},
		{"failover", fourRegions(PolicyFailover), markDown("eu-west"), clientDE, QTypeA},
		{"geo", geoService(), nil, clientFR, QTypeA},
		{"geo-spill", geoLoad, busy("eu-central", "eu-west"), clientFR, QTypeA},
		{"weighted-load", weightedLoad, busy("eu-west"), clientDE, QTypeA},
		{"nearest", nearTol, nil, clientDE, QTypeA},
		{"latency", latTol, withLatency, clientDE, QTypeA},
		{"latency-to-nearest", fourRegions(PolicyLatency), withLatency, clientIE, QTypeA},
		{"fail-open", fourRegions(PolicyWeighted), allDown, clientDE, QTypeA},
		{"fallback", fallback, allDown, clientDE, QTypeA},
		{"nodata", fourRegions(PolicyWeighted), nil, clientDE, 16},
	}
}

func TestDecideAllocs(t *testing.T) {
	for _, tc := range allocCases() {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			v := mustView(t, s, tc.svc.Name)
			if strings.HasSuffix(tc.name, "-spill") != v.spill {
				t.Fatalf("spill %v", v.spill)
			}
			c := newClient(tc.addr, newLocator())
			var rnd uint64
			var d Decision
			allocs := testing.AllocsPerRun(200, func() {
				rnd++
				d = s.Decide(v, c, tc.qtype, rnd)
			})
			if allocs != 0 {
				t.Fatalf("Decide allocates %v times per call", allocs)
			}
			if d.Kind == KindAnswer && d.Count == 0 {
				t.Fatalf("empty answer %+v", d)
			}
		})
	}
}

// countryDB is a small GeoLite2-Country database written with mmdbwriter,
// so that steering is tested against the real geo.DB lookup.
func countryDB(tb testing.TB) *geo.DB {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		IPVersion:               6,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	rec := func(cc, cont string) mmdbtype.Map {
		return mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(cc)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(cont)},
		}
	}
	for _, n := range []struct {
		cidr string
		rec  mmdbtype.Map
	}{
		{"198.18.0.0/16", rec("DE", "EU")},
		{"198.18.5.0/24", rec("FR", "EU")},
		{"203.0.113.0/24", rec("JP", "AS")},
		{"198.51.100.0/24", rec("AS", "OC")},
		{"2001:db8:100::/40", rec("DE", "EU")},
	} {
		_, ipn, err := net.ParseCIDR(n.cidr)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(ipn, n.rec); err != nil {
			tb.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	db, err := geo.OpenBytes(buf.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// TestDecideWithGeoDB steers with a real country database: the points
// come from geo's country table, the scope from the database networks.
func TestDecideWithGeoDB(t *testing.T) {
	db := countryDB(t)
	cases := []struct {
		name   string
		svc    *Service
		addr   netip.Addr
		bits   int
		qtype  uint16
		region string
		scope  int
	}{
		// The database splits 198.18.0.0/16 around 198.18.5.0/24, so
		// 198.18.1.9 is in the leaf network 198.18.0.0/22.
		{"geo country", geoService(), clientFR, 32, QTypeA, "eu-central", 24},
		{"geo continent", geoService(), clientDE, 32, QTypeA, "eu-west", 22},
		{"geo AS continent", geoService(), clientJP, 32, QTypeA, "ap-ne", 24},
		{"geo AS country", geoService(), clientAS, 32, QTypeA, "us-east", 24},
		{"geo ECS /20", geoService(), netip.MustParseAddr("198.18.0.0"), 20, QTypeA, "eu-west", 20},
		{"geo v6", geoService(), clientDE6, 56, QTypeAAAA, "eu-west", 40},
		// Berlin (capital of DE) to Frankfurt 423 km, Dublin 1317 km.
		{"nearest from the country's capital", fourRegions(PolicyNearest), clientDE, 32, QTypeA, "eu-central", 22},
		{"nearest Tokyo", fourRegions(PolicyNearest), clientJP, 32, QTypeA, "ap-ne", 24},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := buildSnap(t, steerState(tc.svc), SnapshotOptions{})
			v := mustView(t, s, tc.svc.Name)
			c := &Client{Addr: tc.addr, Bits: tc.bits, Locator: db}
			d := s.Decide(v, c, tc.qtype, 1)
			if d.Region != tc.region || d.Scope != tc.scope {
				t.Fatalf("decision %+v, want %s with scope %d", d, tc.region, tc.scope)
			}
			if allocs := testing.AllocsPerRun(100, func() { s.Decide(v, c, tc.qtype, 1) }); allocs != 0 {
				t.Fatalf("Decide with a geo.DB allocates %v times", allocs)
			}
		})
	}
}

// TestDecideConcurrent decides from several goroutines on one snapshot,
// as the DNS listeners do; under -race it proves that deciding and
// explaining never write to shared state.
func TestDecideConcurrent(t *testing.T) {
	db := countryDB(t)
	sticky := fourRegions(PolicyNearest)
	sticky.Sticky, sticky.NearestToleranceKm = true, 20000
	st := steerState(geoService(), sticky, fourRegions(PolicyLatency))
	withLatency(st)
	markDown("eu-west")(st)
	s := buildSnap(t, st, SnapshotOptions{})
	want := map[string]Decision{}
	for _, v := range s.Services() {
		want[v.Name()] = s.Decide(v, &Client{Addr: clientFR, Bits: 32, Locator: db}, QTypeA, 7)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				v := s.Services()[(g+i)%len(s.Services())]
				c := &Client{Addr: clientFR, Bits: 32, Locator: db}
				var d Decision
				if i%10 == 0 {
					d, _ = s.Explain(v, c, QTypeA, 7)
				} else {
					d = s.Decide(v, c, QTypeA, 7)
				}
				if !reflect.DeepEqual(d, want[v.Name()]) {
					errs <- fmt.Sprintf("%s: %+v, want %+v", v.Name(), d, want[v.Name()])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDecideNil(t *testing.T) {
	s := buildSnap(t, steerState(geoService()), SnapshotOptions{})
	if d := s.Decide(nil, newClient(clientFR, nil), QTypeA, 1); d.Kind != KindNoData {
		t.Fatalf("nil service: %+v", d)
	}
	if d, e := s.Explain(nil, nil, QTypeA, 1); d.Kind != KindNoData || e == nil || e.Reason == "" {
		t.Fatalf("nil service explained: %+v %+v", d, e)
	}
	// No client: the default, scope 0.
	if d := s.Decide(mustView(t, s, "geo.example."), nil, QTypeA, 1); d.Region != "us-east" || d.Scope != 0 {
		t.Fatalf("nil client: %+v", d)
	}
}
