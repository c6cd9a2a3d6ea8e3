package regions

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// shiftT0 is the tests' clock.
var shiftT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func drainShift(id, service, region string, expires time.Time) *Shift {
	return &Shift{ID: id, Service: service, Drain: region, CreatedBy: "alice", Created: shiftT0, Expires: expires}
}

func weightShift(id, service string, created, expires time.Time, w map[string]uint32) *Shift {
	return &Shift{ID: id, Service: service, Weights: w, CreatedBy: "alice", Created: created, Expires: expires}
}

func TestShiftValidate(t *testing.T) {
	ok := drainShift("a1", "www.example.", "eu-west", shiftT0.Add(time.Hour))
	cases := []struct {
		name  string
		edit  func(sh *Shift)
		field string // "" valid
	}{
		{"drain of one service", func(*Shift) {}, ""},
		{"drain of every service", func(sh *Shift) { sh.Service = "" }, ""},
		{"weights", func(sh *Shift) { sh.Drain, sh.Weights = "", map[string]uint32{"eu-west": 0, "us-east": 100} }, ""},
		{"bad id", func(sh *Shift) { sh.ID = "A/B" }, "id"},
		{"service not canonical", func(sh *Shift) { sh.Service = "WWW.example" }, "service"},
		{"neither drain nor weights", func(sh *Shift) { sh.Drain = "" }, "drain"},
		{"both", func(sh *Shift) { sh.Weights = map[string]uint32{"eu-west": 1} }, "weights"},
		{"bad region", func(sh *Shift) { sh.Drain = "EU west" }, "drain"},
		{"weights of every service", func(sh *Shift) { sh.Service, sh.Drain, sh.Weights = "", "", map[string]uint32{"eu-west": 1} }, "service"},
		{"weight too large", func(sh *Shift) { sh.Drain, sh.Weights = "", map[string]uint32{"eu-west": MaxWeight + 1} }, "weights.eu-west"},
		{"reason too long", func(sh *Shift) { sh.Reason = strings.Repeat("x", MaxShiftReason+1) }, "reason"},
		{"no expiry", func(sh *Shift) { sh.Expires = time.Time{} }, "expires"},
		{"expiry before creation", func(sh *Shift) { sh.Expires = shiftT0.Add(-time.Second) }, "expires"},
		{"bad baseline", func(sh *Shift) { sh.Baseline = map[string]int{"us-east": -1} }, "baseline.us-east"},
		{"bad end", func(sh *Shift) { sh.Ended = &ShiftEnd{At: shiftT0, How: "gone"} }, "ended.how"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sh := *ok
			tc.edit(&sh)
			err := sh.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || !slices.ContainsFunc(ve.Problems, func(p FieldProblem) bool { return p.Field == tc.field }) {
				t.Fatalf("%v, want a problem with %s", err, tc.field)
			}
		})
	}
}

func TestCheckExpiry(t *testing.T) {
	cases := []struct {
		name    string
		expires time.Time
		want    string // "" valid
	}{
		{"a minute", shiftT0.Add(time.Minute), ""},
		{"72 hours", shiftT0.Add(MaxShiftDuration), ""},
		{"now", shiftT0, "in the past"},
		{"an hour ago", shiftT0.Add(-time.Hour), "in the past"},
		{"beyond 72 hours", shiftT0.Add(MaxShiftDuration + time.Second), "at most 72h0m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckExpiry("expires_in", tc.expires, shiftT0)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), "expires_in: ") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

func TestShiftCheckAgainst(t *testing.T) {
	st := steerState(steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1)))
	cases := []struct {
		name    string
		sh      *Shift
		field   string
		missing bool
	}{
		{"fine", drainShift("a", "www.example.", "eu-west", shiftT0.Add(time.Hour)), "", false},
		{"every service", drainShift("a", "", "ap-ne", shiftT0.Add(time.Hour)), "", false},
		{"unknown service", drainShift("a", "nope.example.", "eu-west", shiftT0.Add(time.Hour)), "service", true},
		{"unknown region", drainShift("a", "", "atlantis", shiftT0.Add(time.Hour)), "drain", true},
		{"not the service's", drainShift("a", "www.example.", "ap-ne", shiftT0.Add(time.Hour)), "drain", false},
		{"unknown weighed region", weightShift("a", "www.example.", shiftT0, shiftT0.Add(time.Hour), map[string]uint32{"eu-west": 1, "atlantis": 2}), "weights.atlantis", true},
		{"weighed region not the service's", weightShift("a", "www.example.", shiftT0, shiftT0.Add(time.Hour), map[string]uint32{"ap-ne": 2}), "weights.ap-ne", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			missing, err := tc.sh.CheckAgainst(st.Regions, st.Services)
			var ve *ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Fatal(err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Problems[0].Field != tc.field):
				t.Fatalf("%v, want a problem with %s", err, tc.field)
			case missing != tc.missing:
				t.Fatalf("missing %v, want %v", missing, tc.missing)
			}
		})
	}
}

