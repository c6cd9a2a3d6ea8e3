package regions

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/regions/latency"
)

// Shift is a temporary override of where a service's traffic goes: drain
// one region for one service or for all, or set some weights of one
// service. It always carries an expiry, at most MaxShiftDuration ahead,
// after which every server stops applying it on its own: no write is
// needed for the answers to change back (docs/shifts.md).
type Shift struct {
	ID string `json:"id"`
	// Service is the service shifted (canonical name); "" with Drain
	// shifts every service that lists the region.
	Service string `json:"service,omitempty"`
	// Drain takes this region out of the service's answers (or of
	// every service's), as a weight of 0.
	Drain string `json:"drain,omitempty"`
	// Weights replace the weights of the regions named; the others keep
	// their own.
	Weights map[string]uint32 `json:"weights,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	// CreatedBy is the API token's name that created it.
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// RevertIf ends the shift early when a region it moved traffic to
	// gets into trouble; nil: no guard.
	RevertIf *ShiftGuard `json:"revert_if,omitempty"`
	// Baseline is, for each region the shift moves traffic to, how many
	// of its VIPs were healthy when the shift was made: the unhealthy
	// guard compares with it. Set by the server.
	Baseline map[string]int `json:"baseline,omitempty"`
	// Ended records how the shift ended: cancelled, expired or reverted
	// by its guard. An expired shift stops applying at its expiry
	// whether or not the end is recorded yet.
	Ended *ShiftEnd `json:"ended,omitempty"`
}

// ShiftGuard says when a shift reverts before its expiry.
type ShiftGuard struct {
	// HighWatermark: a region the shift moves traffic to goes above the
	// high watermark of a service's load steering.
	HighWatermark bool `json:"high_watermark,omitempty"`
	// Unhealthy: a region the shift moves traffic to has fewer healthy
	// VIPs than when the shift was made.
	Unhealthy bool `json:"unhealthy,omitempty"`
}

// ShiftEnd is how and when a shift ended.
type ShiftEnd struct {
	At  time.Time  `json:"at"`
	How ShiftState `json:"how"`
	// By is the API token's name for a cancel; for an expiry or a
	// revert, the server that recorded it.
	By string `json:"by,omitempty"`
	// Detail says why a guard reverted the shift.
	Detail string `json:"detail,omitempty"`
}

// ShiftState is where a shift is in its life.
type ShiftState string

// The states of a shift.
const (
	ShiftActive    ShiftState = "active"
	ShiftExpired   ShiftState = "expired"
	ShiftCancelled ShiftState = "cancelled"
	ShiftReverted  ShiftState = "reverted"
)

// Limits of shifts.
const (
	// MaxShiftDuration is how far ahead a shift's expiry may be, from
	// the time it is made or extended.
	MaxShiftDuration = 72 * time.Hour
	// MaxShiftReason bounds a shift's reason, in bytes.
	MaxShiftReason = 512
	maxShiftID     = 64
)

var shiftIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// ValidShiftID says whether id can name a shift (it is part of an etcd
// key): lower-case letters, digits and hyphens, at most 64.
func ValidShiftID(id string) bool { return len(id) <= maxShiftID && shiftIDRE.MatchString(id) }

// State is the shift's state at now: how it ended, expired once now is
// at its expiry, active before.
func (sh *Shift) State(now time.Time) ShiftState {
	switch {
	case sh.Ended != nil:
		return sh.Ended.How
	case !now.Before(sh.Expires):
		return ShiftExpired
	}
	return ShiftActive
}

// ActiveAt says whether the shift applies at now (its guard aside).
func (sh *Shift) ActiveAt(now time.Time) bool { return sh.State(now) == ShiftActive }

// Describe says what the shift does, in a few words.
func (sh *Shift) Describe() string {
	svc := "every service"
	if sh.Service != "" {
		svc = sh.Service
	}
	if sh.Drain != "" {
		return "drain " + sh.Drain + " from " + svc
	}
	parts := make([]string, 0, len(sh.Weights))
	for _, r := range slices.Sorted(maps.Keys(sh.Weights)) {
		parts = append(parts, fmt.Sprintf("%s=%d", r, sh.Weights[r]))
	}
	return "weights " + strings.Join(parts, ",") + " for " + svc
}

// Validate checks a shift's fields on their own: what every stored shift
// must satisfy. Whether its service and regions exist and its expiry is
// within MaxShiftDuration of the write is checked when it is written
// (CheckExpiry and the store).
func (sh *Shift) Validate() error {
	var p problems
	if !ValidShiftID(sh.ID) {
		p.add("id", "%q: want lower-case letters, digits and hyphens, at most %d", sh.ID, maxShiftID)
	}
	if sh.Service != "" {
		if name := CanonicalName(sh.Service); !isHostname(name) || name != sh.Service {
			p.add("service", "%q is not a service name (lower case, fully qualified)", sh.Service)
		}
	}
	switch {
	case sh.Drain == "" && len(sh.Weights) == 0:
		p.add("drain", "a shift drains a region (drain) or sets weights (weights)")
	case sh.Drain != "" && len(sh.Weights) > 0:
		p.add("weights", "a shift drains a region or sets weights, not both")
	case sh.Drain != "" && !latency.ValidRegionName(sh.Drain):
		p.add("drain", "%q is not a region name", sh.Drain)
	case len(sh.Weights) > 0 && sh.Service == "":
		p.add("service", "weights apply to one service: name it")
	}
	if len(sh.Weights) > MaxRegions {
		p.add("weights", "%d regions, at most %d", len(sh.Weights), MaxRegions)
	}
	for _, r := range slices.Sorted(maps.Keys(sh.Weights)) {
		switch {
		case !latency.ValidRegionName(r):
			p.add("weights."+r, "%q is not a region name", r)
		case sh.Weights[r] > MaxWeight:
			p.add("weights."+r, "%d: at most %d", sh.Weights[r], MaxWeight)
		}
	}
	if len(sh.Reason) > MaxShiftReason {
		p.add("reason", "%d bytes, at most %d", len(sh.Reason), MaxShiftReason)
	}
	if sh.Expires.IsZero() {
		p.add("expires", "a shift must carry an expiry")
	} else if !sh.Created.IsZero() && !sh.Expires.After(sh.Created) {
		p.add("expires", "%s is not after the shift was made (%s)", sh.Expires.Format(time.RFC3339), sh.Created.Format(time.RFC3339))
	}
	for _, r := range slices.Sorted(maps.Keys(sh.Baseline)) {
		if !latency.ValidRegionName(r) || sh.Baseline[r] < 0 || sh.Baseline[r] > MaxVIPs {
			p.add("baseline."+r, "%d healthy VIPs of %q: want 0 to %d of a region", sh.Baseline[r], r, MaxVIPs)
		}
	}
	if e := sh.Ended; e != nil {
		switch e.How {
		case ShiftExpired, ShiftCancelled, ShiftReverted:
		default:
			p.add("ended.how", "%q: want expired, cancelled or reverted", e.How)
		}
		if e.At.IsZero() {
			p.add("ended.at", "when the shift ended is missing")
		}
	}
	return p.err("shift", sh.ID)
}

// CheckExpiry checks an expiry given at now: after now, at most
// MaxShiftDuration ahead. field names it in the error ("expires",
// "expires_in").
func CheckExpiry(field string, expires, now time.Time) error {
	var p problems
	switch {
	case !expires.After(now):
		p.add(field, "%s is in the past: a shift must end in the future", expires.UTC().Format(time.RFC3339))
	case expires.Sub(now) > MaxShiftDuration:
		p.add(field, "%s is %s ahead: a shift lasts at most %s", expires.UTC().Format(time.RFC3339),
			expires.Sub(now).Round(time.Second), MaxShiftDuration)
	}
	return p.err("shift", "")
}

// CheckAgainst checks that what the shift names exists, with the regions
// and services as they are: its service, the region it drains and the
// regions it weighs (each one of the service's). The problems name the
// request's fields; missing says whether a problem is about a service or
// region that does not exist at all (the API answers 404 then, 400 for
// the rest).
func (sh *Shift) CheckAgainst(regs map[string]*Region, svcs map[string]*Service) (missing bool, err error) {
	var p problems
	var svc *Service
	if sh.Service != "" {
		if svc = svcs[sh.Service]; svc == nil {
			p.add("service", "no service %q", sh.Service)
			return true, p.err("shift", sh.ID)
		}
	}
	member := func(r string) bool {
		return svc == nil || slices.ContainsFunc(svc.Regions, func(sr ServiceRegion) bool { return sr.Region == r })
	}
	if sh.Drain != "" {
		switch {
		case regs[sh.Drain] == nil:
			p.add("drain", "no region %q", sh.Drain)
			missing = true
		case !member(sh.Drain):
			p.add("drain", "%q is not one of the regions of %s", sh.Drain, sh.Service)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(sh.Weights)) {
		switch {
		case regs[r] == nil:
			p.add("weights."+r, "no region %q", r)
			missing = true
		case !member(r):
			p.add("weights."+r, "%q is not one of the regions of %s", r, sh.Service)
		}
	}
	return missing, p.err("shift", sh.ID)
}

// Affects says whether the shift changes the weights of service svc.
func (sh *Shift) Affects(svc *Service) bool {
	if sh.Service != "" {
		return CanonicalName(svc.Name) == sh.Service
	}
	return slices.ContainsFunc(svc.Regions, func(sr ServiceRegion) bool { return sr.Region == sh.Drain })
}

// shiftRank orders the shifts that apply to one region of one service:
// drains first, the one that lasts longest ahead (the region stays
// drained until it ends); then weights, the newest first.
func shiftRank(a, b *Shift) int {
	if (a.Drain != "") != (b.Drain != "") {
		if a.Drain != "" {
			return -1
		}
		return 1
	}
	if a.Drain != "" {
		if c := b.Expires.Compare(a.Expires); c != 0 {
			return c
		}
	} else if c := b.Created.Compare(a.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// shiftWeight is the weight region gets in service under the shifts in
// force, of which svcShifts apply to the service alone and drains to
// every service (by region): a drain wins (weight 0), then the newest
// shift that weighs the region. The shift that decides is returned (nil:
// none, base stays).
func shiftWeight(svcShifts []*Shift, drain *Shift, region string, base uint32) (uint32, *Shift) {
	var best *Shift
	for _, sh := range svcShifts {
		applies := sh.Drain == region
		if !applies {
			_, applies = sh.Weights[region]
		}
		if applies && (best == nil || shiftRank(sh, best) < 0) {
			best = sh
		}
	}
	if drain != nil && (best == nil || shiftRank(drain, best) < 0) {
		best = drain
	}
	switch {
	case best == nil:
		return base, nil
	case best.Drain != "":
		return 0, best
	}
	return best.Weights[region], best
}

// ShiftedService is svc with the weights the shifts give it (the ones in
// force, as the caller chose them): svc itself when none applies, else a
// copy. The NODATA guard and the expected shares read services through
// it.
func ShiftedService(svc *Service, shifts []*Shift) *Service {
	var mine []*Shift
	var drains map[string]*Shift
	for _, sh := range shifts {
		switch {
		case !sh.Affects(svc):
		case sh.Service == "":
			if drains == nil {
				drains = map[string]*Shift{}
			}
			if d := drains[sh.Drain]; d == nil || shiftRank(sh, d) < 0 {
				drains[sh.Drain] = sh
			}
		default:
			mine = append(mine, sh)
		}
	}
	if len(mine) == 0 && len(drains) == 0 {
		return svc
	}
	out := *svc
	out.Regions = slices.Clone(svc.Regions)
	for i := range out.Regions {
		sr := &out.Regions[i]
		sr.Weight, _ = shiftWeight(mine, drains[sr.Region], sr.Region, sr.Weight)
	}
	return &out
}

// Targets lists the regions the shift moves traffic to in the services
// it affects (svcs by name, as configured): for a drain, the service's
// other regions with a weight above 0; for weights, the regions whose
// share of the service's weight grows. The unhealthy and high-watermark
// guards watch them.
func (sh *Shift) Targets(svcs map[string]*Service) []string {
	set := map[string]bool{}
	for _, svc := range svcs {
		if svc == nil || !sh.Affects(svc) {
			continue
		}
		after := ShiftedService(svc, []*Shift{sh})
		var before, total uint64
		for i := range svc.Regions {
			before += uint64(svc.Regions[i].Weight)
			total += uint64(after.Regions[i].Weight)
		}
		for i, sr := range after.Regions {
			w0 := uint64(svc.Regions[i].Weight)
			switch {
			case sr.Weight == 0 || sr.Region == sh.Drain:
			case sh.Drain != "":
				set[sr.Region] = true
			case before == 0 || uint64(sr.Weight)*before > w0*total:
				// Its share grows: w'/Σw' > w/Σw.
				set[sr.Region] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// ShiftRef is the shift that decides a region's weight in a service,
// as explain and status show it.
type ShiftRef struct {
	ID string `json:"id"`
	// Weight is the weight the shift gives the region (0: drained).
	Weight uint32 `json:"weight"`
	// ConfiguredWeight is the service's own, which comes back when the
	// shift ends.
	ConfiguredWeight uint32    `json:"configured_weight"`
	Expires          time.Time `json:"expires"`
	Reason           string    `json:"reason,omitempty"`
}
