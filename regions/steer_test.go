package regions

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/geo"
)

const testLatencyCSV = `cidr,region,rtt_ms
198.18.0.0/16,eu-west,30
198.18.0.0/16,eu-central,20
198.18.0.0/16,us-east,90
198.18.5.0/24,eu-west,10
198.18.5.0/24,eu-central,12
100.64.0.0/10,us-east,5
2001:db8:100::/48,eu-west,15
2001:db8:100::/48,eu-central,40
203.0.113.0/24,eu-west,300
`

func withLatency(st *State) {
	st.Latency = &LatencyData{ID: "t1", Entries: 9, CSV: []byte(testLatencyCSV)}
}

func markDown(regions ...string) func(*State) {
	return func(st *State) {
		for _, r := range regions {
			setReports(st, r, false, false)
		}
	}
}

func markUp(regions ...string) func(*State) {
	return func(st *State) {
		for _, r := range regions {
			setReports(st, r, true, true)
		}
	}
}

// untrust marks every report of the given probers untrusted.
func untrust(probers ...string) func(*State) {
	return func(st *State) {
		for _, reps := range st.Health {
			for _, p := range probers {
				if r := reps[p]; r != nil {
					r.Trusted = false
				}
			}
		}
	}
}

// both applies a then b.
func both(a, b func(*State)) func(*State) {
	return func(st *State) {
		a(st)
		b(st)
	}
}

func geoService() *Service {
	s := steerService("geo.example.", PolicyGeo, svcRegion("eu-west", 1), svcRegion("eu-central", 1), svcRegion("us-east", 1), svcRegion("ap-ne", 1))
	s.Geo = &GeoMap{
		Countries: map[string][]string{
			"FR": {"eu-central", "eu-west"},
			"AS": {"us-east"}, // American Samoa
		},
		Continents: map[string][]string{
			"EU": {"eu-west", "eu-central"},
			"NA": {"us-east"},
			"AS": {"ap-ne"}, // Asia
		},
		Default: []string{"us-east"},
	}
	return s
}

func fourRegions(p Policy) *Service {
	return steerService("svc.example.", p, svcRegion("eu-west", 1), svcRegion("eu-central", 1), svcRegion("us-east", 1), svcRegion("ap-ne", 1))
}

// steerCase is one decision: the service, changes to the state, the
// client, and the set of regions that may be chosen (over many random
// draws) with the scope every one of those decisions must carry.
type steerCase struct {
	name     string
	svc      *Service
	prep     func(*State)
	addr     netip.Addr
	bits     int  // 0: all of addr; -1: ECS /0
	noLoc    bool // no Locator
	qtype    uint16
	want     []string // regions that may be chosen; nil for NODATA
	scope    int
	locCalls int // locator calls per decision (0 or 1)
	failOpen bool
}

func runSteerCases(t *testing.T, cases []steerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			v := mustView(t, s, tc.svc.Name)
			loc := newLocator()
			c := &Client{Addr: tc.addr, Bits: tc.bits, Locator: loc}
			if tc.noLoc {
				c.Locator = nil
			}
			switch {
			case tc.bits < 0: // ECS /0
				c.Bits = 0
			case tc.bits == 0:
				c.Bits = c.Addr.BitLen()
			}
			qtype := tc.qtype
			if qtype == 0 {
				qtype = QTypeA
			}
			const n = 400
			rng := splitmix(42)
			got := map[string]bool{}
			for range n {
				d := s.Decide(v, c, qtype, rng.next())
				if tc.want == nil {
					if d.Kind != KindNoData {
						t.Fatalf("decision %+v, want NODATA", d)
					}
					continue
				}
				if d.Kind != KindAnswer {
					t.Fatalf("decision %+v, want an answer", d)
				}
				if d.Scope != tc.scope {
					t.Fatalf("scope %d, want %d (%+v)", d.Scope, tc.scope, d)
				}
				if d.FailOpen != tc.failOpen {
					t.Fatalf("fail open %v, want %v", d.FailOpen, tc.failOpen)
				}
				got[d.Region] = true
			}
			var regions []string
			for r := range got {
				regions = append(regions, r)
			}
			slices.Sort(regions)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(regions, want) {
				t.Fatalf("regions chosen %v, want %v", regions, want)
			}
			if tc.noLoc {
				return
			}
			if loc.calls != tc.locCalls*n {
				t.Fatalf("locator called %d times in %d decisions, want %d per decision", loc.calls, n, tc.locCalls)
			}
		})
	}
}