// TestShiftedService: drains win over weights and last longest first;
// the newest weights shift decides a region it names; the others keep
// their configured weights; a drain of every service touches only those
// that list the region.
func TestShiftedService(t *testing.T) {
	svc := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 10), svcRegion("us-east", 20), svcRegion("ap-ne", 30))
	other := steerService("other.example.", PolicyWeighted, svcRegion("us-east", 5))
	old := weightShift("w1", "www.example.", shiftT0, shiftT0.Add(time.Hour), map[string]uint32{"eu-west": 1, "us-east": 2})
	newer := weightShift("w2", "www.example.", shiftT0.Add(time.Minute), shiftT0.Add(time.Hour), map[string]uint32{"us-east": 7})
	drainAll := drainShift("d1", "", "ap-ne", shiftT0.Add(time.Hour))
	drainOwn := drainShift("d2", "www.example.", "eu-west", shiftT0.Add(time.Hour))
	cases := []struct {
		name   string
		svc    *Service
		shifts []*Shift
		want   []uint32
	}{
		{"none", svc, nil, []uint32{10, 20, 30}},
		{"weights", svc, []*Shift{old}, []uint32{1, 2, 30}},
		{"the newest weights win", svc, []*Shift{newer, old}, []uint32{1, 7, 30}},
		{"a drain of every service", svc, []*Shift{drainAll, newer}, []uint32{10, 7, 0}},
		{"a drain wins over weights", svc, []*Shift{old, drainOwn}, []uint32{0, 2, 30}},
		{"another service's shift", svc, []*Shift{weightShift("w3", "other.example.", shiftT0, shiftT0.Add(time.Hour), map[string]uint32{"eu-west": 9})}, []uint32{10, 20, 30}},
		{"a drain of a region it lacks", other, []*Shift{drainAll, drainOwn}, []uint32{5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ShiftedService(tc.svc, tc.shifts)
			var ws []uint32
			for _, sr := range got.Regions {
				ws = append(ws, sr.Weight)
			}
			if !slices.Equal(ws, tc.want) {
				t.Fatalf("weights %v, want %v", ws, tc.want)
			}
			if (got == tc.svc) != slices.Equal(tc.want, weightsOf(tc.svc)) || tc.svc.Regions[0].Weight != weightsOf(tc.svc)[0] {
				t.Fatal("the service was changed in place, or copied for nothing")
			}
		})
	}
}

func weightsOf(s *Service) []uint32 {
	var ws []uint32
	for _, sr := range s.Regions {
		ws = append(ws, sr.Weight)
	}
	return ws
}

