package dnssec

import (
	"fmt"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// Signed says whether z is signed in this State.
func (st *State) Signed(z *zones.Zone) bool { return st != nil && st.byZone[z] != nil }

// ZoneAt is the signed state of the zone at position i of the State's
// zone set (zones.Set.FindIndex), nil when that zone is not signed. It
// allocates nothing.
func (st *State) ZoneAt(i int) *ZoneState {
	if i < 0 || i >= len(st.zoneAt) {
		return nil
	}
	return st.zoneAt[i]
}

// Zone is the zone zs signs.
func (zs *ZoneState) Zone() *zones.Zone { return zs.z }

// Answer is the signed variant of a, an answer of the zone, or nil when
// a is not one. It allocates nothing.
func (zs *ZoneState) Answer(a *zones.Answer) *zones.Answer {
	if i := zs.z.AnswerIndex(a); i >= 0 && i < len(zs.answers) {
		return zs.answers[i]
	}
	return nil
}

// AppendDenial appends to dst the NSEC records (each with its
// signatures, uncompressed) that prove what the zone says about name
// (lower-case wire, inside the zone): see zones.Signatures.Denial. With
// cover, only the NSEC covering name: what a wildcard answer needs to
// show that name does not exist. It returns dst and the records
// appended; it allocates nothing when dst has room.
func (zs *ZoneState) AppendDenial(dst []byte, name []byte, cover bool) ([]byte, uint16) {
	c := zs.chain
	if c == nil || len(c.entries) == 0 {
		return dst, 0
	}
	var a, b int
	if cover {
		a, b = c.cover(name), -1
	} else {
		a, b = c.denial(name)
	}
	dst = append(dst, c.entries[a].wireb...)
	n := c.entries[a].count
	if b >= 0 {
		dst = append(dst, c.entries[b].wireb...)
		n += c.entries[b].count
	}
	return dst, n
}

// ServiceAnswer returns the signatures of the address set d answers v
// with, each without its owner name (type, class, TTL, RDATA: see
// rrsigTail); nil when v is not signed here or d is no answer. When the
// State answers the set with a signed superset (BuildStats.Substituted),
// it puts the superset's addresses into d (Addrs, Start, Count) first.
// The slices are shared and read-only; it allocates nothing.
func (st *State) ServiceAnswer(v *regions.ServiceView, d *regions.Decision) [][]byte {
	ss := st.services[v]
	if ss == nil || len(d.Addrs) == 0 {
		return nil
	}
	p := unsafe.SliceData(d.Addrs)
	for i := range ss.sets {
		set := &ss.sets[i]
		if set.addrs != p || set.n != len(d.Addrs) {
			continue
		}
		n := set.n
		if set.sub != nil {
			n = len(set.sub)
			d.Addrs = set.sub
			if d.Start >= n {
				d.Start %= n
			}
			d.Count = n
			if len(set.windows) > 0 {
				d.Count = v.MaxAnswers()
			}
		}
		if set.whole != nil && d.Count == n {
			return set.whole.tails
		}
		if d.Start < len(set.windows) && set.windows[d.Start] != nil {
			return set.windows[d.Start].tails
		}
	}
	return nil
}

// Transfer returns z's records as a zone transfer carries them, signed:
// records (the zone's, SOA first, then the services' address records, in
// RRsets) each RRset followed by its signatures, then the NSEC chain.
// A delegation's NS RRset and glue are not signed. The services' RRsets
// are signed here when no State signed them before.
func (st *State) Transfer(z *zones.Zone, records []dns.RR) ([]dns.RR, error) {
	zs := st.byZone[z]
	if zs == nil {
		return nil, fmt.Errorf("zone %s is not signed", z.Origin())
	}
	signed := map[string]bool{} // owner and type of every RRset the zone signs
	for _, rrset := range z.RRsets() {
		h := rrset[0].Header()
		signed[fmt.Sprint(h.Name, h.Rrtype)] = true
	}
	zones := map[string]bool{} // names the zone holds data at, glue included
	for _, rr := range z.Records() {
		zones[dns.CanonicalName(rr.Header().Name)] = true
	}
	type key struct {
		name string
		typ  uint16
	}
	var order []key
	sets := map[key][]dns.RR{}
	for _, rr := range records {
		h := rr.Header()
		k := key{dns.CanonicalName(h.Name), h.Rrtype}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	var out []dns.RR
	for _, k := range order {
		rrs := sets[k]
		out = append(out, rrs...)
		// The zone's RRsets as it signs them; the rest (services) are
		// names the zone file does not hold.
		if !signed[fmt.Sprint(k.name, k.typ)] && zones[k.name] {
			continue
		}
		e, err := zs.sg.sign(rrs, rrs[0].Header().Ttl)
		if err != nil {
			return nil, err
		}
		out = append(out, sigsFor(e, rrs[0].Header().Name)...)
	}
	for _, e := range zs.chain.entries {
		out = append(out, e.rrs...)
	}
	return out, nil
}
