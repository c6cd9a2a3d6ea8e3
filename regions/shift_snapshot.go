package regions

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// shiftIndex is the shifts a snapshot applies, found at its time: the
// ones active (not ended, not expired) whose guard has not tripped. A
// service's slots read their weights through it (setRegions), so a
// shift's effect is computed when the snapshot is built, never on the
// query path.
type shiftIndex struct {
	// drains holds, by region name, the drain of every service that
	// decides it (the one that lasts longest); svc, by service name,
	// the shifts of that service alone.
	drains map[string]*Shift
	svc    map[string][]*Shift
	// tripped holds the shifts whose guard reverted them, by id, with
	// why: they no longer apply, and stay reverted in the snapshots
	// built from this one until their end is recorded.
	tripped map[string]string
}

// weight is the weight region gets in service under the shifts in force,
// and the shift that decides it (nil: none; base stays).
func (x *shiftIndex) weight(service, region string, base uint32) (uint32, *Shift) {
	if x == nil || len(x.drains) == 0 && len(x.svc) == 0 {
		return base, nil
	}
	return shiftWeight(x.svc[service], x.drains[region], region, base)
}

// buildShifts finds the shifts in force at the snapshot's time, with the
// regions' health known: a shift whose guard trips now, or tripped in
// prev, is not applied.
func (s *Snapshot) buildShifts(prev *Snapshot) {
	x := &shiftIndex{}
	s.shifts = x
	for _, id := range slices.Sorted(maps.Keys(s.state.Shifts)) {
		sh := s.state.Shifts[id]
		if sh == nil || !sh.ActiveAt(s.now) {
			continue
		}
		why := ""
		if prev != nil && prev.shifts != nil {
			why = prev.shifts.tripped[id]
		}
		if why == "" && sh.RevertIf != nil {
			why = s.guardTrips(sh)
		}
		if why != "" {
			if x.tripped == nil {
				x.tripped = map[string]string{}
			}
			x.tripped[id] = why
			continue
		}
		// The snapshot must be built again at the expiry (NextChange).
		s.dueAt(sh.Expires.UnixNano())
		if sh.Service == "" {
			if x.drains == nil {
				x.drains = map[string]*Shift{}
			}
			if d := x.drains[sh.Drain]; d == nil || shiftRank(sh, d) < 0 {
				x.drains[sh.Drain] = sh
			}
			continue
		}
		if x.svc == nil {
			x.svc = map[string][]*Shift{}
		}
		x.svc[sh.Service] = append(x.svc[sh.Service], sh)
	}
}

// guardTrips says why sh's guard reverts it now ("" while it holds):
// with unhealthy, a region it moves traffic to has fewer healthy VIPs
// than when the shift was made; with high_watermark, a region it moves
// traffic to of a service that steers by load reads above that
// service's high watermark. Only a fresh reading counts (as for the
// load factor, docs/controller.md): a stale or missing one never trips.
func (s *Snapshot) guardTrips(sh *Shift) string {
	g := sh.RevertIf
	if g.Unhealthy {
		for _, r := range slices.Sorted(maps.Keys(sh.Baseline)) {
			i, ok := s.regionIdx[r]
			if !ok {
				continue // deleted: it takes no traffic
			}
			if rs := &s.regions[i]; rs.Healthy < sh.Baseline[r] {
				return fmt.Sprintf("unhealthy: region %s has %d of %d VIPs healthy, %d when the shift was made", r, rs.Healthy, len(rs.VIPs), sh.Baseline[r])
			}
		}
	}
	if g.HighWatermark {
		for _, name := range slices.Sorted(maps.Keys(s.state.Services)) {
			svc := s.state.Services[name]
			if svc == nil || svc.Load == nil || !sh.Affects(svc) {
				continue
			}
			for _, r := range sh.Targets(map[string]*Service{name: svc}) {
				i, ok := s.regionIdx[r]
				if !ok {
					continue
				}
				rs := &s.regions[i]
				if l := rs.LoadAt(s.now, time.Duration(svc.Load.MaxSignalAge)); l != nil && l.Probers > 0 && l.Utilisation > svc.Load.HighWatermark {
					return fmt.Sprintf("high_watermark: region %s is at utilisation %.2f, above the high watermark %v of service %s", r, l.Utilisation, svc.Load.HighWatermark, svc.Name)
				}
			}
		}
	}
	return ""
}