func TestShiftTargets(t *testing.T) {
	svcs := map[string]*Service{
		"www.example.": steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 50), svcRegion("us-east", 50), svcRegion("ap-ne", 0)),
		"api.example.": steerService("api.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("eu-central", 1)),
	}
	cases := []struct {
		name string
		sh   *Shift
		want []string
	}{
		{"drain of one service", drainShift("a", "www.example.", "eu-west", shiftT0.Add(time.Hour)), []string{"us-east"}},
		{"drain of every service", drainShift("a", "", "eu-west", shiftT0.Add(time.Hour)), []string{"eu-central", "us-east"}},
		{"weights: the shares that grow", weightShift("a", "www.example.", shiftT0, shiftT0.Add(time.Hour), map[string]uint32{"eu-west": 10, "ap-ne": 10}), []string{"ap-ne", "us-east"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sh.Targets(svcs); !slices.Equal(got, tc.want) {
				t.Fatalf("targets %v, want %v", got, tc.want)
			}
		})
	}
}

// shares is v's expected IPv4 shares in s.
func shares(t *testing.T, s *Snapshot, name string) map[string]float64 {
	t.Helper()
	sh, ok := s.ExpectedShares(mustView(t, s, name), QTypeA)
	if !ok {
		t.Fatalf("no shares for %s", name)
	}
	return sh.Regions
}

func sameShares(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if math.Abs(b[k]-v) > 1e-9 {
			return false
		}
	}
	return true
}

