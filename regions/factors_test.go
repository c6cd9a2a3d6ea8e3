package regions

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// setLoad stores one trusted report per utilisation, from registered
// probers p1, p2..., each with every VIP of region up and the region's
// load at that utilisation of a capacity of 1000, read at observed.
func setLoad(st *State, region string, observed time.Time, utils ...float64) {
	m := map[string]*HealthReport{}
	for i, u := range utils {
		id := fmt.Sprintf("p%d", i+1)
		rep := report(st, region, id, true)
		rep.Observed = observed
		for k := range rep.VIPs {
			load, capacity := u*1000, 1000.0
			rep.VIPs[k].Load, rep.VIPs[k].Capacity, rep.VIPs[k].LoadObserved = &load, &capacity, observed
		}
		m[id] = rep
	}
	st.Health[region] = m
}

func TestServiceValidateFactors(t *testing.T) {
	cases := []struct {
		name   string
		load   *LoadSteering
		slow   *SlowStart
		fields []string // the fields named, in order; none: valid
	}{
		{"valid", &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9, MaxStep: 0.2, MaxSignalAge: Duration(15 * time.Second)},
			&SlowStart{Window: Duration(time.Minute), Aggression: 2, MinWeight: 0.05}, nil},
		{"defaults", &LoadSteering{HighWatermark: 0.9}, &SlowStart{Window: Duration(time.Second)}, nil},
		{"equal watermarks", &LoadSteering{LowWatermark: 0.8, HighWatermark: 0.8}, nil, nil},
		{"low above high", &LoadSteering{LowWatermark: 0.9, HighWatermark: 0.7}, nil, []string{"load.low_watermark"}},
		{"ratios outside 0-1", &LoadSteering{LowWatermark: -0.1, HighWatermark: 1.5, MaxStep: 2}, nil,
			[]string{"load.low_watermark", "load.high_watermark", "load.max_step"}},
		{"no high watermark", &LoadSteering{}, nil, []string{"load.high_watermark"}},
		{"NaN", &LoadSteering{LowWatermark: math.NaN(), HighWatermark: 0.9}, nil, []string{"load.low_watermark"}},
		{"negative signal age", &LoadSteering{HighWatermark: 0.9, MaxSignalAge: Duration(-time.Second)}, nil, []string{"load.max_signal_age"}},
		{"signal age too long", &LoadSteering{HighWatermark: 0.9, MaxSignalAge: Duration(2 * time.Hour)}, nil, []string{"load.max_signal_age"}},
		{"no window", nil, &SlowStart{}, []string{"slow_start.window"}},
		{"negative window", nil, &SlowStart{Window: Duration(-time.Second)}, []string{"slow_start.window"}},
		{"window too long", nil, &SlowStart{Window: Duration(2 * time.Hour)}, []string{"slow_start.window"}},
		{"bad shape", nil, &SlowStart{Window: Duration(time.Minute), Aggression: -1, MinWeight: 1.5},
			[]string{"slow_start.aggression", "slow_start.min_weight"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := steerService("s.example.", PolicyWeighted, svcRegion("eu-west", 1))
			svc.Load, svc.SlowStart = tc.load, tc.slow
			err := svc.Validate(map[string]*Region{"eu-west": {Name: "eu-west"}}, nil)
			var got []string
			if ve, ok := err.(*ValidationError); ok {
				for _, p := range ve.Problems {
					got = append(got, p.Field)
				}
			} else if err != nil {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

// TestRegionLoad: a region's load is the median of the fresh readings of
// the probers whose votes count.
func TestRegionLoad(t *testing.T) {
	now := t0
	maxAge := 15 * time.Second
	cases := []struct {
		name    string
		prep    func(st *State)
		util    float64
		probers int
		stale   int
		none    bool // no reading at all
	}{
		{"three probers: the median", func(st *State) { setLoad(st, "eu-west", now, 0.9, 0.2, 0.5) }, 0.5, 3, 0, false},
		{"two probers: the mean of both", func(st *State) { setLoad(st, "eu-west", now, 0.2, 0.6) }, 0.4, 2, 0, false},
		{"an untrusted prober does not count", func(st *State) {
			setLoad(st, "eu-west", now, 0.2, 0.3, 0.99)
			r := *st.Health["eu-west"]["p3"]
			r.Trusted = false
			st.Health["eu-west"]["p3"] = &r
		}, 0.25, 2, 0, false},
		{"a report without its registration does not count", func(st *State) {
			setLoad(st, "eu-west", now, 0.2, 0.3, 0.99)
			delete(st.Probers, "p3")
		}, 0.25, 2, 0, false},
		{"stale readings are ignored", func(st *State) {
			setLoad(st, "eu-west", now, 0.2, 0.3, 0.99)
			r := *st.Health["eu-west"]["p3"]
			r.VIPs = append([]VIPHealth(nil), r.VIPs...)
			for k := range r.VIPs {
				r.VIPs[k].LoadObserved = now.Add(-time.Minute)
			}
			st.Health["eu-west"]["p3"] = &r
		}, 0.25, 2, 1, false},
		{"every reading stale", func(st *State) { setLoad(st, "eu-west", now.Add(-time.Minute), 0.2) }, 0, 0, 1, false},
		{"no read time: the report's", func(st *State) {
			setLoad(st, "eu-west", now, 0.7)
			r := *st.Health["eu-west"]["p1"]
			r.VIPs = append([]VIPHealth(nil), r.VIPs...)
			for k := range r.VIPs {
				r.VIPs[k].LoadObserved = time.Time{}
			}
			st.Health["eu-west"]["p1"] = &r
		}, 0.7, 1, 0, false},
		{"no capacity: no reading", func(st *State) {
			setLoad(st, "eu-west", now, 0.5)
			r := *st.Health["eu-west"]["p1"]
			r.VIPs = append([]VIPHealth(nil), r.VIPs...)
			zero := 0.0
			for k := range r.VIPs {
				r.VIPs[k].Capacity = &zero
			}
			st.Health["eu-west"]["p1"] = &r
		}, 0, 0, 0, true},
		{"health reports without load", func(st *State) { setReports(st, "eu-west", true, true) }, 0, 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState()
			tc.prep(st)
			s := BuildSnapshotAt(st, nil, SnapshotOptions{}, now)
			rs, _ := s.RegionStatus("eu-west")
			l := rs.LoadAt(now, maxAge)
			if tc.none {
				if l != nil {
					t.Fatalf("load %+v, want none", l)
				}
				return
			}
			if l == nil || math.Abs(l.Utilisation-tc.util) > 1e-9 || l.Probers != tc.probers || l.Stale != tc.stale {
				t.Fatalf("load %+v, want utilisation %v from %d probers, %d stale", l, tc.util, tc.probers, tc.stale)
			}
			if tc.probers > 0 && (l.Source != "health" || !l.Observed.Equal(now) || l.AgeSeconds != 0) {
				t.Fatalf("load %+v: want source health, read now", l)
			}
		})
	}
}

func TestHist(t *testing.T) {
	var h hist
	if h.value(5) != 0 || h.integral(0, 10) != 0 {
		t.Fatal("an empty history is 0")
	}
	s := int64(time.Second)
	h.push(10*s, 1)
	h.push(20*s, 0.5)
	h.push(20*s, 0.25) // the same instant: replaced
	h.push(30*s, 0.25) // the same value: no segment
	if h.n != 2 {
		t.Fatalf("%d segments", h.n)
	}
	for _, c := range []struct {
		at   int64
		want float64
	}{{0, 1}, {10 * s, 1}, {19 * s, 1}, {20 * s, 0.25}, {100 * s, 0.25}} {
		if got := h.value(c.at); got != c.want {
			t.Errorf("value(%d s) = %v, want %v", c.at/s, got, c.want)
		}
	}
	// [5, 25]: 15 s at 1 (before the first segment counts as it), 5 s at 0.25.
	if got := h.integral(5*s, 25*s); math.Abs(got-16.25) > 1e-9 {
		t.Errorf("integral %v, want 16.25", got)
	}
	for i := range 2 * histLen {
		h.push(int64(40+i)*s, float64(i%2))
	}
	if h.n != histLen || h.at[0] != int64(40+histLen)*s {
		t.Fatalf("a full history keeps the newest %d: %d, from %v", histLen, h.n, h.at[0])
	}
}

func TestSlowStartCurve(t *testing.T) {
	ss := &SlowStart{Window: Duration(time.Minute)}
	sq := &SlowStart{Window: Duration(time.Minute), Aggression: 2, MinWeight: 0.01}
	for _, c := range []struct {
		ss   *SlowStart
		at   time.Duration
		want float64
	}{
		{ss, 0, DefaultMinWeight}, {ss, 3 * time.Second, DefaultMinWeight}, {ss, 30 * time.Second, 0.5}, {ss, time.Minute, 1}, {ss, time.Hour, 1},
		{sq, 0, 0.01}, {sq, 15 * time.Second, 0.5}, {sq, 30 * time.Second, math.Sqrt(0.5)},
	} {
		if got := c.ss.curve(c.at); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("curve(%v) with %+v = %v, want %v", c.at, c.ss, got, c.want)
		}
	}
}

// factorsOf is slot region's controller state in the snapshot's view of
// the service.
func factorsOf(tb testing.TB, s *Snapshot, svc, region string) *ExplainFactors {
	tb.Helper()
	f := s.Factors(mustView(tb, s, svc), s.Time())[region]
	if f == nil {
		tb.Fatalf("%s has no region %s", svc, region)
	}
	return f
}

// follow builds s again at each NextChange until none is left or until
// the deadline, calling each after every build.
func follow(tb testing.TB, s *Snapshot, deadline time.Time, each func(*Snapshot)) *Snapshot {
	tb.Helper()
	for n := 0; ; n++ {
		at := s.NextChange()
		if at.IsZero() || at.After(deadline) {
			return s
		}
		if n > 10_000 || !at.After(s.Time()) {
			tb.Fatalf("NextChange %v after building at %v", at, s.Time())
		}
		s = BuildSnapshotAt(s.State(), s, SnapshotOptions{}, at)
		each(s)
	}
}

// TestSlowStartTriggers: a region ramps in when it comes back up, is
// undrained, has its weight raised from 0 or is added to the service;
// not on the first snapshot, nor without slow_start.
func TestSlowStartTriggers(t *testing.T) {
	// svc has eu-west at weight (-1: not at all) and us-east at 1.
	svc := func(ss bool, weight int) *Service {
		s := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", uint32(max(weight, 0))), svcRegion("us-east", 1))
		if weight < 0 {
			s.Regions = s.Regions[1:]
		}
		if ss {
			s.SlowStart = &SlowStart{Window: Duration(time.Minute)}
		}
		return s
	}
	cases := []struct {
		name         string
		before, then *State
		ramp         bool
	}{
		{"back up", func() *State { st := steerState(svc(true, 1)); markDown("eu-west")(st); return st }(), steerState(svc(true, 1)), true},
		{"undrained", func() *State { st := steerState(svc(true, 1)); drain(st, "eu-west"); return st }(), steerState(svc(true, 1)), true},
		{"weight from 0", steerState(svc(true, 0)), steerState(svc(true, 1)), true},
		{"added to the service", steerState(svc(true, -1)), steerState(svc(true, 1)), true},
		{"no change", steerState(svc(true, 1)), steerState(svc(true, 1)), false},
		{"no slow start", func() *State { st := steerState(svc(false, 1)); markDown("eu-west")(st); return st }(), steerState(svc(false, 1)), false},
		{"the first snapshot", nil, steerState(svc(true, 1)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prev *Snapshot
			if tc.before != nil {
				prev = BuildSnapshotAt(tc.before, nil, SnapshotOptions{}, t0)
			}
			s := BuildSnapshotAt(tc.then, prev, SnapshotOptions{}, t0.Add(10*time.Second))
			f := factorsOf(t, s, "w.example.", "eu-west")
			if ramping := strings.HasPrefix(f.RampNote, "slow start of the region, 0s of 1m0s"); ramping != tc.ramp {
				t.Fatalf("ramp %v (%s), want ramping %v", f.Ramp, f.RampNote, tc.ramp)
			}
			if moving := !s.NextChange().IsZero(); moving != tc.ramp {
				t.Fatalf("NextChange %v, want one: %v", s.NextChange(), tc.ramp)
			}
		})
	}
}

// TestSlowStartRamp follows a ramp to its end: the ramp factor never
// takes back what the clients asking again had a TTL before, the
// snapshot is due again at every tick until the window is over, and then
// the region is back at its full share with nothing due.
func TestSlowStartRamp(t *testing.T) {
	svc := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	svc.TTL = 20
	svc.SlowStart = &SlowStart{Window: Duration(time.Minute)}
	down := steerState(svc)
	markDown("eu-west")(down)
	s := BuildSnapshotAt(down, nil, SnapshotOptions{}, t0)
	up := steerState(svc)
	start := t0.Add(3 * time.Second)
	s = BuildSnapshotAt(up, s, SnapshotOptions{}, start)
	type point struct {
		at   time.Time
		ramp float64
	}
	pts := []point{{start, factorsOf(t, s, "w.example.", "eu-west").Ramp}}
	s = follow(t, s, start.Add(time.Hour), func(s *Snapshot) {
		f := factorsOf(t, s, "w.example.", "eu-west")
		if want := s.Time().Sub(start) >= time.Minute+5*time.Second; want && f.Ramp != 1 {
			t.Errorf("%v after the start: ramp %v", s.Time().Sub(start), f.Ramp)
		}
		pts = append(pts, point{s.Time(), f.Ramp})
	})
	if end := s.Time().Sub(start); end < time.Minute-5*time.Second || end > time.Minute+5*time.Second {
		t.Fatalf("the ramp ended %v after the start, want within a tick (5s) of its window (1m)", end)
	}
	f := factorsOf(t, s, "w.example.", "eu-west")
	if f.Ramp != 1 || f.Kept != 1 || f.EffectiveWeight != 1 || !s.NextChange().IsZero() {
		t.Fatalf("after the ramp: %+v, next %v", f, s.NextChange())
	}
	for i, p := range pts {
		for _, q := range pts[:i] {
			if p.at.Sub(q.at) >= 20*time.Second && p.ramp < q.ramp-1e-9 {
				t.Errorf("ramp %v at %v, below the %v of %v, a TTL or more before", p.ramp, p.at.Sub(start), q.ramp, q.at.Sub(start))
			}
		}
	}
	if pts[0].ramp <= 0 || pts[0].ramp >= 1 {
		t.Errorf("the first answers at %v of the full share", pts[0].ramp)
	}
}

// TestWeightedKept: for a weighted service the effective weights give a
// region with kept fraction p exactly p of its full share; the regions at
// their full share take the rest by weight.
func TestWeightedKept(t *testing.T) {
	svc := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 60), svcRegion("us-east", 30), svcRegion("ap-ne", 10))
	s := buildSnap(t, steerState(svc), SnapshotOptions{})
	v := mustView(t, s, "w.example.")
	for _, kept := range [][3]float64{{0.5, 1, 1}, {0.25, 0.5, 1}, {1, 1, 0}, {0.5, 0.5, 0.5}} {
		for i := range v.slots {
			v.slots[i].ctl = &slotCtl{load: kept[i], ramp: ramp{value: 1}, up: true, settled: true}
		}
		s.compose(v, t0.UnixNano())
		sh, _ := s.ExpectedShares(v, QTypeA)
		full := []float64{0.6, 0.3, 0.1}
		var atFull, keptShare, fullShare float64
		for i, p := range kept {
			if p < 1 {
				keptShare += p * full[i]
			} else {
				fullShare += full[i]
			}
		}
		for i := range v.slots {
			want := kept[i] * full[i]
			switch {
			case fullShare == 0:
				want = kept[i] * full[i] / keptShare // all below 1: by kept × weight
			case kept[i] >= 1:
				want = full[i] / fullShare * (1 - keptShare)
			}
			atFull += want
			if got := sh.Regions[v.slots[i].name]; math.Abs(got-want) > 1e-4 {
				t.Errorf("kept %v: %s share %v, want %v", kept, v.slots[i].name, got, want)
			}
		}
		if math.Abs(atFull-1) > 1e-9 {
			t.Fatalf("kept %v: the shares add up to %v", kept, atFull)
		}
	}
}