func TestDecideWeightedAndHealth(t *testing.T) {
	three := func() *Service {
		return steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("eu-central", 1), svcRegion("us-east", 1))
	}
	drained := three()
	drained.Regions[1].Weight = 0
	runSteerCases(t, []steerCase{
		{name: "all unknown count as up", svc: three(), addr: clientDE,
			want: []string{"eu-west", "eu-central", "us-east"}},
		{name: "all up", svc: three(), addr: clientDE, prep: func(st *State) {
			setReports(st, "eu-west", true)
			setReports(st, "eu-central", true, true)
			setReports(st, "us-east", true, true, true)
		}, want: []string{"eu-west", "eu-central", "us-east"}},
		{name: "down is filtered", svc: three(), addr: clientDE, prep: markDown("us-east"),
			want: []string{"eu-west", "eu-central"}},
		{name: "quorum 2 of 3 up is up, 1 of 3 is down", svc: three(), addr: clientDE, prep: func(st *State) {
			setReports(st, "eu-west", true, true, false)
			setReports(st, "eu-central", true, false, false)
		}, want: []string{"eu-west", "us-east"}},
		{name: "quorum: 1 of 2 down is a tie, kept up", svc: three(), addr: clientDE, prep: func(st *State) {
			setReports(st, "eu-west", true, false)
		}, want: []string{"eu-west", "eu-central", "us-east"}},
		{name: "drained is never chosen", svc: drained, addr: clientDE,
			want: []string{"eu-west", "us-east"}},
		{name: "weighted does not locate", svc: three(), addr: clientDE, locCalls: 0,
			want: []string{"eu-west", "eu-central", "us-east"}},
		{name: "v6-only region for AAAA", svc: steerService("w.example.", PolicyWeighted, svcRegion("v4-only", 1), svcRegion("v6-only", 1)),
			addr: clientDE, qtype: QTypeAAAA, want: []string{"v6-only"}},
		{name: "v4-only region for A", svc: steerService("w.example.", PolicyWeighted, svcRegion("v4-only", 1), svcRegion("v6-only", 1)),
			addr: clientDE, qtype: QTypeA, want: []string{"v4-only"}},
		{name: "no region of the family: NODATA", svc: steerService("w.example.", PolicyWeighted, svcRegion("v4-only", 1)),
			addr: clientDE, qtype: QTypeAAAA, want: nil},
		{name: "other query type: NODATA", svc: three(), addr: clientDE, qtype: 16, want: nil},
		{name: "fail open keeps drained out", svc: drained, addr: clientDE, prep: markDown("eu-west", "eu-central", "us-east"),
			want: []string{"eu-west", "us-east"}, failOpen: true},
	})
}

func TestDecideFailover(t *testing.T) {
	order := func() *Service {
		return steerService("f.example.", PolicyFailover, svcRegion("us-east", 1), svcRegion("eu-west", 5), svcRegion("eu-central", 1))
	}
	drained := order()
	drained.Regions[0].Weight = 0
	runSteerCases(t, []steerCase{
		{name: "first in order", svc: order(), addr: clientDE, want: []string{"us-east"}},
		{name: "first down: the next", svc: order(), addr: clientDE, prep: markDown("us-east"), want: []string{"eu-west"}},
		{name: "two down", svc: order(), addr: clientDE, prep: markDown("us-east", "eu-west"), want: []string{"eu-central"}},
		{name: "first drained", svc: drained, addr: clientDE, want: []string{"eu-west"}},
		{name: "all down fails open to the first", svc: order(), addr: clientDE, prep: markDown("us-east", "eu-west", "eu-central"),
			want: []string{"us-east"}, failOpen: true},
	})
}

func TestDecideGeo(t *testing.T) {
	noDefault := geoService()
	noDefault.Geo.Default = nil
	onlyDefault := geoService()
	onlyDefault.Geo.Countries, onlyDefault.Geo.Continents = nil, nil
	walk := geoWalk()
	runSteerCases(t, []steerCase{
		{name: "walk: country list", svc: walk, addr: clientFR, want: []string{"eu-central"}, scope: 24, locCalls: 1},
		{name: "walk: country list down: continent list", svc: walk, addr: clientFR, prep: markDown("eu-central"),
			want: []string{"eu-west"}, scope: 24, locCalls: 1},
		{name: "walk: country and continent lists down: default list", svc: walk, addr: clientFR, prep: markDown("eu-central", "eu-west"),
			want: []string{"us-east"}, scope: 24, locCalls: 1},
		{name: "walk: every list down: service order", svc: walk, addr: clientFR, prep: markDown("eu-central", "eu-west", "us-east"),
			want: []string{"ap-ne"}, locCalls: 0},
		{name: "walk: continent list down: default list", svc: walk, addr: clientDE, prep: markDown("eu-west"),
			want: []string{"us-east"}, scope: 16, locCalls: 1},
		{name: "walk: no default: the rest in service order", svc: geoWalkNoDefault(), addr: clientFR, prep: markDown("eu-central", "eu-west"),
			want: []string{"ap-ne"}, scope: 24, locCalls: 1},
		{name: "walk: unknown place: default list", svc: walk, addr: clientNone, want: []string{"us-east"}, scope: 32, locCalls: 1},
		{name: "country beats continent", svc: geoService(), addr: clientFR, want: []string{"eu-central"}, scope: 24, locCalls: 1},
		{name: "continent when no country list", svc: geoService(), addr: clientDE, want: []string{"eu-west"}, scope: 16, locCalls: 1},
		{name: "default when neither", svc: geoService(), addr: clientBare, want: []string{"us-east"}, scope: 20, locCalls: 1},
		{name: "AS the continent (Asia)", svc: geoService(), addr: clientJP, want: []string{"ap-ne"}, scope: 24, locCalls: 1},
		{name: "AS the country (American Samoa)", svc: geoService(), addr: clientAS, want: []string{"us-east"}, scope: 24, locCalls: 1},
		{name: "continent NA", svc: geoService(), addr: clientUS, want: []string{"us-east"}, scope: 10, locCalls: 1},
		{name: "IPv6 client", svc: geoService(), addr: clientDE6, qtype: QTypeAAAA, want: []string{"eu-west"}, scope: 40, locCalls: 1},
		{name: "address in no network: default, scope of the whole address", svc: geoService(), addr: clientNone,
			want: []string{"us-east"}, scope: 32, locCalls: 1},
		{name: "no GeoIP database: default, scope 0", svc: geoService(), addr: clientFR, noLoc: true, want: []string{"us-east"}},
		{name: "ECS /0: default, no lookup", svc: geoService(), addr: clientFR, bits: -1, want: []string{"us-east"}, locCalls: 0},
		{name: "first of the list down: the next in the list", svc: geoService(), addr: clientFR, prep: markDown("eu-central"),
			want: []string{"eu-west"}, scope: 24, locCalls: 1},
		{name: "whole list down: remaining candidates in service order", svc: geoService(), addr: clientFR, prep: markDown("eu-central", "eu-west"),
			want: []string{"us-east"}, scope: 24, locCalls: 1},
		{name: "continent list down: service order", svc: geoService(), addr: clientUS, prep: markDown("us-east"),
			want: []string{"eu-west"}, scope: 10, locCalls: 1},
		{name: "no default, unknown place: service order", svc: noDefault, addr: clientBare, want: []string{"eu-west"}, scope: 20, locCalls: 1},
		{name: "only a default: no lookup, scope 0", svc: onlyDefault, addr: clientFR, want: []string{"us-east"}, locCalls: 0},
		{name: "single candidate: no lookup", svc: geoService(), addr: clientFR, prep: markDown("eu-west", "eu-central", "ap-ne"),
			want: []string{"us-east"}, locCalls: 0},
	})
}