// TestSnapshotShifts: a snapshot applies the shifts active at its time;
// built again at an expiry from the one before, it refreshes only the
// services shifted and answers by their own weights again.
func TestSnapshotShifts(t *testing.T) {
	www := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	api := steerService("api.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 3))
	far := steerService("far.example.", PolicyWeighted, svcRegion("ap-ne", 1), svcRegion("us-east", 1))
	st := steerState(www, api, far)
	st.Shifts["s1"] = drainShift("s1", "www.example.", "eu-west", shiftT0.Add(10*time.Minute))
	st.Shifts["s2"] = drainShift("s2", "", "us-east", shiftT0.Add(20*time.Minute))
	st.Shifts["s3"] = weightShift("s3", "api.example.", shiftT0, shiftT0.Add(30*time.Minute), map[string]uint32{"eu-west": 3})
	st.Shifts["old"] = drainShift("old", "far.example.", "ap-ne", shiftT0.Add(-time.Minute))
	st.Shifts["gone"] = drainShift("gone", "far.example.", "us-east", shiftT0.Add(time.Hour))
	st.Shifts["gone"].Ended = &ShiftEnd{At: shiftT0, How: ShiftCancelled, By: "bob"}

	steps := []struct {
		at        time.Duration
		www, api  map[string]float64
		far       map[string]float64
		next      time.Duration // 0: none
		refreshed int
	}{
		// www: eu-west drained by s1 and us-east by s2 for every service
		// (forced: it answers NODATA); api: eu-west weighs 3 by s3 and
		// us-east is drained by s2.
		{0, map[string]float64{"eu-west": 0, "us-east": 0}, map[string]float64{"eu-west": 1, "us-east": 0}, map[string]float64{"ap-ne": 1, "us-east": 0}, 10 * time.Minute, 0},
		// s1 expired: www has eu-west back.
		{10 * time.Minute, map[string]float64{"eu-west": 1, "us-east": 0}, map[string]float64{"eu-west": 1, "us-east": 0}, map[string]float64{"ap-ne": 1, "us-east": 0}, 20 * time.Minute, 1},
		// s2 expired: us-east back everywhere (three services).
		{20 * time.Minute, map[string]float64{"eu-west": 0.5, "us-east": 0.5}, map[string]float64{"eu-west": 0.5, "us-east": 0.5}, map[string]float64{"ap-ne": 0.5, "us-east": 0.5}, 30 * time.Minute, 3},
		// s3 expired: api by its own weights.
		{30 * time.Minute, map[string]float64{"eu-west": 0.5, "us-east": 0.5}, map[string]float64{"eu-west": 0.25, "us-east": 0.75}, map[string]float64{"ap-ne": 0.5, "us-east": 0.5}, 0, 1},
	}
	var prev *Snapshot
	for _, step := range steps {
		s := BuildSnapshotAt(st, prev, SnapshotOptions{}, shiftT0.Add(step.at))
		if p := s.Problems(); len(p) > 0 {
			t.Fatal(p)
		}
		for name, want := range map[string]map[string]float64{"www.example.": step.www, "api.example.": step.api, "far.example.": step.far} {
			if got := shares(t, s, name); !sameShares(got, want) {
				t.Errorf("at +%s: %s shares %v, want %v", step.at, name, got, want)
			}
		}
		wantNext := time.Time{}
		if step.next > 0 {
			wantNext = shiftT0.Add(step.next)
		}
		if !s.NextChange().Equal(wantNext) {
			t.Errorf("at +%s: next change %v, want %v", step.at, s.NextChange(), wantNext)
		}
		if prev != nil {
			if bs := s.Stats(); bs.Compiled != 0 || bs.Refreshed != step.refreshed {
				t.Errorf("at +%s: compiled %d, refreshed %d; want 0 and %d", step.at, bs.Compiled, bs.Refreshed, step.refreshed)
			}
		}
		prev = s
	}
	t.Run("explain names the shift and until when", func(t *testing.T) {
		s := BuildSnapshotAt(st, nil, SnapshotOptions{}, shiftT0)
		_, e := s.Explain(mustView(t, s, "api.example."), newClient(clientDE, nil), QTypeA, 1)
		var health *ExplainStep
		for i := range e.Steps {
			if e.Steps[i].Step == "health" {
				health = &e.Steps[i]
			}
		}
		if health == nil || len(health.Candidates) != 2 {
			t.Fatalf("no health step: %+v", e.Steps)
		}
		eu, us := health.Candidates[0], health.Candidates[1]
		if eu.Shift == nil || eu.Shift.ID != "s3" || eu.Shift.Weight != 3 || eu.Shift.ConfiguredWeight != 1 || !eu.Shift.Expires.Equal(shiftT0.Add(30*time.Minute)) ||
			!strings.HasPrefix(eu.Note, "weight 3 by shift s3 until 2026-03-01T12:30:00Z (configured weight 1); ") {
			t.Errorf("eu-west %+v %+v", eu, eu.Shift)
		}
		if us.Shift == nil || us.Shift.ID != "s2" || us.Note != "drained by shift s2 until 2026-03-01T12:20:00Z (configured weight 3)" {
			t.Errorf("us-east %+v", us)
		}
		if ref := s.ShiftOf(mustView(t, s, "far.example."), "us-east"); ref == nil || ref.ID != "s2" || ref.Weight != 0 {
			t.Errorf("ShiftOf %+v", ref)
		}
		if st, _ := s.ShiftState(st.Shifts["gone"]); st != ShiftCancelled {
			t.Errorf("state of a cancelled shift %s", st)
		}
		if st, _ := s.ShiftState(st.Shifts["old"]); st != ShiftExpired {
			t.Errorf("state of an expired shift %s", st)
		}
	})
}

// TestShiftGuard: a region a guarded shift moved traffic to losing a
// healthy VIP reverts the shift at once, and it stays reverted in the
// snapshots built from that one when the VIP comes back.
func TestShiftGuard(t *testing.T) {
	www := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	st := steerState(www)
	st.Regions["us-east"] = steerRegion("us-east", 39.04, -77.49, "198.51.100.1", "198.51.100.2")
	sh := drainShift("g1", "www.example.", "eu-west", shiftT0.Add(time.Hour))
	sh.RevertIf = &ShiftGuard{Unhealthy: true}
	sh.Baseline = BuildSnapshotAt(st, nil, SnapshotOptions{}, shiftT0).ShiftBaseline(sh)
	if len(sh.Baseline) != 1 || sh.Baseline["us-east"] != 2 {
		t.Fatalf("baseline %v", sh.Baseline)
	}
	st.Shifts["g1"] = sh

	s1 := BuildSnapshotAt(st, nil, SnapshotOptions{}, shiftT0)
	if got := shares(t, s1, "www.example."); got["eu-west"] != 0 {
		t.Fatalf("the guarded drain is not applied: %v", got)
	}
	// One VIP of us-east goes down.
	st2 := st.Clone()
	rep := report(st2, "us-east", "p1", true)
	rep.VIPs[1].Up = false
	st2.Health["us-east"] = map[string]*HealthReport{"p1": rep}
	s2 := BuildSnapshotAt(st2, s1, SnapshotOptions{}, shiftT0.Add(time.Second))
	if got := shares(t, s2, "www.example."); got["eu-west"] != 0.5 {
		t.Fatalf("the guard did not revert the drain: %v", got)
	}
	state, why := s2.ShiftState(sh)
	if state != ShiftReverted || why != "unhealthy: region us-east has 1 of 2 VIPs healthy, 2 when the shift was made" || s2.ShiftTrips()["g1"] != why {
		t.Fatalf("state %s %q, trips %v", state, why, s2.ShiftTrips())
	}
	// The VIP comes back: the shift stays reverted.
	st3 := st2.Clone()
	st3.Health["us-east"] = map[string]*HealthReport{"p1": report(st3, "us-east", "p1", true)}
	s3 := BuildSnapshotAt(st3, s2, SnapshotOptions{}, shiftT0.Add(2*time.Second))
	if got := shares(t, s3, "www.example."); got["eu-west"] != 0.5 || s3.ShiftTrips()["g1"] == "" {
		t.Fatalf("the shift came back after its guard tripped: %v", got)
	}
	if !s3.NextChange().IsZero() {
		t.Fatalf("a reverted shift still schedules a change at %v", s3.NextChange())
	}
}

// TestShiftGuardHighWatermark: a region a guarded shift moved traffic to
// whose fresh utilisation is above the high watermark of a service the
// shift affects reverts the shift; a stale reading, the drained region's
// own load, or a service that does not steer by load never do.
func TestShiftGuardHighWatermark(t *testing.T) {
	steered := func() *Service {
		s := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
		s.Load = &LoadSteering{LowWatermark: 0.7, HighWatermark: 0.9, MaxSignalAge: Duration(15 * time.Second)}
		return s
	}
	plain := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	cases := []struct {
		name    string
		svc     *Service
		region  string
		util    float64
		age     time.Duration
		tripped string // "" holds
	}{
		{"below the watermark", steered(), "us-east", 0.5, time.Second, ""},
		{"above it", steered(), "us-east", 0.95, time.Second,
			"high_watermark: region us-east is at utilisation 0.95, above the high watermark 0.9 of service www.example."},
		{"above it, but stale", steered(), "us-east", 0.95, time.Minute, ""},
		{"the drained region above it", steered(), "eu-west", 0.95, time.Second, ""},
		{"no load steering", plain, "us-east", 0.95, time.Second, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := steerState(tc.svc)
			sh := drainShift("g1", "www.example.", "eu-west", shiftT0.Add(time.Hour))
			sh.RevertIf = &ShiftGuard{HighWatermark: true}
			st.Shifts["g1"] = sh
			setLoad(st, tc.region, shiftT0.Add(-tc.age), tc.util)
			s := BuildSnapshotAt(st, nil, SnapshotOptions{}, shiftT0)
			state, why := s.ShiftState(sh)
			eu := shares(t, s, "www.example.")["eu-west"]
			if tc.tripped == "" {
				if state != ShiftActive || eu != 0 || len(s.ShiftTrips()) != 0 {
					t.Fatalf("state %s %q, eu-west's share %v: the shift should hold", state, why, eu)
				}
				return
			}
			if state != ShiftReverted || why != tc.tripped || s.ShiftTrips()["g1"] != why || eu == 0 {
				t.Fatalf("state %s %q, eu-west's share %v; want reverted: %s", state, why, eu, tc.tripped)
			}
		})
	}
}

