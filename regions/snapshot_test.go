package regions

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestSnapshotHealth: a VIP is down when more than the quorum fraction
// of its counted votes say down; a tie keeps it up, so one cut-off
// prober out of two drains nothing.
func TestSnapshotHealth(t *testing.T) {
	cases := []struct {
		name    string
		reports []bool // each prober's vote on every VIP of eu-west
		quorum  float64
		status  HealthStatus
	}{
		{"no reports", nil, 0, HealthUnknown},
		{"1 prober: up", []bool{true}, 0, HealthUp},
		{"1 prober: down", []bool{false}, 0, HealthDown},
		{"2 probers: 1 down is a tie", []bool{false, true}, 0, HealthUp},
		{"2 probers: 2 down", []bool{false, false}, 0, HealthDown},
		{"3 probers: 1 down", []bool{true, true, false}, 0, HealthUp},
		{"3 probers: 2 down", []bool{true, false, false}, 0, HealthDown},
		{"4 probers: 2 down is a tie", []bool{true, true, false, false}, 0, HealthUp},
		{"4 probers: 3 down", []bool{true, false, false, false}, 0, HealthDown},
		{"5 probers: 2 down", []bool{true, true, true, false, false}, 0, HealthUp},
		{"5 probers: 3 down", []bool{true, true, false, false, false}, 0, HealthDown},
		{"5 probers: 5 down", []bool{false, false, false, false, false}, 0, HealthDown},
		{"3 probers: 1 down over quorum 0.33", []bool{true, true, false}, 0.33, HealthDown},
		{"3 probers: 1 down under quorum 0.34", []bool{true, true, false}, 0.34, HealthUp},
		{"3 probers: 2 down under quorum 0.67", []bool{true, false, false}, 0.67, HealthUp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState()
			if tc.reports != nil {
				setReports(st, "eu-west", tc.reports...)
			}
			s := buildSnap(t, st, SnapshotOptions{Quorum: tc.quorum})
			rs, ok := s.RegionStatus("eu-west")
			if !ok || rs.Status != tc.status || len(rs.Reports) != len(tc.reports) || len(rs.VIPs) != 5 {
				t.Fatalf("status %+v, want %s from %d reports on 5 VIPs", rs, tc.status, len(tc.reports))
			}
			down := 0
			for _, up := range tc.reports {
				if !up {
					down++
				}
			}
			for _, vs := range rs.VIPs {
				if vs.Status != tc.status || vs.Down != down || vs.Up+vs.Down != len(tc.reports) || len(vs.Votes) != len(tc.reports) {
					t.Fatalf("VIP %+v, want %s with %d of %d down", vs, tc.status, down, len(tc.reports))
				}
			}
			if want := map[HealthStatus]int{HealthDown: 0}[tc.status]; tc.status == HealthDown && rs.Healthy != want ||
				tc.status != HealthDown && rs.Healthy != 5 {
				t.Fatalf("healthy VIPs %d", rs.Healthy)
			}
			if rs.Region != st.Regions["eu-west"] {
				t.Fatal("RegionStatus.Region is not the stored region")
			}
			for i := 1; i < len(rs.Reports); i++ {
				if rs.Reports[i-1].Prober >= rs.Reports[i].Prober {
					t.Fatalf("reports not sorted: %v", rs.Reports)
				}
			}
		})
	}
	t.Run("Regions sorted", func(t *testing.T) {
		s := buildSnap(t, steerState(), SnapshotOptions{})
		var names []string
		for _, r := range s.Regions() {
			names = append(names, r.Name)
		}
		if !slices.IsSorted(names) || len(names) != len(steerRegions()) {
			t.Fatalf("Regions() = %v", names)
		}
	})
	t.Run("reports of a region that does not exist are ignored", func(t *testing.T) {
		st := steerState()
		setReports(st, "gone", true)
		s := buildSnap(t, st, SnapshotOptions{})
		if _, ok := s.RegionStatus("gone"); ok {
			t.Fatal("status for a region that does not exist")
		}
	})
}

