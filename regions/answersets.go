package regions

import "net/netip"

// AnswerSets calls yield with every address set Decide may answer v with
// in this snapshot, by family (0 IPv4, 1 IPv6), each slice the very one a
// Decision's Addrs then holds (shared, read-only): the healthy VIPs of
// every region a decision can choose now, the fail-open set (every VIP)
// of every region that is not drained, and the fallback addresses. The
// fail-open and fallback sets are listed whatever the health, so that
// answers signed in advance (docs/dnssec.md) cover a region failing. A
// set may be listed more than once.
func (v *ServiceView) AnswerSets(yield func(family int, addrs []netip.Addr)) {
	for f := range v.fam {
		fv := &v.fam[f]
		for i := range v.slots {
			sl := &v.slots[i]
			if fv.up.has(i) && len(sl.addrs[f]) > 0 {
				yield(f, sl.addrs[f])
			}
			if fv.cands.has(i) && len(sl.all[f]) > 0 && v.mode == downOpen {
				yield(f, sl.all[f])
			}
		}
		if len(v.fallback[f]) > 0 && v.mode == downFallback {
			yield(f, v.fallback[f])
		}
	}
}

// CanAnswer says whether Decide answers the family (0 IPv4, 1 IPv6) with
// addresses for some client in this snapshot; false: every query of that
// type for the service gets NODATA.
func (v *ServiceView) CanAnswer(family int) bool {
	fv := &v.fam[family]
	switch {
	case fv.any == 0:
		return false
	case fv.nUp > 0:
		return true
	case v.mode == downOpen:
		return fv.nCands > 0
	case v.mode == downFallback:
		return len(v.fallback[family]) > 0
	}
	return false
}

// MaxAnswers is how many addresses an answer holds at most (0: all of
// the set): with fewer than a set holds, Decide sends a window of it.
func (v *ServiceView) MaxAnswers() int { return v.maxAnswers }

// ForeseeableSets calls yield with every address set of v a signer signs
// ahead (docs/dnssec.md), by family: the sets AnswerSets lists now, and
// those a health change can bring without a change of configuration:
// each region's full set of VIPs; for a region with at most maxSubset
// VIPs of a family, each set that leaves one of them out (one VIP
// failing), in the order the snapshot keeps them; the fallback addresses
// whatever the mode; and the union of the sets of every region not
// drained, which a zone transfer carries. A set may be listed more than
// once.
func (v *ServiceView) ForeseeableSets(maxSubset int, yield func(family int, addrs []netip.Addr)) {
	v.AnswerSets(yield)
	for f := range v.fam {
		for i := range v.slots {
			all := v.slots[i].all[f]
			if len(all) == 0 {
				continue
			}
			yield(f, all)
			if len(all) < 2 || len(all) > maxSubset {
				continue
			}
			for skip := range all {
				sub := make([]netip.Addr, 0, len(all)-1)
				sub = append(sub, all[:skip]...)
				yield(f, append(sub, all[skip+1:]...))
			}
		}
		if fb := v.fallback[f]; len(fb) > 0 {
			yield(f, fb)
		}
	}
	v4, v6 := v.AllRegionAddrs()
	for f, u := range [2][]netip.Addr{v4, v6} {
		if len(u) > 0 {
			yield(f, u)
		}
	}
}

// HealthMayHide says whether health alone (no change of configuration)
// can leave v without an answer of the family, so that its names' NSEC
// records lose the type: a fail-closed service with every region down,
// a fallback service without fallback addresses of the family.
func (v *ServiceView) HealthMayHide(family int) bool {
	fv := &v.fam[family]
	switch {
	case fv.nCands == 0:
		return false // nothing to hide: drains are configuration
	case v.mode == downClosed:
		return true
	case v.mode == downFallback:
		return len(v.fallback[family]) == 0
	}
	return false
}