func TestDecideNearest(t *testing.T) {
	tol := fourRegions(PolicyNearest)
	tol.NearestToleranceKm = 1000
	biasFar := fourRegions(PolicyNearest)
	biasFar.Regions[1].BiasKm = 1000 // eu-central: 423 km from Berlin becomes 1423, behind eu-west's 1317
	biasNear := fourRegions(PolicyNearest)
	biasNear.Regions[2].BiasKm = -6500 // us-east: 6727 km from Berlin becomes 227
	runSteerCases(t, []steerCase{
		{name: "nearest", svc: fourRegions(PolicyNearest), addr: clientDE, want: []string{"eu-central"}, scope: 16, locCalls: 1},
		{name: "nested network", svc: fourRegions(PolicyNearest), addr: clientIE, want: []string{"eu-west"}, scope: 25, locCalls: 1},
		{name: "Tokyo", svc: fourRegions(PolicyNearest), addr: clientJP, want: []string{"ap-ne"}, scope: 24, locCalls: 1},
		{name: "IPv6", svc: fourRegions(PolicyNearest), addr: clientDE6, qtype: QTypeAAAA, want: []string{"eu-central"}, scope: 40, locCalls: 1},
		{name: "tolerance keeps the near ones", svc: tol, addr: clientDE, want: []string{"eu-central", "eu-west"}, scope: 16, locCalls: 1},
		{name: "positive bias pushes away", svc: biasFar, addr: clientDE, want: []string{"eu-west"}, scope: 16, locCalls: 1},
		{name: "negative bias pulls in", svc: biasNear, addr: clientDE, want: []string{"us-east"}, scope: 16, locCalls: 1},
		{name: "nearest down: the next nearest", svc: fourRegions(PolicyNearest), addr: clientDE, prep: markDown("eu-central"),
			want: []string{"eu-west"}, scope: 16, locCalls: 1},
		{name: "no GeoIP database: all equal", svc: fourRegions(PolicyNearest), addr: clientDE, noLoc: true,
			want: []string{"eu-west", "eu-central", "us-east", "ap-ne"}},
		{name: "address in no network: all equal, scope of the whole address", svc: fourRegions(PolicyNearest), addr: clientNone,
			want: []string{"eu-west", "eu-central", "us-east", "ap-ne"}, scope: 32, locCalls: 1},
		{name: "location without coordinates: all equal", svc: fourRegions(PolicyNearest), addr: clientBare,
			want: []string{"eu-west", "eu-central", "us-east", "ap-ne"}, scope: 20, locCalls: 1},
	})
}

func TestDecideLatency(t *testing.T) {
	tol := fourRegions(PolicyLatency)
	tol.LatencyToleranceMs = 15
	tolFR := fourRegions(PolicyLatency)
	tolFR.LatencyToleranceMs = 2
	both := func(st *State) { withLatency(st) }
	// 198.18.1.9 matches 198.18.0.0/16, but 198.18.5.0/24 inside it
	// answers differently: the answer holds for 198.18.0.0/22 only.
	runSteerCases(t, []steerCase{
		{name: "fastest", svc: fourRegions(PolicyLatency), prep: both, addr: clientDE, want: []string{"eu-central"}, scope: 22},
		{name: "tolerance band", svc: tol, prep: both, addr: clientDE, want: []string{"eu-central", "eu-west"}, scope: 22},
		{name: "longest prefix", svc: fourRegions(PolicyLatency), prep: both, addr: clientFR, want: []string{"eu-west"}, scope: 24},
		{name: "longest prefix with tolerance", svc: tolFR, prep: both, addr: clientFR, want: []string{"eu-west", "eu-central"}, scope: 24},
		{name: "regions without RTT rank after", svc: fourRegions(PolicyLatency), prep: both, addr: clientUS, want: []string{"us-east"}, scope: 10},
		{name: "fastest down: next fastest", svc: fourRegions(PolicyLatency), prep: func(st *State) { withLatency(st); markDown("eu-central")(st) },
			addr: clientDE, want: []string{"eu-west"}, scope: 22},
		{name: "IPv6", svc: fourRegions(PolicyLatency), prep: both, addr: clientDE6, qtype: QTypeAAAA, want: []string{"eu-west"}, scope: 48},
		// 192.0.2.200 is in no latency prefix: the largest network around
		// it without entries is 192.0.0.0/13 (198.18/15 and 203/8 lie
		// outside it), so the GeoIP network /25 is the longer scope.
		{name: "unknown network: nearest", svc: fourRegions(PolicyLatency), prep: both, addr: clientIE, want: []string{"eu-west"}, scope: 25, locCalls: 1},
		{name: "RTT only for a down region: nearest", svc: fourRegions(PolicyLatency), prep: func(st *State) { withLatency(st); markDown("eu-west")(st) },
			addr: clientJP, want: []string{"ap-ne"}, scope: 24, locCalls: 1},
		{name: "no table: nearest", svc: fourRegions(PolicyLatency), addr: clientDE, want: []string{"eu-central"}, scope: 16, locCalls: 1},
		{name: "unknown network and no location: all equal", svc: fourRegions(PolicyLatency), prep: both, addr: clientNone,
			want: []string{"eu-west", "eu-central", "us-east", "ap-ne"}, scope: 32, locCalls: 1},
	})
}

