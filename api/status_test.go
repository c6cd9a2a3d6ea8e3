package api

import (
	"net/netip"
	"testing"

	"github.com/meridian-gslb/meridian/regions"
)

func TestRegionReason(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	down := func(prober, reason string) regions.Vote {
		return regions.Vote{Prober: prober, Counted: true, Reason: reason}
	}
	up := regions.Vote{Prober: "p9", Counted: true, Up: true}
	cases := []struct {
		name string
		rs   regions.RegionStatus
		want string
	}{
		{"all up", regions.RegionStatus{Status: regions.HealthUp, VIPs: []regions.VIPStatus{{Addr: a, Status: regions.HealthUp, Up: 1, Votes: []regions.Vote{up}}}}, ""},
		{"drained", regions.RegionStatus{Status: regions.HealthUp, Drained: true, VIPs: []regions.VIPStatus{{Addr: a, Status: regions.HealthUp, Up: 1}}}, "drained"},
		{"down, the most frequent reason", regions.RegionStatus{Status: regions.HealthDown, VIPs: []regions.VIPStatus{{Addr: a, Status: regions.HealthDown, Down: 3,
			Votes: []regions.Vote{down("p1", "timeout"), down("p2", "connection refused"), down("p3", "connection refused")}}}},
			"192.0.2.1 down (3 of 3 probers): connection refused"},
		{"one VIP of two down", regions.RegionStatus{Status: regions.HealthUp, VIPs: []regions.VIPStatus{
			{Addr: a, Status: regions.HealthDown, Down: 2, Up: 1, Votes: []regions.Vote{down("p1", "HTTP 503"), down("p2", "HTTP 503"), up}},
			{Addr: b, Status: regions.HealthUp, Up: 3}}},
			"192.0.2.1 down (2 of 3 probers): HTTP 503"},
		{"unknown, reports not counted", regions.RegionStatus{Status: regions.HealthUnknown, VIPs: []regions.VIPStatus{
			{Addr: a, Status: regions.HealthUnknown, Votes: []regions.Vote{{Prober: "p1", Ignored: "the prober does not trust itself"}}},
			{Addr: b, Status: regions.HealthUnknown}}},
			"no counted vote (counted as up); reports not counted: the prober does not trust itself"},
		{"one VIP unknown", regions.RegionStatus{Status: regions.HealthUp, VIPs: []regions.VIPStatus{
			{Addr: a, Status: regions.HealthUnknown}, {Addr: b, Status: regions.HealthUp, Up: 1}}},
			"no counted vote on 192.0.2.1 (counted as up)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := regionReason(tc.rs); got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}
