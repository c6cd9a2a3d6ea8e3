package regions

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// vote is how the test probers see a VIP: up, down by the active check
// (down), or down by passive health alone (passive), with a capacity (0:
// none) and the time of the transition.
type vote struct {
	state    string // up, down, passive
	capacity float64
	since    time.Time
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// voteAll has n registered, trusted probers report v on every VIP of
// region.
func voteAll(st *State, region string, n int, v vote) {
	voteEach(st, region, n, func(netip.Addr) vote { return v })
}

// voteEach has n probers report f(vip) on each VIP of region.
func voteEach(st *State, region string, n int, f func(netip.Addr) vote) {
	m := map[string]*HealthReport{}
	for i := range n {
		id := fmt.Sprintf("p%d", i+1)
		h := report(st, region, id, true)
		for k := range h.VIPs {
			vh := &h.VIPs[k]
			v := f(vh.Addr)
			vh.Up, vh.Passive, vh.Since = v.state == "up", v.state == "passive", v.since
			if v.capacity > 0 {
				c := v.capacity
				vh.Capacity = &c
			}
		}
		m[id] = h
	}
	st.Health[region] = m
}

// answered lists, per region of the service, the addresses its answers
// carry (both families), "" for a region answered with none.
func answered(s *Snapshot, name string) map[string]string {
	v := s.ServiceByName(name)
	out := map[string]string{}
	for _, sl := range v.slots {
		var a []string
		for f := range sl.addrs {
			for _, x := range sl.addrs[f] {
				a = append(a, x.String())
			}
		}
		out[sl.name] = strings.Join(a, " ")
	}
	return out
}

func ratio(f float64) *float64 { return &f }

// TestPassiveOnly: a VIP is down by passive health alone when its down
// votes would not reach the quorum without the passive ones.
func TestPassiveOnly(t *testing.T) {
	cases := []struct {
		votes []string // up, down, passive; one per prober
		down  bool
		want  bool
	}{
		{[]string{"passive"}, true, true},
		{[]string{"passive", "passive", "up"}, true, true},
		{[]string{"down", "passive", "up"}, true, true},    // active alone: 1 of 3, no quorum
		{[]string{"down", "down", "passive"}, true, false}, // active alone: 2 of 3
		{[]string{"down"}, true, false},
		{[]string{"passive", "up"}, false, false}, // a tie keeps it up
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.votes, ","), func(t *testing.T) {
			st := steerState()
			i := 0
			states := tc.votes
			m := map[string]*HealthReport{}
			for _, v := range states {
				i++
				id := fmt.Sprintf("p%d", i)
				h := report(st, "us-east", id, v == "up")
				for k := range h.VIPs {
					h.VIPs[k].Passive = v == "passive"
				}
				m[id] = h
			}
			st.Health["us-east"] = m
			s := buildSnap(t, st, SnapshotOptions{})
			rs, _ := s.RegionStatus("us-east")
			vs := rs.VIPs[0]
			if (vs.Status == HealthDown) != tc.down || vs.Passive != tc.want {
				t.Fatalf("status %s passive %t, want down %t passive %t", vs.Status, vs.Passive, tc.down, tc.want)
			}
		})
	}
}