func TestDecideAllDown(t *testing.T) {
	mk := func(mode AllDownMode, addrs ...string) *Service {
		s := steerService("d.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("eu-central", 2), svcRegion("us-east", 0))
		s.AllDown.Mode = mode
		for _, a := range addrs {
			s.AllDown.Addresses = append(s.AllDown.Addresses, netip.MustParseAddr(a))
		}
		return s
	}
	allDown := markDown("eu-west", "eu-central", "us-east")
	cases := []struct {
		name     string
		svc      *Service
		prep     func(*State)
		qtype    uint16
		kind     DecisionKind
		regions  []string // possible regions
		addrs    []string // for fallback
		failOpen bool
		fallback bool
	}{
		{name: "default is fail-open", svc: mk(""), prep: allDown, qtype: QTypeA, kind: KindAnswer,
			regions: []string{"eu-west", "eu-central"}, failOpen: true},
		{name: "fail-open", svc: mk(AllDownFailOpen), prep: allDown, qtype: QTypeAAAA, kind: KindAnswer,
			regions: []string{"eu-west", "eu-central"}, failOpen: true},
		{name: "fail-closed", svc: mk(AllDownFailClosed), prep: allDown, qtype: QTypeA, kind: KindNoData},
		{name: "fallback", svc: mk(AllDownFallback, "192.0.2.99", "2001:db8::99", "192.0.2.98"), prep: allDown, qtype: QTypeA,
			kind: KindAnswer, addrs: []string{"192.0.2.99", "192.0.2.98"}, fallback: true},
		{name: "fallback AAAA", svc: mk(AllDownFallback, "192.0.2.99", "2001:db8::99"), prep: allDown, qtype: QTypeAAAA,
			kind: KindAnswer, addrs: []string{"2001:db8::99"}, fallback: true},
		{name: "fallback without the family: NODATA", svc: mk(AllDownFallback, "192.0.2.99"), prep: allDown, qtype: QTypeAAAA,
			kind: KindNoData},
		{name: "fallback, one region up: no fallback", svc: mk(AllDownFallback, "192.0.2.99"), prep: markDown("eu-west", "us-east"), qtype: QTypeA,
			kind: KindAnswer, regions: []string{"eu-central"}},
		{name: "every region drained, fail-open: NODATA", svc: func() *Service {
			s := mk("")
			s.Regions[0].Weight, s.Regions[1].Weight = 0, 0
			return s
		}(), qtype: QTypeA, kind: KindNoData},
		{name: "every region drained, fallback", svc: func() *Service {
			s := mk(AllDownFallback, "192.0.2.99")
			s.Regions[0].Weight, s.Regions[1].Weight = 0, 0
			return s
		}(), qtype: QTypeA, kind: KindAnswer, addrs: []string{"192.0.2.99"}, fallback: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			v := mustView(t, s, tc.svc.Name)
			rng := splitmix(1)
			seen := map[string]bool{}
			for range 200 {
				d := s.Decide(v, newClient(clientDE, newLocator()), tc.qtype, rng.next())
				if d.Kind != tc.kind || d.FailOpen != tc.failOpen || d.Fallback != tc.fallback {
					t.Fatalf("decision %+v: want kind %v, fail open %v, fallback %v", d, tc.kind, tc.failOpen, tc.fallback)
				}
				if d.Scope != 0 && (d.Kind == KindNoData || d.Fallback) {
					t.Fatalf("scope %d for a NODATA or fallback", d.Scope)
				}
				if tc.addrs != nil {
					var got []string
					for _, a := range d.Addrs {
						got = append(got, a.String())
					}
					if !slices.Equal(got, tc.addrs) || d.Region != "" {
						t.Fatalf("fallback %v in region %q, want %v", got, d.Region, tc.addrs)
					}
				}
				if d.Kind == KindAnswer && tc.addrs == nil {
					seen[d.Region] = true
				}
			}
			for _, r := range tc.regions {
				if !seen[r] {
					t.Errorf("region %s never chosen (chosen: %v)", r, seen)
				}
			}
			if len(seen) != len(tc.regions) {
				t.Errorf("regions chosen %v, want %v", seen, tc.regions)
			}
		})
	}
}

