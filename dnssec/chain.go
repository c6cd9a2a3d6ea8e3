package dnssec

import (
	"encoding/binary"
	"slices"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/zones"
)

// chain is a zone's NSEC chain (RFC 4034 §4, RFC 4035 §2.3): one NSEC
// record for every name that holds data, in canonical order, each naming
// the next and the types at its owner; the last names the apex.
type chain struct {
	entries []chainEntry
	// keys are the entries' canonical keys (canonKey) below the apex, in
	// chain order: a query finds its place with one binary search over
	// byte strings, not label by label.
	keys []string
	// heads are the keys' first 8 octets as big-endian integers, zero
	// padded: most steps of the search compare those alone.
	heads   []uint64
	apexLen int              // wire length of the apex, which every name ends with
	index   map[string]int32 // lower-case wire name -> position
	// wild holds, per entry from its wild0 on, the entry whose NSEC
	// matches or covers the wildcard below each of its ancestors (see
	// wildAt).
	wild []int32
}

type chainEntry struct {
	wire  string   // lower-case wire name
	types []uint16 // sorted, NSEC and RRSIG included
	nsec  *dns.NSEC
	sigs  *Entry
	// rrs is the NSEC and its signatures; wire the same packed without
	// compression, count records, for the query path.
	rrs   []dns.RR
	wireb []byte
	count uint16
	// wild0 is where the entry's part of chain.wild starts: one position
	// per ancestor, the apex first, the name itself last.
	wild0 int32
}

// keyCap bounds a canonical key: each octet of a name escaped, plus the
// two that end each label.
const keyCap = 2 * zones.MaxNameLen

// keyBuf holds a key being made, at its end.
type keyBuf [keyCap]byte

// canonKey writes the canonical key of rel, the labels of a lower-case
// wire name above its zone's apex (without the apex), at the end of dst
// and returns it: the labels from the last to the first, each with its
// zero octets written 0x00 0x01 and ended by 0x00 0x00. Bytewise order
// of keys is then the canonical order of the names (RFC 4034 §6.1:
// label by label from the root, a label before its extensions, a name
// before its descendants), and a name's key is a prefix of the keys of
// the names below it. Walking the name from its first label, it writes
// the key from its end. It returns the key's head too, kept as the key
// grows rather than read back (a load over bytes just stored one by one
// stalls), and allocates nothing.
func canonKey(rel []byte, dst *keyBuf) (key []byte, head uint64) {
	rel = rel[:min(len(rel), zones.MaxNameLen)] // at most keyCap octets of key
	n := keyCap
	for off := 0; off < len(rel) && rel[off] != 0; {
		end := min(off+1+int(rel[off]), len(rel))
		label := rel[off+1 : end]
		off = end
		n -= 2
		dst[n], dst[n+1] = 0, 0
		head >>= 16
		for i := len(label) - 1; i >= 0; i-- {
			if b := label[i]; b != 0 {
				n--
				dst[n] = b
				head = head>>8 | uint64(b)<<56
			} else {
				n -= 2
				dst[n], dst[n+1] = 0, 1
				head = (head>>8 | 1<<56) >> 8
			}
		}
	}
	return dst[n:], head
}

// keyOf is canonKey as a string, for building chains.
func keyOf(rel []byte) string {
	var buf keyBuf
	k, _ := canonKey(rel, &buf)
	return string(k)
}