// TestMaxEjection: passive health alone never takes out more than the
// service's max_ejection of its healthy capacity; the VIPs that went
// down first go first; capacity weighs when every VIP has one, else VIPs
// count; active failures are not bounded and are not healthy capacity.
func TestMaxEjection(t *testing.T) {
	two := func(maxEj *float64) *Service {
		s := steerService("www.example.", PolicyFailover, svcRegion("us-east", 1), svcRegion("ap-ne", 1))
		s.MaxEjection = maxEj
		return s
	}
	usOnly := steerService("us.example.", PolicyFailover, svcRegion("us-east", 1))
	cases := []struct {
		name string
		svc  *Service
		prep func(*State)
		want map[string]string
	}{
		{"nothing passive", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "up"})
			voteAll(st, "ap-ne", 3, vote{state: "up"})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"one region of two: half, within 50%", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0})
			voteAll(st, "ap-ne", 3, vote{state: "up"})
		}, map[string]string{"us-east": "", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"both: the first to go down is ejected, the other kept", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0.Add(time.Second)})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": ""}},
		{"max_ejection 0: passive health ejects nothing", two(ratio(0)), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"max_ejection 1: everything may go", two(ratio(1)), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "", "ap-ne": ""}},
		{"one region alone cannot be ejected at 50%", usOnly, func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1"}},
		{"active failures are neither bounded nor healthy capacity", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "down", since: t0})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"capacity weighs: the small region goes first, the big one stays", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "passive", capacity: 100, since: t0})
			voteAll(st, "ap-ne", 3, vote{state: "passive", capacity: 900, since: t0.Add(time.Second)})
		}, map[string]string{"us-east": "", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"capacity weighs: a big region is more than half", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "up", capacity: 100})
			voteAll(st, "ap-ne", 3, vote{state: "passive", capacity: 900, since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"a VIP without capacity: VIPs count", two(nil), func(st *State) {
			voteAll(st, "us-east", 3, vote{state: "up"})
			voteAll(st, "ap-ne", 3, vote{state: "passive", capacity: 900, since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": ""}},
		{"capacity is the median of the counted votes", two(nil), func(st *State) {
			i := 0
			voteEach(st, "us-east", 3, func(netip.Addr) vote {
				i++
				return vote{state: "up", capacity: []float64{50, 5000, 100}[(i-1)/2]} // two VIPs per prober
			})
			// 100 each: 200 is more than half (the mean, 1,717, or the
			// largest, 5,000, would let it go)
			voteAll(st, "ap-ne", 3, vote{state: "passive", capacity: 200, since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"a drained region is no healthy capacity", two(nil), func(st *State) {
			st.Regions["us-east"].Drained = true
			voteAll(st, "us-east", 3, vote{state: "up"})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		}, map[string]string{"us-east": "198.51.100.1 2001:db8:3::1", "ap-ne": "203.0.113.1 2001:db8:4::1"}},
		{"each family on its own", two(nil), func(st *State) {
			voteEach(st, "us-east", 3, func(a netip.Addr) vote {
				if a.Is4() {
					return vote{state: "passive", since: t0}
				}
				return vote{state: "up"}
			})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0.Add(time.Second)})
		}, map[string]string{"us-east": "2001:db8:3::1", "ap-ne": "203.0.113.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			tc.prep(st)
			s := buildSnap(t, st, SnapshotOptions{})
			if got := answered(s, tc.svc.Name); !mapsEqual(got, tc.want) {
				t.Fatalf("answered %v, want %v", got, tc.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMaxEjectionPerService: the bound is each service's own: a region
// ejected from a service with room for it is answered by one without.
func TestMaxEjectionPerService(t *testing.T) {
	wide := steerService("wide.example.", PolicyFailover, svcRegion("us-east", 1), svcRegion("ap-ne", 1))
	narrow := steerService("narrow.example.", PolicyFailover, svcRegion("us-east", 1))
	st := steerState(wide, narrow)
	voteAll(st, "us-east", 2, vote{state: "passive", since: t0})
	voteAll(st, "ap-ne", 2, vote{state: "up"})
	s := buildSnap(t, st, SnapshotOptions{})
	if d := s.Decide(mustView(t, s, "wide.example."), nil, QTypeA, 1); d.Region != "ap-ne" || d.FailOpen {
		t.Errorf("wide: %+v, want ap-ne", d)
	}
	d := s.Decide(mustView(t, s, "narrow.example."), nil, QTypeA, 1)
	if d.Region != "us-east" || d.FailOpen || d.Count != 1 || d.Addr(0) != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("narrow: %+v, want us-east answered", d)
	}
	rs, _ := s.RegionStatus("us-east")
	if rs.Status != HealthDown || !rs.VIPs[0].Passive {
		t.Errorf("the region's own status %s passive %t, want down by passive health", rs.Status, rs.VIPs[0].Passive)
	}
	_, e := s.Explain(mustView(t, s, "narrow.example."), nil, QTypeA, 1)
	var note string
	for _, st := range e.Steps {
		if st.Step == "health" {
			note = st.Candidates[0].Note
		}
	}
	if !strings.Contains(note, "answered: down by passive health alone") || !strings.Contains(note, "max_ejection") {
		t.Errorf("explain note %q", note)
	}
	_, e = s.Explain(mustView(t, s, "wide.example."), nil, QTypeA, 1)
	for _, st := range e.Steps {
		if st.Step == "health" && !strings.Contains(st.Candidates[0].Note, "down by passive health alone (2 of 2 probers say down; within max_ejection)") {
			t.Errorf("explain note %q", st.Candidates[0].Note)
		}
	}
}

// TestMaxEjectionIncremental: a snapshot built from the previous one
// decides the bound as one built from scratch, also when only whether a
// VIP is down by passive health changed (the healthy addresses the same).
func TestMaxEjectionIncremental(t *testing.T) {
	svc := steerService("www.example.", PolicyFailover, svcRegion("us-east", 1), svcRegion("ap-ne", 1))
	steps := []func(*State){
		func(st *State) { // ap-ne is all the healthy capacity: kept
			voteAll(st, "us-east", 3, vote{state: "down", since: t0.Add(time.Second)})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		},
		func(st *State) { // us-east's failures turn passive: ap-ne, down first, goes
			voteAll(st, "us-east", 3, vote{state: "passive", since: t0.Add(time.Second)})
			voteAll(st, "ap-ne", 3, vote{state: "passive", since: t0})
		},
		func(st *State) { // capacities appear: ap-ne is the big one and stays
			voteAll(st, "us-east", 3, vote{state: "passive", capacity: 10, since: t0.Add(time.Second)})
			voteAll(st, "ap-ne", 3, vote{state: "passive", capacity: 1000, since: t0})
		},
	}
	base := steerState(svc)
	var prev *Snapshot
	var seen []string
	for i, prep := range steps {
		// The same region and service objects: only the reports change,
		// as when a watcher takes new reports.
		st := NewState()
		st.Regions, st.Services = base.Regions, base.Services
		prep(st)
		s := BuildSnapshot(st, prev, SnapshotOptions{})
		fresh := BuildSnapshot(st, nil, SnapshotOptions{})
		got, want := answered(s, svc.Name), answered(fresh, svc.Name)
		if !mapsEqual(got, want) {
			t.Fatalf("step %d: from the previous snapshot %v, from scratch %v", i, got, want)
		}
		seen = append(seen, fmt.Sprint(got))
		prev = s
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("steps %d and %d answer alike (%s): the test would not see a stale decision", i-1, i, seen[i])
		}
	}
}