func TestDecideDegradedTTL(t *testing.T) {
	mk := func(ttl, degraded uint32, weights ...uint32) *Service {
		s := steerService("t.example.", PolicyFailover, svcRegion("eu-west", weights[0]), svcRegion("eu-central", weights[1]))
		s.TTL, s.DegradedTTL = ttl, degraded
		return s
	}
	cases := []struct {
		name     string
		svc      *Service
		prep     func(*State)
		ttl      uint32
		degraded bool
		why      string // in explain's reason
	}{
		{"healthy", mk(60, 0, 1, 1), markUp("eu-west", "eu-central"), 60, false, ""},
		{"unknown without any prober is not degraded", mk(60, 0, 1, 1), nil, 60, false, ""},
		{"a region down, answer elsewhere: half", mk(60, 0, 1, 1), both(markUp("eu-west"), markDown("eu-central")), 30, true, "region eu-central is down"},
		{"explicit degraded TTL", mk(60, 10, 1, 1), both(markUp("eu-west"), markDown("eu-central")), 10, true, "region eu-central is down"},
		{"at least 1", mk(1, 0, 1, 1), both(markUp("eu-west"), markDown("eu-central")), 1, true, "region eu-central is down"},
		{"fail open", mk(60, 0, 1, 1), markDown("eu-west", "eu-central"), 30, true, "failing open"},
		{"a drained region down does not count", mk(60, 0, 1, 0), both(markUp("eu-west"), markDown("eu-central")), 60, false, ""},
		{"a drained region unknown does not count", mk(60, 0, 1, 0), markUp("eu-west"), 60, false, ""},
		// Probers that distrust themselves (a global outage): every
		// region unknown and answered, a guess like failing open.
		{"every prober untrusted: half", mk(60, 0, 1, 1), both(markDown("eu-west", "eu-central"), untrust("p1", "p2")), 30, true, "no counted vote on region eu-west while probers run"},
		{"a region not voted on while probers run: half", mk(60, 0, 1, 1), markUp("eu-west"), 30, true, "no counted vote on region eu-central while probers run"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			for _, q := range []uint16{QTypeA, QTypeAAAA} {
				d := s.Decide(mustView(t, s, "t.example."), newClient(clientDE, nil), q, 5)
				if d.TTL != tc.ttl || d.Degraded != tc.degraded {
					t.Fatalf("qtype %d: TTL %d degraded %v, want %d %v", q, d.TTL, d.Degraded, tc.ttl, tc.degraded)
				}
				_, e := s.Explain(mustView(t, s, "t.example."), newClient(clientDE, nil), q, 5)
				want := fmt.Sprintf("TTL %d;", tc.ttl)
				if tc.degraded {
					want = fmt.Sprintf("TTL %d (degraded: %s);", tc.ttl, tc.why)
				}
				if !strings.Contains(e.Reason, want) {
					t.Fatalf("qtype %d: explain says %q, want %q in it", q, e.Reason, want)
				}
			}
		})
	}
}

// TestDegradedTTLFollowsProbers: a snapshot built from the previous one
// (which shares the views of services whose regions did not change)
// lowers the TTL of a service with an unknown region when the first
// prober registers, and raises it again when the last one goes, though no
// region's status changed.
func TestDegradedTTLFollowsProbers(t *testing.T) {
	st := steerState(steerService("t.example.", PolicyFailover, svcRegion("eu-west", 1), svcRegion("eu-central", 1)))
	prev := buildSnap(t, st, SnapshotOptions{})
	for i, tc := range []struct {
		probers bool
		ttl     uint32
	}{{true, 30}, {true, 30}, {false, 60}} {
		st = st.Clone()
		st.Revision++
		clear(st.Probers)
		if tc.probers {
			st.Probers["p1"] = &ProberInfo{ID: "p1", Region: "eu-west", Lease: 100}
		}
		s := BuildSnapshot(st, prev, SnapshotOptions{})
		if d := s.Decide(mustView(t, s, "t.example."), newClient(clientDE, nil), QTypeA, 5); d.TTL != tc.ttl {
			t.Fatalf("step %d, probers %t: TTL %d, want %d", i, tc.probers, d.TTL, tc.ttl)
		}
		prev = s
	}
}

func TestDecideMaxAnswersAndRotation(t *testing.T) {
	// eu-west has four IPv4 VIPs.
	for _, tc := range []struct {
		max, count int
	}{{0, 4}, {1, 1}, {2, 2}, {4, 4}, {9, 4}} {
		t.Run("max_answers="+strconv.Itoa(tc.max), func(t *testing.T) {
			svc := steerService("m.example.", PolicyWeighted, svcRegion("eu-west", 1))
			svc.MaxAnswers = tc.max
			s := buildSnap(t, steerState(svc), SnapshotOptions{})
			v := mustView(t, s, "m.example.")
			starts := map[int]int{}
			firsts := map[netip.Addr]bool{}
			rng := splitmix(9)
			const n = 4000
			for range n {
				d := s.Decide(v, newClient(clientDE, nil), QTypeA, rng.next())
				if d.Count != tc.count || len(d.Addrs) != 4 || d.Start < 0 || d.Start >= 4 {
					t.Fatalf("count %d of %d from %d, want %d of 4", d.Count, len(d.Addrs), d.Start, tc.count)
				}
				seen := map[netip.Addr]bool{}
				for i := range d.Count {
					a := d.Addr(i)
					if seen[a] {
						t.Fatalf("%s twice in one answer", a)
					}
					seen[a] = true
				}
				// The rotation is in the region's order.
				if d.Count > 1 && d.Addr(1) != d.Addrs[(d.Start+1)%4] {
					t.Fatalf("Addr(1) = %s, want %s", d.Addr(1), d.Addrs[(d.Start+1)%4])
				}
				starts[d.Start]++
				firsts[d.Addr(0)] = true
			}
			if len(firsts) != 4 {
				t.Fatalf("first addresses %v: want each of the 4 first some time", firsts)
			}
			// Each start is a binomial(n, 1/4) draw: allow 5 sigma.
			mean, sigma := n/4.0, math.Sqrt(n*0.25*0.75)
			for st, c := range starts {
				if math.Abs(float64(c)-mean) > 5*sigma {
					t.Errorf("start %d in %d of %d answers, want %.0f ± %.0f", st, c, n, mean, 5*sigma)
				}
			}
		})
	}
}

