package regions

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// randomSnapshot builds a snapshot of random services over the test
// regions, with random health, weights, tolerances and a latency table.
func randomSnapshot(t *testing.T, rng *rand.Rand) *Snapshot {
	t.Helper()
	names := []string{"eu-west", "eu-central", "us-east", "ap-ne", "v4-only", "v6-only"}
	policies := []Policy{PolicyWeighted, PolicyFailover, PolicyGeo, PolicyNearest, PolicyLatency}
	var services []*Service
	for i := range 30 {
		p := policies[i%len(policies)]
		svc := steerService("s"+strconv.Itoa(i)+".example.", p)
		for _, j := range rng.Perm(len(names))[:1+rng.IntN(len(names))] {
			svc.Regions = append(svc.Regions, ServiceRegion{Region: names[j], Weight: uint32(rng.IntN(4)), BiasKm: float64(rng.IntN(3)-1) * 500})
		}
		svc.Sticky = rng.IntN(2) == 0
		if rng.IntN(2) == 0 {
			svc.Load = &LoadSteering{LowWatermark: 0.6, HighWatermark: 0.8}
		}
		svc.MaxAnswers = rng.IntN(3)
		svc.NearestToleranceKm = float64(rng.IntN(3)) * 400
		svc.LatencyToleranceMs = float64(rng.IntN(3)) * 8
		switch rng.IntN(3) {
		case 1:
			svc.AllDown.Mode = AllDownFailClosed
		case 2:
			svc.AllDown.Mode = AllDownFallback
			svc.AllDown.Addresses = []netip.Addr{netip.MustParseAddr("192.0.2.250")}
		}
		if p == PolicyGeo {
			pick := func() []string {
				var l []string
				for _, j := range rng.Perm(len(svc.Regions))[:1+rng.IntN(len(svc.Regions))] {
					l = append(l, svc.Regions[j].Region)
				}
				return l
			}
			svc.Geo = &GeoMap{Countries: map[string][]string{"FR": pick(), "AS": pick()}, Continents: map[string][]string{"EU": pick(), "AS": pick()}}
			if rng.IntN(2) == 0 {
				svc.Geo.Default = pick()
			}
		}
		services = append(services, svc)
	}
	st := steerState(services...)
	withLatency(st)
	for _, n := range names {
		if rng.IntN(3) == 0 {
			// Busy regions: the load factors of the services steering by
			// load take their first step down.
			setLoad(st, n, time.Now(), 0.5+rng.Float64()/2, 0.9+rng.Float64()/2)
			continue
		}
		if k := rng.IntN(4); k > 0 {
			ups := make([]bool, k)
			for i := range ups {
				ups[i] = rng.IntN(3) > 0
			}
			setReports(st, n, ups...)
		}
	}
	return buildSnap(t, st, SnapshotOptions{})
}

// TestExplainAgreesWithDecide runs random decisions through both and
// requires identical results.
func TestExplainAgreesWithDecide(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	addrs := []netip.Addr{clientDE, clientFR, clientUS, clientJP, clientAS, clientIE, clientNone, clientDE6, clientBare,
		netip.MustParseAddr("2001:db8:100:ff::1"), netip.MustParseAddr("2001:db8:ffff::1")}
	kinds := map[string]int{}
	spilled := 0
	for round := range 20 {
		s := randomSnapshot(t, rng)
		for range 250 {
			v := s.Services()[rng.IntN(len(s.Services()))]
			a := addrs[rng.IntN(len(addrs))]
			c := &Client{Addr: a, Bits: a.BitLen() - rng.IntN(3)*8}
			if rng.IntN(4) > 0 {
				c.Locator = newLocator()
			}
			switch rng.IntN(20) {
			case 0:
				c.Bits = 0
			case 1:
				c = nil
			}
			qtype := []uint16{QTypeA, QTypeAAAA, QTypeA, QTypeAAAA, 16}[rng.IntN(5)]
			rnd := rng.Uint64()

			want := s.Decide(v, c, qtype, rnd)
			got, e := s.Explain(v, c, qtype, rnd)
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(e.Decision, want) {
				t.Fatalf("round %d, %s client %+v qtype %d rnd %d:\nDecide  %+v\nExplain %+v", round, v.Name(), c, qtype, rnd, want, got)
			}
			checkExplanation(t, e, &want)
			for _, st := range e.Steps {
				if st.Step == "spill" && len(st.Result) == 0 {
					spilled++
				}
			}
			switch {
			case want.Kind == KindNoData:
				kinds["nodata"]++
			case want.Fallback:
				kinds["fallback"]++
			case want.FailOpen:
				kinds["fail-open"]++
			default:
				kinds[string(e.Policy)]++
			}
		}
	}
	t.Logf("decisions compared: %v (%d spilled)", kinds, spilled)
	if spilled == 0 {
		t.Error("no decision spilled among the random inputs")
	}
	for _, k := range []string{"nodata", "fallback", "fail-open", "weighted", "failover", "geo", "nearest", "latency"} {
		if kinds[k] == 0 {
			t.Errorf("no %s decision among the random inputs", k)
		}
	}
}

