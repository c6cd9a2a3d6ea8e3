package regions

import "math/bits"

// Shares is the share of answers each region of a service can expect for
// one address family, with the health, drains and weights of a snapshot.
type Shares struct {
	// Regions maps every region of the service to its expected share of
	// the answers, from 0 to 1.
	Regions map[string]float64 `json:"regions"`
	// Basis says what the shares rest on.
	Basis string `json:"basis"`
}

// ExpectedShares says how a service's answers of one family (QTypeA or
// QTypeAAAA) are expected to spread over its regions: the candidates that
// Decide would consider (healthy and not drained, or every region not
// drained when failing open), then the policy. For weighted services the
// shares are exact in expectation; for geo, nearest and latency they hold
// among regions the client's place leaves equally preferred. ok is false
// when no region of the service has an address of the family.
func (s *Snapshot) ExpectedShares(v *ServiceView, qtype uint16) (sh Shares, ok bool) {
	fi := 0
	switch qtype {
	case QTypeA:
	case QTypeAAAA:
		fi = 1
	default:
		return Shares{}, false
	}
	if v == nil || v.fam[fi].any == 0 {
		return Shares{}, false
	}
	sh.Regions = make(map[string]float64, len(v.slots))
	for i := range v.slots {
		sh.Regions[v.slots[i].name] = 0
	}
	fv := &v.fam[fi]
	set, prefix := *fv.up, ""
	if fv.nUp == 0 {
		switch {
		case v.mode == downClosed:
			sh.Basis = "no region is up and answerable: fail-closed answers NODATA"
			return sh, true
		case v.mode == downFallback:
			sh.Basis = "no region is up and answerable: the fallback addresses are answered"
			return sh, true
		case fv.nCands == 0:
			sh.Basis = "every region is drained: NODATA"
			return sh, true
		}
		set, prefix = *fv.cands, "no region is up: failing open over every region not drained; "
	}
	if v.policy == kindFailover {
		sh.Regions[v.slots[set.first(v.nw)].name] = 1
		sh.Basis = prefix + "failover: the first candidate in the service's order takes every answer"
		return sh, true
	}
	var total uint64
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			total += v.slots[w<<6+bits.TrailingZeros64(word)].eff
		}
	}
	for w, word := range set[:v.nw] {
		for ; word != 0; word &= word - 1 {
			sl := &v.slots[w<<6+bits.TrailingZeros64(word)]
			sh.Regions[sl.name] = float64(sl.eff) / float64(total)
		}
	}
	switch v.policy {
	case kindWeighted:
		sh.Basis = prefix + "weighted: the effective weights of the candidates (healthy, not drained, weight above 0; shift, load and ramp factors applied)"
		if v.sticky {
			sh.Basis += ", over client networks"
		}
	default:
		sh.Basis = prefix + string(v.svc.Policy) + ": the client's place decides first; among regions it leaves equally preferred, the weights of the candidates"
		if v.spill {
			sh.Basis += "; a region keeping less than its full share sends the rest of its clients to their next candidate"
		}
	}
	return sh, true
}