// shiftChanges compares the shifts in force with prev's: it marks in
// changed the regions whose drain of every service changed (every
// service that lists them is refreshed, as for a region drain) and
// returns the services whose own shifts changed. changed is nil when
// every service is compiled anyway.
func (s *Snapshot) shiftChanges(prev *Snapshot, changed []bool) map[string]bool {
	if prev == nil || changed == nil {
		return nil
	}
	a, b := prev.shifts, s.shifts
	if a == nil {
		a = &shiftIndex{}
	}
	for _, m := range []map[string]*Shift{a.drains, b.drains} {
		for r := range m {
			if a.drains[r] != b.drains[r] {
				if i, ok := s.regionIdx[r]; ok {
					changed[i] = true
				}
			}
		}
	}
	var out map[string]bool
	for _, m := range []map[string][]*Shift{a.svc, b.svc} {
		for name := range m {
			if !slices.Equal(a.svc[name], b.svc[name]) {
				if out == nil {
					out = map[string]bool{}
				}
				out[name] = true
			}
		}
	}
	return out
}

// ShiftState is a shift's state as this snapshot applies it: reverted
// (with why) once its guard tripped, even before the end is recorded.
func (s *Snapshot) ShiftState(sh *Shift) (ShiftState, string) {
	if sh.Ended != nil {
		return sh.Ended.How, sh.Ended.Detail
	}
	if s.shifts != nil {
		if why, ok := s.shifts.tripped[sh.ID]; ok {
			return ShiftReverted, why
		}
	}
	return sh.State(s.now), ""
}

// ShiftTrips lists the shifts whose guard reverted them in this
// snapshot, by id, with why: a server records their end.
func (s *Snapshot) ShiftTrips() map[string]string {
	if s.shifts == nil {
		return nil
	}
	return maps.Clone(s.shifts.tripped)
}

// ShiftOf is the shift that decides region's weight in v, nil when none
// does.
func (s *Snapshot) ShiftOf(v *ServiceView, region string) *ShiftRef {
	for i := range v.slots {
		if sl := &v.slots[i]; sl.name == region {
			return s.shiftOf(v, sl).ref(sl)
		}
	}
	return nil
}

// shiftOf is the shift in force for a slot (the hook of the factors,
// docs/controller.md): the weight it leaves the region, the configured
// one without a shift. setRegions takes the weight (0 drains the region
// from the service; a weight back above 0, as when the shift ends,
// starts its slow start); the factor stays 1, since the shift acts
// through the weight alone. It is computed at build time and by
// explain, never on the query path.
func (s *Snapshot) shiftOf(v *ServiceView, sl *slot) shiftEffect {
	w, sh := s.shifts.weight(v.name, sl.name, sl.base)
	e := shiftEffect{weight: w, factor: 1, by: sh}
	if sh != nil {
		e.note = fmt.Sprintf("weight %d %s", w, shiftNote(e.ref(sl)))
	}
	return e
}

// ref is the shift of e as explain and status show it (nil: none).
func (e shiftEffect) ref(sl *slot) *ShiftRef {
	if e.by == nil {
		return nil
	}
	return &ShiftRef{ID: e.by.ID, Weight: e.weight, ConfiguredWeight: sl.base, Expires: e.by.Expires, Reason: e.by.Reason}
}

// ShiftBaseline is what the unhealthy guard of sh compares with: each
// region sh moves traffic to (with the services of the snapshot's state)
// and how many of its VIPs are healthy in the snapshot. The server that
// accepts a shift records it.
func (s *Snapshot) ShiftBaseline(sh *Shift) map[string]int {
	out := map[string]int{}
	for _, r := range sh.Targets(s.state.Services) {
		if i, ok := s.regionIdx[r]; ok {
			out[r] = s.regions[i].Healthy
		}
	}
	return out
}