// TestLoadFactor: the load factor moves at a tick by at most a quarter
// of max_step, towards the equilibrium of the watermarks; not within
// the deadband; holds when the signal is stale; and follows the headroom
// when every candidate is above the high watermark.
func TestLoadFactor(t *testing.T) {
	svc := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	svc.TTL = 20
	svc.Load = &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9, MaxStep: 0.2}
	at := t0
	build := func(prev *Snapshot, eu, us []float64, readAt time.Time) *Snapshot {
		st := steerState(svc)
		setLoad(st, "eu-west", readAt, eu...)
		if us != nil {
			setLoad(st, "us-east", readAt, us...)
		}
		return BuildSnapshotAt(st, prev, SnapshotOptions{}, at)
	}
	t.Run("below the low watermark", func(t *testing.T) {
		s := build(nil, []float64{0.5}, []float64{0.2}, at)
		if f := factorsOf(t, s, "w.example.", "eu-west"); f.Load != 1 || !s.NextChange().IsZero() {
			t.Fatalf("%+v, next %v", f, s.NextChange())
		}
	})
	t.Run("steps towards the equilibrium", func(t *testing.T) {
		// Demand 1.0 at the full share: the watermarks put it at 0.9/1.2.
		s := build(nil, []float64{1}, []float64{0.2}, at)
		f := factorsOf(t, s, "w.example.", "eu-west")
		if math.Abs(f.Load-(1-0.05)) > 1e-9 || s.NextChange().IsZero() || !strings.Contains(f.LoadNote, "put it at 0.75") {
			t.Fatalf("first step: %+v, next %v", f, s.NextChange())
		}
		// Within the same tick nothing moves; at the next, one more step.
		at2 := s.NextChange().Add(-time.Second)
		s2 := BuildSnapshotAt(s.State(), s, SnapshotOptions{}, at2)
		if f2 := factorsOf(t, s2, "w.example.", "eu-west"); f2.Load != f.Load {
			t.Fatalf("moved within a tick: %v to %v", f.Load, f2.Load)
		}
		s3 := BuildSnapshotAt(s.State(), s2, SnapshotOptions{}, s.NextChange())
		if f3 := factorsOf(t, s3, "w.example.", "eu-west"); math.Abs(f3.Load-0.9) > 1e-9 {
			t.Fatalf("second step to %v, want 0.9", f3.Load)
		}
	})
	t.Run("stale holds", func(t *testing.T) {
		s := build(nil, []float64{1}, []float64{0.2}, at)
		f := factorsOf(t, s, "w.example.", "eu-west")
		st := steerState(svc)
		old := at.Add(-time.Minute)
		setLoad(st, "eu-west", old, 0.2)
		s2 := BuildSnapshotAt(st, s, SnapshotOptions{}, s.NextChange())
		f2 := factorsOf(t, s2, "w.example.", "eu-west")
		if f2.Load != f.Load || !strings.Contains(f2.LoadNote, "holds") || f2.Utilisation != nil || !s2.NextChange().IsZero() {
			t.Fatalf("a stale reading moved the factor: %+v then %+v, next %v", f, f2, s2.NextChange())
		}
	})
	t.Run("every candidate above the high watermark", func(t *testing.T) {
		s := build(nil, []float64{0.95}, []float64{0.99}, at)
		eu, us := factorsOf(t, s, "w.example.", "eu-west"), factorsOf(t, s, "w.example.", "us-east")
		if eu.Load != 1 || math.Abs(us.Load-0.95) > 1e-9 || !strings.Contains(us.LoadNote, "headroom") {
			t.Fatalf("eu-west %+v, us-east %+v", eu, us)
		}
	})
}