// checkExplanation checks what every explanation must say about its
// decision.
func checkExplanation(t *testing.T, e *Explanation, d *Decision) {
	t.Helper()
	if _, err := json.Marshal(e); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if len(e.Answer) != d.Count {
		t.Fatalf("answer %v, count %d", e.Answer, d.Count)
	}
	if d.Kind == KindAnswer && !d.Fallback {
		last := e.Steps[len(e.Steps)-1]
		for k := len(e.Steps) - 2; (last.Step == "spill" || last.Step == "vip-ramp") && slices.Equal(last.Result, []string{d.Region}); k-- {
			// The client stays with a region that keeps part of its
			// clients, or VIPs of it ramp in: the choice before.
			last = e.Steps[k]
		}
		if last.Step != "weights" || !slices.Equal(last.Result, []string{d.Region}) {
			t.Fatalf("last step %+v, want weights choosing %s", last, d.Region)
		}
		for _, c := range last.Candidates {
			if c.Kept != (c.Region == d.Region) {
				t.Fatalf("weights step candidate %+v, chosen %s", c, d.Region)
			}
		}
	}
	for _, st := range e.Steps {
		if st.Reason == "" {
			t.Fatalf("step %s has no reason", st.Step)
		}
	}
}

func TestExplainSteps(t *testing.T) {
	nearTol := fourRegions(PolicyNearest)
	nearTol.NearestToleranceKm = 1000
	sticky := fourRegions(PolicyWeighted)
	sticky.Sticky = true
	cases := []struct {
		name    string
		svc     *Service
		prep    func(*State)
		addr    netip.Addr
		qtype   uint16
		steps   []string
		results [][]string // per step; nil to skip
		reason  []string   // substrings of the steps' reasons, in order
		check   func(t *testing.T, e *Explanation)
	}{
		{
			name: "geo country", svc: geoService(), prep: markDown("us-east"), addr: clientFR, qtype: QTypeA,
			steps:   []string{"family", "health", "preference", "weights"},
			results: [][]string{{"eu-west", "eu-central", "us-east", "ap-ne"}, {"eu-west", "eu-central", "ap-ne"}, {"eu-central"}, {"eu-central"}},
			reason: []string{"4 of 4 regions have A addresses",
				"3 of 4 candidates up (a VIP is down only when more than 0.5 of its counted votes say down, a tie stays up;", `country "FR"`, "a single candidate"},
			check: func(t *testing.T, e *Explanation) {
				l := e.Client.Location
				if l == nil || l.Country != "FR" || l.Network.String() != "198.18.5.0/24" || l.Scope != 24 {
					t.Fatalf("location %+v", l)
				}
				if !strings.Contains(e.Steps[1].Candidates[2].Note, "198.51.100.1 down (2 of 2 probers say down)") {
					t.Fatalf("health note %q", e.Steps[1].Candidates[2].Note)
				}
			},
		},
		{
			name: "geo walks country, continent, default", svc: geoWalk(), prep: markDown("eu-central"), addr: clientFR, qtype: QTypeA,
			steps:   []string{"family", "health", "preference", "weights"},
			results: [][]string{nil, nil, {"eu-west"}, {"eu-west"}},
			reason:  []string{"", "", "no candidate in the country FR list; the continent EU list applies", ""},
			check: func(t *testing.T, e *Explanation) {
				for _, c := range e.Steps[2].Candidates {
					if c.Region == "eu-west" && c.Note != "continent EU list position 1" {
						t.Fatalf("eu-west note %q", c.Note)
					}
				}
			},
		},
		{
			name: "geo falls through every list", svc: geoWalkNoDefault(), prep: markDown("eu-central", "eu-west"), addr: clientFR, qtype: QTypeA,
			steps:   []string{"family", "health", "preference", "weights"},
			results: [][]string{nil, nil, {"ap-ne"}, {"ap-ne"}},
			reason:  []string{"", "", "no candidate in the country FR list, then the continent EU list: the first remaining candidate in the service's order", ""},
		},
		{
			name: "nearest with tolerance and weights", svc: nearTol, addr: clientDE, qtype: QTypeAAAA,
			steps:   []string{"family", "health", "preference", "weights"},
			results: [][]string{nil, nil, {"eu-west", "eu-central"}, nil},
			reason:  []string{"", "", "423 km", "weighted random"},
			check: func(t *testing.T, e *Explanation) {
				for _, c := range e.Steps[2].Candidates {
					if c.DistanceKm == nil {
						t.Fatalf("candidate %s without distance", c.Region)
					}
				}
			},
		},
		{
			name: "latency falls back to nearest", svc: fourRegions(PolicyLatency), prep: withLatency, addr: clientIE, qtype: QTypeA,
			steps:   []string{"family", "health", "preference", "preference", "weights"},
			results: [][]string{nil, nil, nil, {"eu-west"}, {"eu-west"}},
			reason:  []string{"", "", "not in the latency table; falling back to nearest", "nearest", ""},
			check: func(t *testing.T, e *Explanation) {
				if e.Client.Latency == nil || e.Client.Latency.Matched {
					t.Fatalf("latency %+v", e.Client.Latency)
				}
			},
		},
		{
			name: "latency", svc: fourRegions(PolicyLatency), prep: withLatency, addr: clientFR, qtype: QTypeA,
			steps:   []string{"family", "health", "preference", "weights"},
			results: [][]string{nil, nil, {"eu-west"}, nil},
			reason:  []string{"", "", "10 ms for 198.18.5.0/24", ""},
			check: func(t *testing.T, e *Explanation) {
				if l := e.Client.Latency; l == nil || !l.Matched || len(l.RTTs) != 2 || l.Scope != 24 {
					t.Fatalf("latency %+v", l)
				}
			},
		},
		{
			name: "sticky", svc: sticky, addr: clientDE, qtype: QTypeA,
			steps:  []string{"family", "health", "preference", "weights"},
			reason: []string{"", "", "weighted", "rendezvous hash of the client network 198.18.1.0/24"},
			check: func(t *testing.T, e *Explanation) {
				for _, c := range e.Steps[3].Candidates {
					if c.Score == nil {
						t.Fatalf("candidate %s without a score", c.Region)
					}
				}
			},
		},
		{
			name: "fail open", svc: fourRegions(PolicyFailover), prep: markDown("eu-west", "eu-central", "us-east", "ap-ne"), addr: clientDE, qtype: QTypeA,
			steps:  []string{"family", "health", "all-down", "preference", "weights"},
			reason: []string{"", "0 of 4", "fail-open", "failover", ""},
			check: func(t *testing.T, e *Explanation) {
				if !e.Decision.FailOpen || !strings.Contains(e.Reason, "failing open") {
					t.Fatalf("decision %+v reason %q", e.Decision, e.Reason)
				}
			},
		},
		{
			name: "no family", svc: steerService("n.example.", PolicyWeighted, svcRegion("v4-only", 1)), addr: clientDE, qtype: QTypeAAAA,
			steps:  []string{"family"},
			reason: []string{"NODATA (not an all-down event)"},
		},
		{
			name: "other type", svc: fourRegions(PolicyWeighted), addr: clientDE, qtype: 15,
			steps:  []string{"family"},
			reason: []string{"neither A nor AAAA"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.prep != nil {
				tc.prep(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			d, e := s.Explain(mustView(t, s, tc.svc.Name), newClient(tc.addr, newLocator()), tc.qtype, 99)
			var names []string
			for _, st := range e.Steps {
				names = append(names, st.Step)
			}
			if !slices.Equal(names, tc.steps) {
				t.Fatalf("steps %v, want %v", names, tc.steps)
			}
			for i, r := range tc.results {
				if r != nil && !slices.Equal(e.Steps[i].Result, r) {
					t.Fatalf("step %d (%s) result %v, want %v", i, names[i], e.Steps[i].Result, r)
				}
			}
			for i, r := range tc.reason {
				if !strings.Contains(e.Steps[i].Reason, r) {
					t.Fatalf("step %d (%s) reason %q, want %q in it", i, names[i], e.Steps[i].Reason, r)
				}
			}
			checkExplanation(t, e, &d)
			if tc.check != nil {
				tc.check(t, e)
			}
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(b, &back); err != nil || back["decision"].(map[string]any)["kind"] != d.Kind.String() {
				t.Fatalf("JSON %s: %v", b, err)
			}
		})
	}
}

// geoWalk is a geo service whose lists and order all differ.
func geoWalk() *Service {
	s := steerService("geo.example.", PolicyGeo, svcRegion("ap-ne", 1), svcRegion("us-east", 1), svcRegion("eu-west", 1), svcRegion("eu-central", 1))
	s.Geo = &GeoMap{
		Countries:  map[string][]string{"FR": {"eu-central"}},
		Continents: map[string][]string{"EU": {"eu-west"}},
		Default:    []string{"us-east"},
	}
	return s
}

func geoWalkNoDefault() *Service {
	s := geoWalk()
	s.Geo.Default = nil
	return s
}