func TestSnapshotOptions(t *testing.T) {
	cases := []struct {
		name    string
		in      SnapshotOptions
		want    SnapshotOptions
		problem string
	}{
		{"defaults", SnapshotOptions{}, SnapshotOptions{Quorum: 0.5, StickyBitsV4: 24, StickyBitsV6: 56}, ""},
		{"given", SnapshotOptions{Quorum: 0.75, StickyBitsV4: 20, StickyBitsV6: 48}, SnapshotOptions{Quorum: 0.75, StickyBitsV4: 20, StickyBitsV6: 48}, ""},
		{"quorum 1", SnapshotOptions{Quorum: 1}, SnapshotOptions{Quorum: 0.5, StickyBitsV4: 24, StickyBitsV6: 56}, "quorum 1"},
		{"v4 bits", SnapshotOptions{StickyBitsV4: 33}, SnapshotOptions{Quorum: 0.5, StickyBitsV4: 24, StickyBitsV6: 56}, "sticky IPv4 bits 33"},
		{"v6 bits", SnapshotOptions{StickyBitsV6: -1}, SnapshotOptions{Quorum: 0.5, StickyBitsV4: 24, StickyBitsV6: 56}, "sticky IPv6 bits -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := BuildSnapshot(steerState(), nil, tc.in)
			if s.Options() != tc.want {
				t.Fatalf("options %+v, want %+v", s.Options(), tc.want)
			}
			got := strings.Join(s.Problems(), "; ")
			if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Fatalf("problems %q, want %q", got, tc.problem)
			}
		})
	}
}

func TestSnapshotProblems(t *testing.T) {
	missing := steerService("missing.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("atlantis", 5), svcRegion("eu-central", 1))
	twice := steerService("twice.example.", PolicyFailover, svcRegion("eu-west", 1), svcRegion("eu-west", 2))
	badPolicy := steerService("bad.example.", "random", svcRegion("eu-west", 1))
	geoBad := geoService()
	geoBad.Name = "geobad.example."
	geoBad.Geo.Continents["XX"] = []string{"eu-west"}
	geoBad.Geo.Countries["DE"] = []string{"atlantis", "eu-central"}
	geoMissing := steerService("geonil.example.", PolicyGeo, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	st := steerState(missing, twice, badPolicy, geoBad, geoMissing)
	st.Services["elsewhere.example."] = steerService("other.example.", PolicyWeighted, svcRegion("eu-west", 1))
	st.Regions["ghost"] = nil
	st.Problems = []string{"/meridian/services/x.example.: invalid JSON"}

	s := BuildSnapshot(st, nil, SnapshotOptions{})
	problems := strings.Join(s.Problems(), "\n")
	for _, want := range []string{
		"/meridian/services/x.example.: invalid JSON",
		`service missing.example.: region "atlantis" does not exist; skipped`,
		`service twice.example.: region "eu-west" is listed twice`,
		`service bad.example.: unknown policy "random"; skipped`,
		`service geobad.example.: geo continent "XX" is not a continent code`,
		`service geobad.example.: geo countries.DE: "atlantis" is not one of the service's regions`,
		`service geonil.example.: the geo policy has no geo map`,
		`service "other.example.": stored under the name "elsewhere.example."`,
		`region "ghost": no data`,
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems lack %q:\n%s", want, problems)
		}
	}

	cases := []struct {
		name    string
		service string
		client  netip.Addr
		want    []string // regions that may be chosen; nil: no such service
	}{
		{"the missing region is skipped", "missing.example.", clientDE, []string{"eu-west", "eu-central"}},
		{"the duplicate is skipped", "twice.example.", clientDE, []string{"eu-west"}},
		{"unknown policy: no service", "bad.example.", clientDE, nil},
		{"a bad country list keeps its good regions", "geobad.example.", clientDE, []string{"eu-central"}},
		{"geo without a map answers in service order", "geonil.example.", clientDE, []string{"eu-west"}},
		{"a misfiled service is skipped", "other.example.", clientDE, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := s.ServiceByName(tc.service)
			if tc.want == nil {
				if v != nil {
					t.Fatalf("service %s built", tc.service)
				}
				return
			}
			counts := regionCounts(s, v, newClient(tc.client, newLocator()), QTypeA, 300, 8)
			var got []string
			for r := range counts {
				got = append(got, r)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Fatalf("regions %v, want %v", got, want)
			}
		})
	}
	t.Run("nil state", func(t *testing.T) {
		s := BuildSnapshot(nil, nil, SnapshotOptions{})
		if len(s.Services()) != 0 || len(s.Regions()) != 0 || s.Latency() != nil {
			t.Fatal("empty snapshot is not empty")
		}
	})
}