// TestDecideWeightedShares draws many times and checks every region's
// share against its weight, within 5 binomial standard deviations. The
// draws come from a seeded PRNG, so the outcome is fixed: the bound is
// there to say what is expected, not to hide flakiness.
func TestDecideWeightedShares(t *testing.T) {
	cases := []struct {
		name    string
		weights map[string]uint32
		prep    func(*State)
	}{
		{"equal", map[string]uint32{"eu-west": 1, "eu-central": 1, "us-east": 1, "ap-ne": 1}, nil},
		{"1:2:3:4", map[string]uint32{"eu-west": 1, "eu-central": 2, "us-east": 3, "ap-ne": 4}, nil},
		{"skewed", map[string]uint32{"eu-west": 1000, "eu-central": 10, "us-east": 1, "ap-ne": 0}, nil},
		{"one down", map[string]uint32{"eu-west": 1, "eu-central": 2, "us-east": 3, "ap-ne": 4}, markDown("us-east")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := steerService("w.example.", PolicyWeighted)
			for _, r := range []string{"eu-west", "eu-central", "us-east", "ap-ne"} {
				svc.Regions = append(svc.Regions, svcRegion(r, tc.weights[r]))
			}
			st := steerState(svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			var total float64
			for _, r := range svc.Regions {
				if rs, _ := s.RegionStatus(r.Region); rs.Status != HealthDown {
					total += float64(r.Weight)
				}
			}
			const n = 200_000
			counts := regionCounts(s, mustView(t, s, "w.example."), newClient(clientDE, nil), QTypeA, n, 2026)
			for _, r := range svc.Regions {
				p := float64(r.Weight) / total
				if rs, _ := s.RegionStatus(r.Region); rs.Status == HealthDown {
					p = 0
				}
				mean, sigma := n*p, math.Sqrt(n*p*(1-p))
				got := float64(counts[r.Region])
				if math.Abs(got-mean) > 5*sigma || (p == 0 && got != 0) {
					t.Errorf("%s: %v of %d draws, want %.0f ± %.0f (weight %d)", r.Region, got, n, mean, 5*sigma, r.Weight)
				}
				t.Logf("%s: weight %d, share %.4f, expected %.4f", r.Region, r.Weight, got/n, p)
			}
		})
	}
}

// TestDecideScope checks the ECS scope of each policy and how the client's
// own prefix length caps it.
func TestDecideScope(t *testing.T) {
	sticky := fourRegions(PolicyWeighted)
	sticky.Sticky = true
	stickyFailover := fourRegions(PolicyFailover)
	stickyFailover.Sticky = true
	cases := []struct {
		name  string
		svc   *Service
		opts  SnapshotOptions
		addr  netip.Addr
		bits  int
		qtype uint16
		scope int
	}{
		{"weighted", fourRegions(PolicyWeighted), SnapshotOptions{}, clientDE, 32, QTypeA, 0},
		{"failover", fourRegions(PolicyFailover), SnapshotOptions{}, clientDE, 32, QTypeA, 0},
		{"sticky failover: one candidate, no hash", stickyFailover, SnapshotOptions{}, clientDE, 32, QTypeA, 0},
		{"sticky v4", sticky, SnapshotOptions{}, clientDE, 32, QTypeA, 24},
		{"sticky v4 capped by ECS /20", sticky, SnapshotOptions{}, clientDE, 20, QTypeA, 20},
		{"sticky v4 /28 option", sticky, SnapshotOptions{StickyBitsV4: 28}, clientDE, 32, QTypeA, 28},
		{"sticky v6", sticky, SnapshotOptions{}, clientDE6, 128, QTypeAAAA, 56},
		{"sticky v6 capped by ECS /48", sticky, SnapshotOptions{}, clientDE6, 48, QTypeAAAA, 48},
		{"sticky v6 client asking A", sticky, SnapshotOptions{}, clientDE6, 128, QTypeA, 56},
		{"sticky v4 client asking AAAA", sticky, SnapshotOptions{}, clientDE, 32, QTypeAAAA, 24},
		{"sticky ECS /0", sticky, SnapshotOptions{}, clientDE, 0, QTypeA, 0},
		{"geo", geoService(), SnapshotOptions{}, clientFR, 32, QTypeA, 24},
		{"geo capped by ECS /20", geoService(), SnapshotOptions{}, clientFR, 20, QTypeA, 20},
		{"geo v6", geoService(), SnapshotOptions{}, clientDE6, 128, QTypeAAAA, 40},
		{"geo v6 capped by ECS /32", geoService(), SnapshotOptions{}, clientDE6, 32, QTypeAAAA, 32},
		{"nearest", fourRegions(PolicyNearest), SnapshotOptions{}, clientDE, 32, QTypeA, 16},
		{"nearest v6", fourRegions(PolicyNearest), SnapshotOptions{}, clientDE6, 56, QTypeA, 40},
		{"latency", fourRegions(PolicyLatency), SnapshotOptions{}, clientFR, 32, QTypeA, 24},
		{"latency capped", fourRegions(PolicyLatency), SnapshotOptions{}, clientFR, 22, QTypeA, 22},
		{"latency v6", fourRegions(PolicyLatency), SnapshotOptions{}, clientDE6, 56, QTypeAAAA, 48},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			withLatency(st)
			s := buildSnap(t, st, tc.opts)
			c := &Client{Addr: tc.addr, Bits: tc.bits, Locator: newLocator()}
			rng := splitmix(3)
			for range 50 {
				d := s.Decide(mustView(t, s, tc.svc.Name), c, tc.qtype, rng.next())
				if d.Kind != KindAnswer || d.Scope != tc.scope {
					t.Fatalf("decision %+v: want an answer with scope %d", d, tc.scope)
				}
			}
		})
	}
}

