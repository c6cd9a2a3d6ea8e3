package regions

import (
	"iter"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Passive ejection. A VIP whose down votes would not reach the quorum
// without the passive ones (votes of probers whose active check passes
// but whose load balancer's error ratio is too high) is down by passive
// health alone. Such VIPs leave a service's answers only while the share
// of its healthy capacity they take out stays within the service's
// max_ejection (Envoy's max_ejection_percent): a bad deploy behind every
// load balancer must not drain the world. The bound is per service, so a
// VIP may be answered for one service and ejected from another
// (docs/health.md, Passive health).
//
// Each address family is bounded on its own: A and AAAA answers reach
// different clients. A family's healthy capacity is that of its VIPs in
// the service's answered regions (not drained, weight above 0) that the
// active checks do not take down: up, unknown, or down by passive health
// alone. A VIP weighs its capacity (the median of its counted reports'
// capacity), or 1 when any of those VIPs has none: the bound then counts
// VIPs. The VIPs that went down first are ejected first; a later one that
// would take the ejected share above the bound stays in the answers, so
// what is ejected does not change when another VIP fails.

// passiveOnly says whether a VIP that is down by quorum would be up
// were its passive votes counted as up.
func passiveOnly(vs *VIPStatus, quorum float64) bool {
	passive := 0
	for i := range vs.Votes {
		if v := &vs.Votes[i]; v.Counted && !v.Up && v.Passive {
			passive++
		}
	}
	return passive > 0 && !(float64(vs.Down-passive) > quorum*float64(vs.Up+vs.Down))
}

// vipCapacity is the median capacity of a VIP's counted votes, and
// whether any has one.
func vipCapacity(vs *VIPStatus) (float64, bool) {
	var c []float64
	for i := range vs.Votes {
		if v := &vs.Votes[i]; v.Counted && v.Capacity != nil && *v.Capacity > 0 {
			c = append(c, *v.Capacity)
		}
	}
	if len(c) == 0 {
		return 0, false
	}
	slices.Sort(c)
	if n := len(c); n%2 == 0 {
		return (c[n/2-1] + c[n/2]) / 2, true
	}
	return c[len(c)/2], true
}

// passiveSince is when a passive VIP went down: the earliest transition
// of its counted passive down votes.
func passiveSince(vs *VIPStatus) time.Time {
	var t time.Time
	for i := range vs.Votes {
		if v := &vs.Votes[i]; v.Counted && !v.Up && v.Passive && (t.IsZero() || v.Since.Before(t)) {
			t = v.Since
		}
	}
	return t
}

// ejectionFacts notes on each of a region's VIPs what the ejection
// bounds of services read (its capacity, and when a passive VIP went
// down) and returns their signature: a service whose regions' signatures
// are unchanged keeps its decision.
func ejectionFacts(rs *RegionStatus) uint64 {
	h := uint64(fnvOffset)
	add := func(x uint64) { h = (h ^ x) * fnvPrime }
	for k := range rs.VIPs {
		vs := &rs.VIPs[k]
		vs.capacity, _ = vipCapacity(vs)
		add(math.Float64bits(vs.capacity))
		if vs.Passive {
			vs.passiveSince = passiveSince(vs)
			add(uint64(k) + 1)
			add(uint64(vs.passiveSince.UnixNano()))
		}
	}
	return mix64(h)
}

// passiveKept returns, per slot of v, the VIPs down by passive health
// alone that the service's max_ejection keeps in its answers; nil when
// there is none. Each address family is bounded on its own: A and AAAA
// answers reach different clients.
func (s *Snapshot) passiveKept(v *ServiceView) [][]netip.Addr {
	passive := false
	for _, reg := range s.answeredRegions(v) {
		for k := range reg.VIPs {
			passive = passive || reg.VIPs[k].Passive
		}
	}
	if !passive {
		return nil // the common case, at no cost
	}
	var kept [][]netip.Addr
	for fam := range 2 {
		for _, r := range s.ejectFamily(v, fam) {
			if kept == nil {
				kept = make([][]netip.Addr, len(v.slots))
			}
			reg := &s.regions[v.slots[r.slot].region]
			kept[r.slot] = append(kept[r.slot], reg.VIPs[r.k].Addr)
		}
	}
	return kept
}

// answeredRegions yields the slots of v whose regions it answers (not
// drained, weight above 0), with their regions' health.
func (s *Snapshot) answeredRegions(v *ServiceView) iter.Seq2[int, *RegionStatus] {
	return func(yield func(int, *RegionStatus) bool) {
		for i := range v.slots {
			sl := &v.slots[i]
			reg := &s.regions[sl.region]
			if reg.Region.Drained || sl.base == 0 {
				continue
			}
			if !yield(i, reg) {
				return
			}
		}
	}
}

// vipRef is a VIP of a service: its slot, its index in the region, what
// it weighs and when passive health took it down.
type vipRef struct {
	slot, k int
	weight  float64
	since   time.Time
}

// ejectFamily bounds the passive ejections of one address family of v
// and returns the VIPs kept.
func (s *Snapshot) ejectFamily(v *ServiceView, fam int) []vipRef {
	var cands, all []vipRef
	units := false
	for i, reg := range s.answeredRegions(v) {
		for k := range reg.VIPs {
			vs := &reg.VIPs[k]
			if vs.Addr.Unmap().Is4() != (fam == 0) || vs.Status == HealthDown && !vs.Passive {
				continue // another family, or down by the active checks: not healthy capacity
			}
			units = units || vs.capacity == 0
			r := vipRef{slot: i, k: k, weight: vs.capacity}
			if vs.Status == HealthDown {
				r.since = vs.passiveSince
				cands = append(cands, r)
			}
			all = append(all, r)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	weigh := func(r vipRef) float64 {
		if units {
			return 1
		}
		return r.weight
	}
	healthy := 0.0
	for _, r := range all {
		healthy += weigh(r)
	}
	bound := v.svc.EffectiveMaxEjection() * healthy
	// The earliest ejected first; the service's order breaks ties.
	slices.SortStableFunc(cands, func(a, b vipRef) int { return a.since.Compare(b.since) })
	var kept []vipRef
	ejected := 0.0
	slack := 1e-9 * max(1, healthy) // 2 VIPs of 4 at 50% are within the bound
	for _, r := range cands {
		if w := weigh(r); ejected+w <= bound+slack {
			ejected += w
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// withKept is a region's healthy addresses by family with the kept
// VIPs added back, in the region's order.
func (s *Snapshot) withKept(region int, kept []netip.Addr) [2][]netip.Addr {
	var out [2][]netip.Addr
	for _, vs := range s.regions[region].VIPs {
		a := vs.Addr
		if !a.IsValid() || a.Zone() != "" || vs.Status == HealthDown && !slices.Contains(kept, a) {
			continue
		}
		fam := 1
		if a.Unmap().Is4() {
			a, fam = a.Unmap(), 0
		}
		out[fam] = append(out[fam], a)
	}
	return out
}