func TestSnapshotLatencyReuse(t *testing.T) {
	st := steerState(fourRegions(PolicyLatency))
	withLatency(st)
	s1 := buildSnap(t, st, SnapshotOptions{})
	if s1.Latency() == nil || s1.Latency().Len() != 5 {
		t.Fatalf("latency table missing or not 5 prefixes: %v", s1.Problems())
	}

	// A new state with the same table ID reuses the compiled table.
	st2 := st.Clone()
	st2.Revision++
	setReports(st2, "eu-west", false)
	s2 := BuildSnapshot(st2, s1, SnapshotOptions{})
	if s2.Latency() != s1.Latency() {
		t.Fatal("same latency ID, but the table was compiled again")
	}
	if s2.Revision() != st2.Revision || s2.State() != st2 {
		t.Fatal("Revision or State is not the input's")
	}

	// A changed table is compiled.
	st3 := st2.Clone()
	st3.Latency = &LatencyData{ID: "t2", CSV: []byte("198.18.0.0/16,us-east,1\n")}
	s3 := BuildSnapshot(st3, s2, SnapshotOptions{})
	if s3.Latency() == s2.Latency() || s3.Latency().Len() != 1 {
		t.Fatal("changed latency ID, but the old table was kept")
	}
	if d := s3.Decide(mustView(t, s3, "svc.example."), newClient(clientDE, nil), QTypeA, 1); d.Region != "us-east" {
		t.Fatalf("decided %s with the new table, want us-east", d.Region)
	}

	// An invalid table: no table, a problem, and latency falls back to
	// nearest. The next snapshot does not parse it again but still says so.
	st4 := st3.Clone()
	st4.Latency = &LatencyData{ID: "bad", CSV: []byte("198.18.0.0/16,us-east,fast\n")}
	s4 := BuildSnapshot(st4, s3, SnapshotOptions{})
	if s4.Latency() != nil || !strings.Contains(strings.Join(s4.Problems(), ";"), `latency table "bad": latency table: line 1`) {
		t.Fatalf("table kept (%v) or problems %q", s4.Latency() != nil, s4.Problems())
	}
	if d := s4.Decide(mustView(t, s4, "svc.example."), newClient(clientDE, newLocator()), QTypeA, 1); d.Region != "eu-central" {
		t.Fatalf("decided %s without a table, want the nearest, eu-central", d.Region)
	}
	s5 := BuildSnapshot(st4.Clone(), s4, SnapshotOptions{})
	if s5.latencyErr != s4.latencyErr || len(s5.Problems()) != len(s4.Problems()) {
		t.Fatalf("the error was not carried over: %q", s5.Problems())
	}

	// A table naming a region that does not exist is fine: its entries
	// are ignored.
	st6 := steerState(fourRegions(PolicyLatency))
	st6.Latency = &LatencyData{ID: "t6", CSV: []byte("198.18.0.0/16,atlantis,1\n198.18.0.0/16,us-east,50\n")}
	s6 := buildSnap(t, st6, SnapshotOptions{})
	if d := s6.Decide(mustView(t, s6, "svc.example."), newClient(clientDE, newLocator()), QTypeA, 1); d.Region != "us-east" {
		t.Fatalf("decided %s, want us-east", d.Region)
	}
}