// TestSpill: for the policies other than weighted, a region that keeps
// the fraction p of its clients keeps those whose position for it is
// below p, the same networks whatever p, and sends the others to their
// next candidate; the answer's scope then covers the hashed network.
func TestSpill(t *testing.T) {
	svc := geoService() // Germany: the EU list, eu-west then eu-central
	loc := newLocator()
	s := buildSnap(t, steerState(svc), SnapshotOptions{})
	v := mustView(t, s, svc.Name)
	west := int(v.slotOf[s.regionIdx["eu-west"]])
	setKept := func(p float64) {
		v.slots[west].keep, v.spill = uint64(p*(1<<64)), p < 1
		if p >= 1 {
			v.slots[west].keep = keepAll
		}
	}
	// Networks of Germany's 2001:db8:100::/40, a /56 each.
	const n = 4000
	nets := make([]*Client, n)
	for i := range nets {
		nets[i] = &Client{Addr: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, byte(i >> 8), byte(i), 15: 1}), Bits: 64, Locator: loc}
	}
	stays := func(p float64) map[int]bool {
		setKept(p)
		out := map[int]bool{}
		for i, c := range nets {
			d := s.Decide(v, c, QTypeAAAA, uint64(i))
			switch d.Region {
			case "eu-west":
				out[i] = true
			case "eu-central":
			default:
				t.Fatalf("client %s sent to %s, not its next candidate", c.Addr, d.Region)
			}
			if d.Scope != 56 {
				t.Fatalf("scope /%d: the decision hashed the /56", d.Scope)
			}
		}
		return out
	}
	prev := map[int]bool{}
	for _, p := range []float64{0.1, 0.3, 0.6, 0.9} {
		got := stays(p)
		if frac := float64(len(got)) / n; math.Abs(frac-p) > 0.03 {
			t.Errorf("kept %v: %v of the networks stay", p, frac)
		}
		for i := range prev {
			if !got[i] {
				t.Errorf("kept %v: network %d left although it stayed at a lower kept fraction", p, i)
			}
		}
		prev = got
	}
	// Nothing spills at 1: the scope is the geo lookup's alone.
	setKept(1)
	if d := s.Decide(v, nets[0], QTypeAAAA, 1); d.Region != "eu-west" || d.Scope != 40 {
		t.Fatalf("without spill: %+v", d)
	}
	// The last candidate keeps the client whatever its kept fraction,
	// and the location is looked up once.
	for i := range v.slots {
		v.slots[i].keep = 0
	}
	v.spill = true
	loc.calls = 0
	if d := s.Decide(v, nets[0], QTypeAAAA, 1); d.Kind != KindAnswer || d.Region == "" || loc.calls != 1 {
		t.Fatalf("every region at 0: %+v, %d lookups", d, loc.calls)
	}
	// Explain agrees, and says why.
	for i := range v.slots {
		v.slots[i].keep = keepAll
	}
	setKept(0.5)
	for _, c := range nets[:200] {
		d := s.Decide(v, c, QTypeAAAA, 3)
		d2, e := s.Explain(v, c, QTypeAAAA, 3)
		if d2.Region != d.Region || d2.Scope != d.Scope {
			t.Fatalf("explain %+v, decide %+v", d2, d)
		}
		found := false
		for _, st := range e.Steps {
			if st.Step == "spill" {
				found = strings.Contains(st.Reason, "eu-west keeps 50.0% of its clients")
			}
		}
		if !found {
			t.Fatalf("no spill step in %+v", e.Steps)
		}
	}
}

