package regions

import (
	"maps"
	"math"
	"strings"
	"testing"
)

func TestExpectedShares(t *testing.T) {
	weighted := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 60), svcRegion("us-east", 30), svcRegion("ap-ne", 10), svcRegion("v4-only", 0))
	failover := steerService("f.example.", PolicyFailover, svcRegion("us-east", 1), svcRegion("eu-west", 5))
	closed := steerService("c.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	closed.AllDown.Mode = AllDownFailClosed
	cases := []struct {
		name   string
		svc    *Service
		qtype  uint16
		edit   func(st *State)
		want   map[string]float64
		basis  string
		wantOK bool
	}{
		{"weighted", weighted, QTypeA, nil,
			map[string]float64{"eu-west": 0.6, "us-east": 0.3, "ap-ne": 0.1, "v4-only": 0}, "weighted", true},
		{"a down region takes nothing", weighted, QTypeA, func(st *State) { setReports(st, "us-east", false) },
			map[string]float64{"eu-west": 60.0 / 70, "us-east": 0, "ap-ne": 10.0 / 70, "v4-only": 0}, "weighted", true},
		{"a drained region takes nothing", weighted, QTypeA, func(st *State) { drain(st, "eu-west") },
			map[string]float64{"eu-west": 0, "us-east": 0.75, "ap-ne": 0.25, "v4-only": 0}, "weighted", true},
		{"failing open", weighted, QTypeA, func(st *State) {
			for _, r := range []string{"eu-west", "us-east", "ap-ne", "v4-only"} {
				setReports(st, r, false)
			}
		}, map[string]float64{"eu-west": 0.6, "us-east": 0.3, "ap-ne": 0.1, "v4-only": 0}, "failing open", true},
		{"failover", failover, QTypeA, nil, map[string]float64{"us-east": 1, "eu-west": 0}, "failover", true},
		{"failover past a drained region", failover, QTypeA, func(st *State) { drain(st, "us-east") },
			map[string]float64{"us-east": 0, "eu-west": 1}, "failover", true},
		{"fail-closed", closed, QTypeA, func(st *State) { setReports(st, "eu-west", false); setReports(st, "us-east", false) },
			map[string]float64{"eu-west": 0, "us-east": 0}, "fail-closed", true},
		{"no address of the family", steerService("v4.example.", PolicyWeighted, svcRegion("v4-only", 1)), QTypeAAAA, nil, nil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			if tc.edit != nil {
				tc.edit(st)
			}
			s := buildSnap(t, st, SnapshotOptions{})
			sh, ok := s.ExpectedShares(mustView(t, s, tc.svc.Name), tc.qtype)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if !maps.EqualFunc(sh.Regions, tc.want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
				t.Errorf("shares %v, want %v", sh.Regions, tc.want)
			}
			if !strings.Contains(sh.Basis, tc.basis) {
				t.Errorf("basis %q lacks %q", sh.Basis, tc.basis)
			}
		})
	}
}

// drain marks a region drained in st (a copy: regions are never modified
// in place).
func drain(st *State, name string) {
	r := *st.Regions[name]
	r.Drained = true
	st.Regions[name] = &r
}

func TestDrainedRegion(t *testing.T) {
	svc := steerService("d.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	st := steerState(svc)
	drain(st, "eu-west")
	// Every other region down: failing open must still leave the drained
	// region out.
	setReports(st, "us-east", false)
	s := buildSnap(t, st, SnapshotOptions{})
	v := mustView(t, s, svc.Name)
	counts := regionCounts(s, v, newClient(clientDE, nil), QTypeA, 500, 1)
	if counts["eu-west"] != 0 || counts["us-east"] != 500 {
		t.Fatalf("a drained region was answered: %v", counts)
	}
	rs, _ := s.RegionStatus("eu-west")
	if !rs.Drained {
		t.Error("status does not say drained")
	}
	_, ex := s.Explain(v, newClient(clientDE, nil), QTypeA, 1)
	found := false
	for _, step := range ex.Steps {
		for _, c := range step.Candidates {
			if c.Region == "eu-west" && strings.Contains(c.Note, "the region is drained") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("explain does not say the region is drained: %+v", ex.Steps)
	}
	// Undrained, it is answered again.
	st2 := st.Clone()
	r := *st2.Regions["eu-west"]
	r.Drained = false
	st2.Regions["eu-west"] = &r
	s2 := buildSnap(t, st2, SnapshotOptions{})
	if counts := regionCounts(s2, mustView(t, s2, svc.Name), newClient(clientDE, nil), QTypeA, 500, 1); counts["eu-west"] == 0 {
		t.Fatalf("undrained region never answered: %v", counts)
	}
}