// TestDecideSticky checks the rendezvous hash over 100,000 client
// networks: a client keeps its region, weights set the shares, and
// removing a region moves only that region's clients.
func TestDecideSticky(t *testing.T) {
	regions := []string{"eu-west", "eu-central", "us-east", "ap-ne"}
	mk := func(weights ...uint32) *Service {
		s := steerService("s.example.", PolicyWeighted)
		s.Sticky = true
		for i, r := range regions {
			if weights[i] > 0 {
				s.Regions = append(s.Regions, svcRegion(r, weights[i]))
			}
		}
		return s
	}
	const n = 100_000
	clients := make([]*Client, n)
	rng := splitmix(77)
	for i := range clients {
		x := rng.next()
		if i%2 == 0 {
			clients[i] = &Client{Addr: netip.AddrFrom4([4]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}), Bits: 32}
		} else {
			var b [16]byte
			for j := range 8 {
				b[j] = byte(x >> (8 * j))
			}
			b[0] = 0x20
			clients[i] = &Client{Addr: netip.AddrFrom16(b), Bits: 64}
		}
	}
	decideAll := func(s *Snapshot) []string {
		v := mustView(t, s, "s.example.")
		out := make([]string, n)
		rr := splitmix(5)
		for i, c := range clients {
			q := uint16(QTypeA)
			if c.Addr.Is6() {
				q = QTypeAAAA
			}
			d := s.Decide(v, c, q, rr.next())
			// The choice ignores rnd: decide again with another.
			if again := s.Decide(v, c, q, ^rr.next()); again.Region != d.Region {
				t.Fatalf("client %s: %s then %s", c.Addr, d.Region, again.Region)
			}
			out[i] = d.Region
		}
		return out
	}

	t.Run("remove a region", func(t *testing.T) {
		before := decideAll(buildSnap(t, steerState(mk(1, 1, 1, 1)), SnapshotOptions{}))
		after := decideAll(buildSnap(t, steerState(mk(1, 1, 0, 1)), SnapshotOptions{}))
		moved, movedOthers, hadRemoved := 0, 0, 0
		for i := range before {
			if before[i] == "us-east" {
				hadRemoved++
			}
			if before[i] != after[i] {
				moved++
				if before[i] != "us-east" {
					movedOthers++
				}
			}
		}
		frac := float64(moved) / n
		t.Logf("removing us-east of 4 equal regions moved %d of %d clients (%.4f); %d of them had us-east; %d others moved",
			moved, n, frac, hadRemoved, movedOthers)
		if movedOthers != 0 || moved != hadRemoved {
			t.Fatalf("%d clients of other regions moved", movedOthers)
		}
		if sigma := math.Sqrt(n * 0.25 * 0.75); math.Abs(float64(moved)-n/4) > 5*sigma {
			t.Fatalf("moved %d, want %.0f ± %.0f", moved, n/4.0, 5*sigma)
		}
	})
	t.Run("a down region moves only its clients and they come back", func(t *testing.T) {
		before := decideAll(buildSnap(t, steerState(mk(1, 1, 1, 1)), SnapshotOptions{}))
		st := steerState(mk(1, 1, 1, 1))
		markDown("eu-west")(st)
		during := decideAll(buildSnap(t, st, SnapshotOptions{}))
		for i := range before {
			if before[i] != during[i] && before[i] != "eu-west" {
				t.Fatalf("client %d moved from %s though it is up", i, before[i])
			}
			if during[i] == "eu-west" {
				t.Fatalf("client %d on a down region", i)
			}
		}
		after := decideAll(buildSnap(t, steerState(mk(1, 1, 1, 1)), SnapshotOptions{}))
		if !slices.Equal(before, after) {
			t.Fatal("clients did not come back to the same regions")
		}
	})
	t.Run("weights", func(t *testing.T) {
		weights := []uint32{1, 2, 3, 4}
		got := decideAll(buildSnap(t, steerState(mk(weights...)), SnapshotOptions{}))
		counts := map[string]int{}
		for _, r := range got {
			counts[r]++
		}
		for i, r := range regions {
			p := float64(weights[i]) / 10
			mean, sigma := n*p, math.Sqrt(n*p*(1-p))
			t.Logf("%s: weight %d, share %.4f, expected %.4f", r, weights[i], float64(counts[r])/n, p)
			if math.Abs(float64(counts[r])-mean) > 5*sigma {
				t.Errorf("%s: %d of %d clients, want %.0f ± %.0f", r, counts[r], n, mean, 5*sigma)
			}
		}
	})
	t.Run("same network, same region", func(t *testing.T) {
		s := buildSnap(t, steerState(mk(1, 1, 1, 1)), SnapshotOptions{})
		v := mustView(t, s, "s.example.")
		for i := range 1000 {
			a := netip.AddrFrom4([4]byte{198, 51, byte(i), 0})
			first := s.Decide(v, &Client{Addr: a, Bits: 32}, QTypeA, 1).Region
			for host := range 256 {
				b := netip.AddrFrom4([4]byte{198, 51, byte(i), byte(host)})
				if r := s.Decide(v, &Client{Addr: b, Bits: 32}, QTypeA, uint64(host)).Region; r != first {
					t.Fatalf("%s: %s, but %s: %s (same /24)", a, first, b, r)
				}
			}
		}
	})
}