// TestShiftEndSlowStart: the weight a shift leaves is the one the
// factors start from (shiftOf): explain's shift note names the shift
// while it is in force; its expiry is the snapshot's NextChange; the
// snapshot built then refreshes only the shifted service, whose region
// ramps in through its slow start, and the others stay as they were.
func TestShiftEndSlowStart(t *testing.T) {
	www := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	www.TTL = 20
	www.SlowStart = &SlowStart{Window: Duration(time.Minute)}
	other := steerService("other.example.", PolicyWeighted, svcRegion("ap-ne", 1), svcRegion("us-east", 1))
	st := steerState(www, other)
	end := shiftT0.Add(10 * time.Minute)
	st.Shifts["d1"] = drainShift("d1", "www.example.", "eu-west", end)

	s := BuildSnapshotAt(st, nil, SnapshotOptions{}, shiftT0)
	f := factorsOf(t, s, "www.example.", "eu-west")
	if f.Health != 0 || f.EffectiveWeight != 0 || f.ShiftNote != "weight 0 by shift d1 until 2026-03-01T12:10:00Z (configured weight 1)" ||
		!strings.HasPrefix(f.Why, "drained by shift d1: ") {
		t.Fatalf("while drained: %+v", f)
	}
	if g := factorsOf(t, s, "www.example.", "us-east"); g.ShiftNote != "no shift" {
		t.Fatalf("us-east: %+v", g)
	}
	if !s.NextChange().Equal(end) {
		t.Fatalf("NextChange %v, want the expiry %v", s.NextChange(), end)
	}
	otherView := mustView(t, s, "other.example.")

	first := true
	s = follow(t, s, end.Add(5*time.Minute), func(s *Snapshot) {
		f := factorsOf(t, s, "www.example.", "eu-west")
		if first {
			first = false
			if !s.Time().Equal(end) {
				t.Fatalf("first build at %v, want the expiry %v", s.Time(), end)
			}
			if bs := s.Stats(); bs.Compiled != 0 || bs.Refreshed != 1 || mustView(t, s, "other.example.") != otherView {
				t.Fatalf("at the expiry: compiled %d, refreshed %d; want only www refreshed", bs.Compiled, bs.Refreshed)
			}
			if f.Health != 1 || f.ShiftNote != "no shift" || !strings.HasPrefix(f.RampNote, "slow start of the region, 0s of 1m0s") || f.Kept <= 0 || f.Kept >= 1 {
				t.Fatalf("at the expiry: %+v", f)
			}
		}
	})
	if first {
		t.Fatal("no snapshot built at the expiry")
	}
	if f := factorsOf(t, s, "www.example.", "eu-west"); f.Ramp != 1 || f.Kept != 1 || !s.NextChange().IsZero() {
		t.Fatalf("after the ramp: %+v, next %v", f, s.NextChange())
	}
	if end := s.Time().Sub(end); end < time.Minute-5*time.Second || end > time.Minute+5*time.Second {
		t.Fatalf("the ramp ended %v after the expiry, want within a tick (5s) of its window (1m)", end)
	}
}

