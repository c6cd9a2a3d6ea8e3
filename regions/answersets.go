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
		if len(fv.fallback) > 0 && v.mode == downFallback {
			yield(f, fv.fallback)
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
		return len(fv.fallback) > 0
	}
	return false
}

// MaxAnswers is how many addresses an answer holds at most (0: all of
// the set): with fewer than a set holds, Decide sends a window of it.
func (v *ServiceView) MaxAnswers() int { return v.maxAnswers }
