package regions

import (
	"fmt"
	"net/netip"
)

// Unanswered is a query type a service answers with NODATA, and why.
type Unanswered struct {
	Type   string // A or AAAA
	Reason string
}

// NoAnswer returns the query types (A, then AAAA) that svc answers with
// NODATA even while every region is up, given the regions that exist. A
// region is answered only while it is not drained, its weight in svc is
// above 0 and it has a VIP of the asked family; when none is left,
// fail-open has nothing to fall back on either, fail-closed answers
// NODATA and fallback answers its addresses of that family, if any
// (docs/architecture.md, Steering). A type no region of svc has a VIP of
// is answered NODATA by design and is listed too, so callers compare the
// lists before and after a change. Regions svc names that do not exist
// count as absent, as a snapshot skips them.
func NoAnswer(svc *Service, regs map[string]*Region) []Unanswered {
	var cands, vips [2]int // per family: candidates, regions with a VIP
	n := 0
	for i, sr := range svc.Regions {
		if i == MaxRegions {
			break
		}
		r := regs[sr.Region]
		if r == nil {
			continue
		}
		has := VIPFamilies(r.VIPs)
		usable := sr.Weight > 0 && !r.Drained
		if usable {
			n++
		}
		for f := range has {
			if has[f] {
				vips[f]++
				if usable {
					cands[f]++
				}
			}
		}
	}
	var fallback [2]bool
	if svc.AllDown.Mode == AllDownFallback {
		fallback = VIPFamilies(svc.AllDown.Addresses)
	}
	var out []Unanswered
	for f, name := range [2]string{"A", "AAAA"} {
		// Decide answers NODATA before looking at the all-down mode when
		// no region has an address of the family.
		if cands[f] > 0 || (fallback[f] && vips[f] > 0) {
			continue
		}
		fam := [2]string{"IPv4", "IPv6"}[f]
		var why string
		switch {
		case vips[f] == 0:
			why = fmt.Sprintf("no region it lists has an %s VIP", fam)
		case n == 0:
			why = "every region it lists is drained or has weight 0"
		default:
			why = fmt.Sprintf("no region it answers from (weight above 0, not drained) has an %s VIP", fam)
		}
		out = append(out, Unanswered{Type: name, Reason: why})
	}
	return out
}

// VIPFamilies says whether addrs holds IPv4 and IPv6 addresses.
func VIPFamilies(addrs []netip.Addr) (f [2]bool) {
	for _, a := range addrs {
		if a.Unmap().Is4() {
			f[0] = true
		} else {
			f[1] = true
		}
	}
	return f
}
