package regions

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestNoAnswer checks NoAnswer against the decisions of a snapshot: with
// every region up, a type is answered NODATA exactly when NoAnswer lists
// it, and with every region down the types it lists stay NODATA.
func TestNoAnswer(t *testing.T) {
	drained := func(name string) func(*State) {
		return func(st *State) {
			r := *st.Regions[name]
			r.Drained = true
			st.Regions[name] = &r
		}
	}
	fallback := func(addrs ...string) AllDown {
		ad := AllDown{Mode: AllDownFallback}
		for _, a := range addrs {
			ad.Addresses = append(ad.Addresses, netip.MustParseAddr(a))
		}
		return ad
	}
	cases := []struct {
		name    string
		policy  Policy
		regions []ServiceRegion
		allDown AllDown
		change  func(*State)
		want    []string
		reason  string // part of the reason
	}{
		{name: "weights above 0", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 1), svcRegion("us-east", 0)}},
		{name: "every weight 0", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 0), svcRegion("us-east", 0)},
			want: []string{"A", "AAAA"}, reason: "every region it lists is drained or has weight 0"},
		{name: "every weight 0, failover", policy: PolicyFailover, regions: []ServiceRegion{svcRegion("eu-west", 0), svcRegion("us-east", 0)},
			want: []string{"A", "AAAA"}},
		{name: "the last region drained", policy: PolicyFailover, regions: []ServiceRegion{svcRegion("eu-west", 1), svcRegion("us-east", 0)},
			change: drained("eu-west"), want: []string{"A", "AAAA"}},
		{name: "another region drained", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 1), svcRegion("us-east", 1)},
			change: drained("eu-west")},
		{name: "fail-closed with a candidate", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 1)},
			allDown: AllDown{Mode: AllDownFailClosed}},
		{name: "only an IPv6 region left", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("v4-only", 0), svcRegion("v6-only", 1)},
			want: []string{"A"}, reason: "no region it answers from (weight above 0, not drained) has an IPv4 VIP"},
		{name: "an IPv4-only service", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("v4-only", 1)},
			want: []string{"AAAA"}, reason: "no region it lists has an IPv6 VIP"},
		{name: "fallback addresses answer", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 0)},
			allDown: fallback("192.0.2.99", "2001:db8::99")},
		{name: "fallback of one family", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("eu-west", 0)},
			allDown: fallback("192.0.2.99"), want: []string{"AAAA"}},
		{name: "fallback of a family no region has", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("v4-only", 0)},
			allDown: fallback("2001:db8::99"), want: []string{"A", "AAAA"}},
		{name: "an unknown region", policy: PolicyWeighted, regions: []ServiceRegion{svcRegion("nowhere", 1)},
			want: []string{"A", "AAAA"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := steerService("svc.example.", tc.policy, tc.regions...)
			svc.AllDown = tc.allDown
			st := steerState(svc)
			if tc.change != nil {
				tc.change(st)
			}
			un := NoAnswer(svc, st.Regions)
			var types []string
			for _, u := range un {
				types = append(types, u.Type)
				if !strings.Contains(u.Reason, tc.reason) || u.Reason == "" {
					t.Errorf("%s: reason %q, want %q", u.Type, u.Reason, tc.reason)
				}
			}
			if !slices.Equal(types, tc.want) {
				t.Fatalf("NoAnswer = %+v; want %v", un, tc.want)
			}
			check := func(st *State, health string, exact bool) {
				snap := BuildSnapshot(st, nil, SnapshotOptions{})
				v := snap.ServiceByName(svc.Name)
				for _, qt := range []struct {
					name string
					code uint16
				}{{"A", QTypeA}, {"AAAA", QTypeAAAA}} {
					d := snap.Decide(v, nil, qt.code, 1)
					listed := slices.Contains(types, qt.name)
					if listed && d.Kind != KindNoData || exact && !listed && d.Kind != KindAnswer {
						t.Errorf("every region %s: %s decided %v; NoAnswer lists %v", health, qt.name, d.Kind, types)
					}
				}
			}
			check(st, "up", true)
			down := st.Clone()
			for name := range down.Regions {
				setReports(down, name, false)
			}
			check(down, "down", false)
		})
	}
}