func TestServiceLookup(t *testing.T) {
	s := buildSnap(t, steerState(geoService(), fourRegions(PolicyWeighted)), SnapshotOptions{})
	if v := s.ServiceByName("GEO.example"); v == nil || v.Service().Policy != PolicyGeo {
		t.Fatalf("ServiceByName = %v", v)
	}
	if v := s.ServiceByName("nope.example."); v != nil {
		t.Fatal("found a service that does not exist")
	}
	var names []string
	for _, v := range s.Services() {
		names = append(names, v.Name())
	}
	if !slices.Equal(names, []string{"geo.example.", "svc.example."}) {
		t.Fatalf("Services() = %v", names)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.ServiceByName("svc.example.") }); n != 0 {
		t.Fatalf("ServiceByName allocates %v times", n)
	}
}

// TestDistanceKm checks the vector form of the distance against
// geo.DistanceKm, from a few metres to the antipodes.
func TestDistanceKm(t *testing.T) {
	rng := splitmix(4)
	unit := func() float64 { return float64(rng.next()>>11) / (1 << 53) }
	for i := range 20000 {
		lat1, lon1 := unit()*180-90, unit()*360-180
		lat2, lon2 := unit()*180-90, unit()*360-180
		switch i % 4 {
		case 1: // near
			lat2, lon2 = lat1+(unit()-0.5)*1e-3, lon1+(unit()-0.5)*1e-3
		case 2: // near the antipode
			lat2, lon2 = -lat1+(unit()-0.5)*1e-3, lon1+180
		}
		bias := float64(i%3-1) * 100
		vec := unitVector(lat2, lon2)
		sl := slot{slotConst: &slotConst{biasKm: bias}, vec: &vec}
		got := sl.distanceKm(unitVector(lat1, lon1))
		want := geo.DistanceKm(lat1, lon1, lat2, lon2) + bias
		// Near the antipodes both formulas lose precision in the arcsine
		// (its slope is infinite at 1): allow a metre there.
		tol := 1e-6
		if i%4 == 2 {
			tol = 1e-3
		}
		if math.Abs(got-want) > tol {
			t.Fatalf("(%v,%v)-(%v,%v): %v km, geo.DistanceKm %v km", lat1, lon1, lat2, lon2, got, want)
		}
	}
}

// TestDecidePerVIP: answers carry only a region's healthy VIPs; a region
// is answered away from for a family whose every VIP is down; failing
// open answers every VIP; only votes of registered, trusted probers under
// their registration lease count.
func TestDecidePerVIP(t *testing.T) {
	svc := steerService("w.example.", PolicyFailover, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	// vote sets prober's vote on the listed VIPs of eu-west; the others
	// stay up.
	vote := func(st *State, prober string, down ...string) *HealthReport {
		h := report(st, "eu-west", prober, true)
		for i := range h.VIPs {
			for _, d := range down {
				if h.VIPs[i].Addr == netip.MustParseAddr(d) {
					h.VIPs[i].Up = false
				}
			}
		}
		if st.Health["eu-west"] == nil {
			st.Health["eu-west"] = map[string]*HealthReport{}
		}
		st.Health["eu-west"][prober] = h
		return h
	}
	cases := []struct {
		name   string
		prep   func(*State)
		qtype  uint16
		region string
		addrs  []string
		open   bool
	}{
		{"all unknown", nil, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, false},
		{"two VIPs down", func(st *State) {
			vote(st, "p1", "192.0.2.2", "192.0.2.4")
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.3"}, false},
		{"every A VIP down: answered away from for A", func(st *State) {
			vote(st, "p1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
		}, QTypeA, "us-east", []string{"198.51.100.1"}, false},
		{"every A VIP down: AAAA still answered", func(st *State) {
			vote(st, "p1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
		}, QTypeAAAA, "eu-west", []string{"2001:db8:1::1"}, false},
		{"everything down: fail open answers every VIP", func(st *State) {
			vote(st, "p1", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "2001:db8:1::1")
			setReports(st, "us-east", false)
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, true},
		{"untrusted votes do not count", func(st *State) {
			vote(st, "p1", "192.0.2.1").Trusted = false
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, false},
		{"votes of an unregistered prober do not count", func(st *State) {
			vote(st, "p1", "192.0.2.1")
			delete(st.Probers, "p1")
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, false},
		{"a report under another lease than the registration does not count", func(st *State) {
			vote(st, "p1", "192.0.2.1").Lease = 9999
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, false},
		{"a VIP the region no longer has is ignored", func(st *State) {
			h := vote(st, "p1")
			h.VIPs = append(h.VIPs, VIPHealth{Addr: netip.MustParseAddr("192.0.2.99")})
		}, QTypeA, "eu-west", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			v := mustView(t, s, "w.example.")
			d := s.Decide(v, newClient(clientDE, nil), tc.qtype, 1)
			var got []string
			for i := range d.Count {
				got = append(got, d.Addr(i).String())
			}
			slices.Sort(got)
			if d.Region != tc.region || !slices.Equal(got, tc.addrs) || d.FailOpen != tc.open {
				t.Fatalf("decision %s %v (fail open %v), want %s %v (%v)", d.Region, got, d.FailOpen, tc.region, tc.addrs, tc.open)
			}
			_, e := s.Explain(v, newClient(clientDE, nil), tc.qtype, 1)
			if e.Decision.Region != d.Region {
				t.Fatalf("explain chose %s", e.Decision.Region)
			}
		})
	}
}