// commonLabels is how many labels from the top the names of keys k and
// e share: the label ends (0x00 0x00) both have in common.
func commonLabels(k []byte, e string) int {
	d := 0
	for i := 0; i+1 < len(k) && i+1 < len(e) && k[i] == e[i]; {
		if k[i] != 0 {
			i++
			continue
		}
		if k[i+1] != e[i+1] {
			break
		}
		if k[i+1] == 0 {
			d++
		}
		i += 2
	}
	return d
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
	type keyed struct {
		key string
		nt  *nameTypes
	}
	apex, err := zones.WireName(z.Origin())
	if err != nil {
		return nil, err
	}
	apexLen := len(apex)
	list := make([]keyed, 0, len(names))
	for _, nt := range names {
		if len(nt.wire) < apexLen {
			continue
		}
		list = append(list, keyed{keyOf([]byte(nt.wire[:len(nt.wire)-apexLen])), nt})
	}
	slices.SortFunc(list, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	c := &chain{entries: make([]chainEntry, len(list)), keys: make([]string, len(list)), heads: make([]uint64, len(list)), apexLen: apexLen,
		index: make(map[string]int32, len(list))}
	ttl := z.NegativeTTL() // RFC 9077: the SOA's negative TTL
	for i, kn := range list {
		nt := kn.nt
		next := list[(i+1)%len(list)].nt
		types := append(slices.Clone(nt.types), dns.TypeNSEC, dns.TypeRRSIG)
		slices.Sort(types)
		types = slices.Compact(types)
		nsec := &dns.NSEC{Hdr: dns.RR_Header{Name: nt.name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: next.name, TypeBitMap: types}
		sigs, err := s.sign([]dns.RR{nsec}, ttl)
		if err != nil {
			return nil, err
		}
		e := chainEntry{wire: nt.wire, types: types, nsec: nsec, sigs: sigs}
		e.rrs = append([]dns.RR{nsec}, sigsFor(sigs, nt.name)...)
		if e.wireb, err = packPlain(e.rrs); err != nil {
			return nil, err
		}
		e.count = uint16(len(e.rrs))
		c.entries[i] = e
		c.keys[i] = kn.key
		c.heads[i] = head(kn.key)
		c.index[nt.wire] = int32(i)
	}
	// The wildcard below each ancestor of each name: where a name that
	// does not exist finds the proof that no wildcard stands for it.
	for i := range c.entries {
		e := &c.entries[i]
		e.wild0 = int32(len(c.wild))
		rel := []byte(e.wire[:len(e.wire)-apexLen])
		var offs []int
		for off := 0; off < len(rel); off += int(rel[off]) + 1 {
			offs = append(offs, off)
		}
		for d := 0; d <= len(offs); d++ {
			anc := rel[len(rel):] // the apex
			if d > 0 {
				anc = rel[offs[len(offs)-d]:]
			}
			if apexLen+len(anc)+2 > zones.MaxNameLen {
				c.wild = append(c.wild, -1) // no wildcard fits there
				continue
			}
			c.wild = append(c.wild, int32(c.search(keyOf(anc)+"*\x00\x00")))
		}
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

// search returns the position of the last entry whose key is at or
// before k: the NSEC whose owner is the name, or the one covering it.
// The apex's key, the first, is empty, so there always is one.
func (c *chain) search(k string) int { return c.searchHead(k, head(k)) }

// searchHead is search with k's head at hand.
func (c *chain) searchHead(k string, h uint64) int {
	lo, hi := 0, len(c.keys) // the answer is in [lo, hi)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		// Heads in order mean keys in order (a key shorter than 8
		// octets is padded with zeros, which sort before any octet);
		// equal heads leave it to the whole keys.
		if m := c.heads[mid]; m < h || m == h && c.keys[mid] <= k {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// head is k's first 8 octets as a big-endian integer, zero padded.
func head(k string) uint64 {
	var h [8]byte
	copy(h[:], k)
	return binary.BigEndian.Uint64(h[:])
}

// rel is name (lower-case wire, inside the zone) without the apex.
func (c *chain) rel(name []byte) []byte {
	return name[:max(len(name)-c.apexLen, 0)]
}

// cover returns the position of the NSEC whose owner is name or the last
// one before it: the one that covers name when name has none. name is
// inside the zone, so at or after the apex, the first entry. It
// allocates nothing.
func (c *chain) cover(name []byte) int {
	var buf keyBuf
	k, h := canonKey(c.rel(name), &buf)
	return c.searchHead(unsafe.String(unsafe.SliceData(k), len(k)), h)
}

// denial returns the positions of the NSEC records that prove what the
// zone says about name (lower-case wire, inside the zone): its own NSEC
// (a NODATA); for an empty non-terminal the NSEC covering it; for a name
// that does not exist the NSEC covering it and the one matching or
// covering the wildcard of its closest encloser (RFC 4035 §3.1.3.2). b is
// -1 when one record is all it takes. It allocates nothing.
//
// One binary search does it: a name exists when it owns an NSEC or a
// name below it does, and the names below any ancestor of name sit
// together in the chain around name's place, so the closest encloser is
// the deeper of the ancestors name shares with the NSEC before its place
// and the one after it.
func (c *chain) denial(name []byte) (a, b int) {
	var buf keyBuf
	k, h := canonKey(c.rel(name), &buf)
	ks := unsafe.String(unsafe.SliceData(k), len(k)) // read-only while buf lives
	a = c.searchHead(ks, h)
	if c.heads[a] == h && c.keys[a] == ks {
		return a, -1 // its own NSEC
	}
	at, d := a, commonLabels(k, c.keys[a])
	if next := a + 1; next < len(c.keys) {
		// Below name: its key starts with name's, heads first.
		nk, mask := c.keys[next], ^uint64(0)<<(64-8*min(len(ks), 8))
		if (c.heads[next]^h)&mask == 0 && len(nk) > len(ks) && nk[:len(ks)] == ks {
			return a, -1 // an empty non-terminal
		}
		if dn := commonLabels(k, nk); dn > d {
			at, d = next, dn
		}
	}
	b = int(c.wild[int(c.entries[at].wild0)+d])
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