// TestShiftIncremental: on states derived from the previous one
// (State.Derive, as the watcher delivers them), a shift that starts or
// is cancelled refreshes exactly the services it touches, and the
// expiry of every shift in force stays the snapshot's NextChange, also
// when the build looks only at a service the shift does not touch. Each
// step answers as a build from scratch does.
func TestShiftIncremental(t *testing.T) {
	www := steerService("www.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 1))
	api := steerService("api.example.", PolicyWeighted, svcRegion("eu-west", 1), svcRegion("us-east", 3))
	far := steerService("far.example.", PolicyWeighted, svcRegion("ap-ne", 1), svcRegion("eu-central", 1))
	cur := steerState(www, api, far)
	prev := BuildSnapshotAt(cur, nil, SnapshotOptions{}, shiftT0)

	steps := []struct {
		name      string
		at        time.Duration
		change    func(st *State)
		compiled  int
		refreshed []string // the services whose view is new without a compile
		next      time.Duration
	}{
		{"a shift of www starts", time.Minute, func(st *State) {
			st.Shifts["s1"] = drainShift("s1", "www.example.", "eu-west", shiftT0.Add(10*time.Minute))
		}, 0, []string{"www.example."}, 10 * time.Minute},
		{"api written, the shift of www in force", 2 * time.Minute, func(st *State) {
			st.PutService("api.example.", steerService("api.example.", PolicyWeighted, svcRegion("eu-west", 2), svcRegion("us-east", 3)))
		}, 1, nil, 10 * time.Minute},
		{"a drain of us-east for every service starts", 3 * time.Minute, func(st *State) {
			st.Shifts["s2"] = drainShift("s2", "", "us-east", shiftT0.Add(20*time.Minute))
		}, 0, []string{"api.example.", "www.example."}, 10 * time.Minute},
		{"a service added at the expiry of s1", 10 * time.Minute, func(st *State) {
			st.PutService("new.example.", steerService("new.example.", PolicyWeighted, svcRegion("ap-ne", 1)))
		}, 1, []string{"www.example."}, 20 * time.Minute},
		{"a weight shift of far starts", 11 * time.Minute, func(st *State) {
			st.Shifts["s3"] = weightShift("s3", "far.example.", shiftT0.Add(11*time.Minute), shiftT0.Add(15*time.Minute), map[string]uint32{"ap-ne": 3})
		}, 0, []string{"far.example."}, 15 * time.Minute},
		{"s2 cancelled", 12 * time.Minute, func(st *State) {
			sh := *st.Shifts["s2"]
			sh.Ended = &ShiftEnd{At: shiftT0.Add(12 * time.Minute), How: ShiftCancelled, By: "bob"}
			st.Shifts["s2"] = &sh
		}, 0, []string{"api.example.", "www.example."}, 15 * time.Minute},
		{"nothing changed before the expiry of s3", 14 * time.Minute, func(*State) {}, 0, nil, 15 * time.Minute},
		{"s3 expired", 15 * time.Minute, func(*State) {}, 0, []string{"far.example."}, 0},
	}
	for _, step := range steps {
		next := cur.Derive()
		step.change(next)
		now := shiftT0.Add(step.at)
		s := BuildSnapshotAt(next, prev, SnapshotOptions{}, now)
		full := BuildSnapshotAt(next, nil, SnapshotOptions{}, now)
		if p := s.Problems(); len(p) > 0 {
			t.Fatalf("%s: %q", step.name, p)
		}
		var refreshed []string
		for i := range s.NumServices() {
			v := s.ServiceAt(i)
			if got, want := shares(t, s, v.Name()), shares(t, full, v.Name()); !sameShares(got, want) {
				t.Errorf("%s: %s shares %v, from scratch %v", step.name, v.Name(), got, want)
			}
			if pv := prev.ServiceByName(v.Name()); pv != nil && pv != v && pv.svc == v.svc {
				refreshed = append(refreshed, v.Name())
			}
		}
		if bs := s.Stats(); bs.Compiled != step.compiled || bs.Refreshed != len(step.refreshed) || !slices.Equal(refreshed, step.refreshed) {
			t.Errorf("%s: compiled %d, refreshed %d %v; want %d and %v", step.name, bs.Compiled, bs.Refreshed, refreshed, step.compiled, step.refreshed)
		}
		wantNext := time.Time{}
		if step.next > 0 {
			wantNext = shiftT0.Add(step.next)
		}
		if !s.NextChange().Equal(wantNext) || !full.NextChange().Equal(wantNext) {
			t.Errorf("%s: next change %v (from scratch %v), want %v", step.name, s.NextChange(), full.NextChange(), wantNext)
		}
		cur, prev = next, s
	}
}
