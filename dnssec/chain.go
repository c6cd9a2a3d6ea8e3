package dnssec

import (
	"bytes"
	"slices"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// chain is a zone's NSEC chain (RFC 4034 §4, RFC 4035 §2.3): one NSEC
// record for every name that holds data, in canonical order, each naming
// the next and the types at its owner; the last names the apex.
type chain struct {
	entries []chainEntry
	index   map[string]int32 // lower-case wire name -> position
}

type chainEntry struct {
	wire  string   // lower-case wire name
	offs  []uint8  // where its labels start (labelOffsets)
	types []uint16 // sorted, NSEC and RRSIG included
	nsec  *dns.NSEC
	sigs  *Entry
	// rrs is the NSEC and its signatures; wire the same packed without
	// compression, count records, for the query path.
	rrs   []dns.RR
	wireb []byte
	count uint16
}

// compareWire orders lower-case wire names canonically (RFC 4034 §6.1):
// label by label from the root, each label as a string of octets, a name
// before its descendants. It allocates nothing.
func compareWire(a, b []byte) int {
	var sa, sb [128]uint8
	na, nb := labelOffsets(a, &sa), labelOffsets(b, &sb)
	return compareLabels(a, sa[:na], b, sb[:nb])
}

// compareLabels is compareWire with the names' label offsets
// (labelOffsets) at hand: a binary search finds them once per name, not
// once per comparison.
func compareLabels(a []byte, sa []uint8, b []byte, sb []uint8) int {
	na, nb := len(sa), len(sb)
	for i, j := na-1, nb-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		la := a[int(sa[i])+1 : int(sa[i])+1+int(a[sa[i]])]
		lb := b[int(sb[j])+1 : int(sb[j])+1+int(b[sb[j]])]
		if c := bytes.Compare(la, lb); c != 0 {
			return c
		}
	}
	return na - nb
}

// labelOffsets records where each label of the wire name w starts and
// returns how many there are (the root not counted).
func labelOffsets(w []byte, starts *[128]uint8) int {
	n := 0
	for off := 0; off < len(w) && w[off] != 0 && n < len(starts); off += int(w[off]) + 1 {
		starts[n] = uint8(off)
		n++
	}
	return n
}

// strictlyBelow says whether wire name child is a proper descendant of
// parent.
func strictlyBelow(child, parent []byte) bool {
	if len(child) <= len(parent) {
		return false
	}
	for off := 0; off < len(child) && child[off] != 0; off += int(child[off]) + 1 {
		if len(child)-off == len(parent) {
			return bytes.Equal(child[off:], parent)
		}
		if len(child)-off < len(parent) {
			return false
		}
	}
	return false
}

// nameTypes is a name of the chain with its types, before sorting.
type nameTypes struct {
	wire  string
	name  string
	types []uint16
}

// buildChain makes the NSEC chain over names (the zone's names and the
// services in it, merged by name), signing each NSEC with s.
func buildChain(z *zones.Zone, names map[string]*nameTypes, s *signer) (*chain, error) {
	list := make([]*nameTypes, 0, len(names))
	for _, nt := range names {
		list = append(list, nt)
	}
	slices.SortFunc(list, func(a, b *nameTypes) int { return compareWire([]byte(a.wire), []byte(b.wire)) })
	c := &chain{entries: make([]chainEntry, len(list)), index: make(map[string]int32, len(list))}
	ttl := z.NegativeTTL() // RFC 9077: the SOA's negative TTL
	for i, nt := range list {
		next := list[(i+1)%len(list)]
		types := append(slices.Clone(nt.types), dns.TypeNSEC, dns.TypeRRSIG)
		slices.Sort(types)
		types = slices.Compact(types)
		nsec := &dns.NSEC{Hdr: dns.RR_Header{Name: nt.name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: next.name, TypeBitMap: types}
		sigs, err := s.sign([]dns.RR{nsec}, ttl)
		if err != nil {
			return nil, err
		}
		var offs [128]uint8
		n := labelOffsets([]byte(nt.wire), &offs)
		e := chainEntry{wire: nt.wire, offs: slices.Clone(offs[:n]), types: types, nsec: nsec, sigs: sigs}
		e.rrs = append([]dns.RR{nsec}, sigsFor(sigs, nt.name)...)
		if e.wireb, err = packPlain(e.rrs); err != nil {
			return nil, err
		}
		e.count = uint16(len(e.rrs))
		c.entries[i] = e
		c.index[nt.wire] = int32(i)
	}
	return c, nil
}

// packPlain packs records one after the other without compression.
func packPlain(rrs []dns.RR) ([]byte, error) {
	n := 0
	for _, rr := range rrs {
		n += dns.Len(rr) + 32
	}
	buf := make([]byte, n)
	off := 0
	for _, rr := range rrs {
		var err error
		if off, err = dns.PackRR(rr, buf, off, nil, false); err != nil {
			return nil, err
		}
	}
	return slices.Clip(buf[:off]), nil
}

// cover returns the position of the NSEC whose owner is name or the last
// one before it: the one that covers name when name has none. name is
// inside the zone, so at or after the apex, the first entry.
func (c *chain) cover(name []byte) int {
	var offs [128]uint8
	n := labelOffsets(name, &offs)
	lo, hi := 0, len(c.entries) // the answer is in [lo, hi)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if e := &c.entries[mid]; compareLabels([]byte(e.wire), e.offs, name, offs[:n]) <= 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// exists says whether name exists: it has an NSEC, or it is an empty
// non-terminal (the name after it in the chain is below it).
func (c *chain) exists(name []byte) bool {
	if _, ok := c.index[string(name)]; ok {
		return true
	}
	i := c.cover(name) + 1
	return i < len(c.entries) && strictlyBelow([]byte(c.entries[i].wire), name)
}

// denial returns the positions of the NSEC records that prove what the
// zone says about name (lower-case wire, inside the zone): its own NSEC
// (a NODATA); for an empty non-terminal the NSEC covering it; for a name
// that does not exist the NSEC covering it and the one matching or
// covering the wildcard of its closest encloser (RFC 4035 §3.1.3.2). b is
// -1 when one record is all it takes. It allocates nothing.
func (c *chain) denial(name []byte) (a, b int) {
	if i, ok := c.index[string(name)]; ok {
		return int(i), -1
	}
	a = c.cover(name)
	if n := a + 1; n < len(c.entries) && strictlyBelow([]byte(c.entries[n].wire), name) {
		return a, -1 // an empty non-terminal
	}
	// The closest encloser: the nearest ancestor that exists. The apex
	// always does, so the walk ends there at the latest.
	ce := name
	for off := int(name[0]) + 1; off < len(name); off += int(name[off]) + 1 {
		ce = name[off:]
		if c.exists(ce) || name[off] == 0 {
			break
		}
	}
	var buf [zones.MaxNameLen + 2]byte
	buf[0], buf[1] = 1, '*'
	w := append(buf[:2], ce...)
	if len(w) > zones.MaxNameLen {
		return a, -1
	}
	b = c.cover(w)
	if b == a {
		b = -1
	}
	return a, b
}

// denialRRs is denial's records, for the precompiled answers.
func (c *chain) denialRRs(name string) []dns.RR {
	w, err := zones.WireName(name)
	if err != nil {
		return nil
	}
	a, b := c.denial([]byte(w))
	out := slices.Clone(c.entries[a].rrs)
	if b >= 0 {
		out = append(out, c.entries[b].rrs...)
	}
	return out
}