// TestFactorsIncremental: a build at NextChange refreshes only the
// services whose factors are due, and new load readings only the
// services steering by load over that region.
func TestFactorsIncremental(t *testing.T) {
	var services []*Service
	for i := range 50 {
		services = append(services, steerService(fmt.Sprintf("s%d.example.", i), PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1)))
	}
	ramping := steerService("ramp.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	ramping.SlowStart = &SlowStart{Window: Duration(time.Minute)}
	loadEU := steerService("load-eu.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	loadEU.Load = &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9}
	loadUS := steerService("load-us.example.", PolicyWeighted, svcRegion("us-east", 1), svcRegion("ap-ne", 1))
	loadUS.Load = loadEU.Load
	services = append(services, ramping, loadEU, loadUS)

	down := steerState(services...)
	setLoad(down, "us-east", t0, 0.2)
	markDown("eu-west")(down)
	s := BuildSnapshotAt(down, nil, SnapshotOptions{}, t0)
	up := down.Clone()
	setLoad(up, "eu-west", t0, 0.2)
	s = BuildSnapshotAt(up, s, SnapshotOptions{}, t0.Add(time.Second))
	if st := s.Stats(); st.Refreshed != 52 || st.Compiled != 0 {
		t.Fatalf("eu-west back up: %+v, want the 52 services over it refreshed", st)
	}
	if s.NextChange().IsZero() {
		t.Fatal("nothing due while ramping")
	}
	s = BuildSnapshotAt(up, s, SnapshotOptions{}, s.NextChange())
	if st := s.Stats(); st.Refreshed != 1 || st.Compiled != 0 {
		t.Fatalf("at NextChange: %+v, want the ramping service alone refreshed", st)
	}
	again := up.Clone()
	setLoad(again, "eu-west", s.Time(), 0.3)
	s = BuildSnapshotAt(again, s, SnapshotOptions{}, s.Time().Add(time.Second))
	if st := s.Stats(); st.Refreshed != 1 || st.Compiled != 0 {
		t.Fatalf("new readings of eu-west: %+v, want load-eu.example alone refreshed", st)
	}
}

// TestVIPSlowStart: a VIP that comes back up while its region is
// answered ramps into the region's answers: the answers of a share of
// the client networks (its ramp) carry it, the others leave it out,
// until the window is over; the region's own share does not move.
func TestVIPSlowStart(t *testing.T) {
	svc := steerService("w.example.", PolicyWeighted, svcRegion("eu-west", 1))
	svc.TTL = 20
	svc.SlowStart = &SlowStart{Window: Duration(time.Minute)}
	back := netip.MustParseAddr("192.0.2.2") // eu-west has 192.0.2.1-4
	withDown := func(down bool) *State {
		st := steerState(svc)
		setReports(st, "eu-west", true, true)
		for _, rep := range st.Health["eu-west"] {
			for k := range rep.VIPs {
				if rep.VIPs[k].Addr == back {
					rep.VIPs[k].Up = !down
				}
			}
		}
		return st
	}
	s := BuildSnapshotAt(withDown(true), nil, SnapshotOptions{}, t0)
	up := withDown(false)
	start := t0.Add(3 * time.Second)
	s = BuildSnapshotAt(up, s, SnapshotOptions{}, start)
	f := factorsOf(t, s, svc.Name, "eu-west")
	if f.Ramp != 1 || f.Kept != 1 || !slices.Equal(f.RampingVIPs, []netip.Addr{back}) || f.VIPRamp == nil || *f.VIPRamp >= 1 {
		t.Fatalf("the VIP back: %+v", f)
	}
	carries := func(s *Snapshot, scope int) float64 {
		v := mustView(t, s, svc.Name)
		n, with := 2000, 0
		for i := range n {
			c := &Client{Addr: netip.AddrFrom4([4]byte{100, 64 + byte(i>>8), byte(i), 1}), Bits: 32} // a /24 each
			d := s.Decide(v, c, QTypeA, uint64(i))
			if slices.Contains(d.Addrs, back) {
				with++
				if len(d.Addrs) != 4 {
					t.Fatalf("answer %v", d.Addrs)
				}
			} else if len(d.Addrs) != 3 {
				t.Fatalf("answer %v", d.Addrs)
			}
			if d.Scope != scope {
				t.Fatalf("scope /%d, want /%d", d.Scope, scope)
			}
		}
		return float64(with) / float64(n)
	}
	if got := carries(s, 24); math.Abs(got-*f.VIPRamp) > 0.04 { // the choice hashed the /24
		t.Fatalf("%v of the networks get the VIP, its ramp is %v", got, *f.VIPRamp)
	}
	v := mustView(t, s, svc.Name)
	cl := &Client{Addr: netip.AddrFrom4([4]byte{100, 64, 7, 1}), Bits: 24}
	if a := testing.AllocsPerRun(100, func() { s.Decide(v, cl, QTypeA, 1) }); a != 0 {
		t.Fatalf("Decide allocates %v times while a VIP ramps", a)
	}
	for i := range 50 {
		c := &Client{Addr: netip.AddrFrom4([4]byte{100, 64, byte(i), 1}), Bits: 24}
		d := s.Decide(v, c, QTypeA, 9)
		d2, e := s.Explain(v, c, QTypeA, 9)
		last := e.Steps[len(e.Steps)-1]
		if !reflect.DeepEqual(d, d2) || last.Step != "vip-ramp" || !strings.Contains(last.Reason, "192.0.2.2 came back up and ramps in") {
			t.Fatalf("explain %+v for %+v, last step %+v", d2, d, last)
		}
	}
	s = follow(t, s, start.Add(time.Hour), func(s *Snapshot) {})
	f = factorsOf(t, s, svc.Name, "eu-west")
	if f.RampingVIPs != nil || carries(s, 0) != 1 || s.Time().Sub(start) > time.Minute+5*time.Second {
		t.Fatalf("after the ramp (%v): %+v", s.Time().Sub(start), f)
	}
}
