package regions

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// LatencyTable answers "how fast is each region for this client network"
// by longest-prefix match. It is compiled once per latency table (see
// CompileLatency) and shared, read-only, by every snapshot built from the
// same LatencyData.ID.
//
// The prefixes, which may nest, are flattened into sorted, non-overlapping
// intervals (one list per family), each pointing at the most specific
// prefix covering it, or at none. A lookup is a bucket index on the top 16
// bits plus a binary search within the bucket; the values are runs of
// (region id, RTT) pairs. This costs about 8-20 bytes per interval and 8
// per pair, far less than a trie of pointers, and a lookup touches a
// handful of cache lines.
type LatencyTable struct {
	id      string
	regions []string // sorted; a pair's region id indexes it
	v4      latFamily4
	v6      latFamily6
	nets    []latNet  // distinct prefixes
	pairs   []latPair // runs, one per net
	entries int
}

// latNet is one distinct prefix: its run of pairs and its length.
type latNet struct {
	off  uint32
	n    uint16
	bits uint8
}

// latPair is one region's RTT for a network, in microseconds (exact
// enough, and it keeps 12.3 ms printing as 12.3).
type latPair struct {
	region uint16
	rttUs  uint32
}

// noNet marks an interval no prefix covers.
const noNet = math.MaxUint32

// maxLatencyRegions bounds the distinct region names of one table, so a
// pair's region id fits in 16 bits.
const maxLatencyRegions = math.MaxUint16

// bucketBits is how many leading address bits index the interval lists.
const bucketBits = 16

type latFamily4 struct {
	starts []uint32 // interval i covers [starts[i], starts[i+1]-1]; starts[0] == 0
	nets   []uint32 // net index per interval, or noNet
	index  []uint32 // 1<<bucketBits + 1 entries: first interval starting in each bucket
}

type latFamily6 struct {
	starts []u128
	nets   []uint32
	index  []uint32
}

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) add1() u128 {
	lo, c := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + c, lo}
}

func (a u128) sub1() u128 {
	lo, b := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - b, lo}
}

func (a u128) xor(b u128) u128 { return u128{a.hi ^ b.hi, a.lo ^ b.lo} }

func (a u128) leadingZeros() int {
	if a.hi != 0 {
		return bits.LeadingZeros64(a.hi)
	}
	return 64 + bits.LeadingZeros64(a.lo)
}

var u128Max = u128{math.MaxUint64, math.MaxUint64}

func addrU128(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// hostMask is the mask of the low (width-prefixLen) bits of a key of the
// given width (32 for IPv4 keys, which live in lo, or 128).
func hostMask(width, prefixLen int) u128 {
	h := width - prefixLen
	switch {
	case h <= 0:
		return u128{}
	case h < 64:
		return u128{0, 1<<uint(h) - 1}
	case h == 64:
		return u128{0, math.MaxUint64}
	case h < 128:
		return u128{1<<uint(h-64) - 1, math.MaxUint64}
	default:
		return u128Max
	}
}

// CompileLatency parses d.CSV with ParseLatencyCSV and builds the lookup
// structure. It fails if the CSV is invalid or names more than 65,535
// regions.
func CompileLatency(d *LatencyData) (*LatencyTable, error) {
	if d == nil {
		return nil, errors.New("latency table: no data")
	}
	entries, err := ParseLatencyCSV(bytes.NewReader(d.CSV))
	if err != nil {
		return nil, err
	}
	t, err := compileLatencyEntries(entries)
	if err != nil {
		return nil, err
	}
	t.id = d.ID
	return t, nil
}

// latEntry is an entry reduced to what the build sorts on.
type latEntry struct {
	key    u128
	bits   uint8
	v6     bool
	region uint16
	rttUs  uint32
}

func compileLatencyEntries(entries []LatencyEntry) (*LatencyTable, error) {
	ids := make(map[string]uint16)
	var names []string
	for _, e := range entries {
		if _, ok := ids[e.Region]; !ok {
			if len(names) >= maxLatencyRegions {
				return nil, fmt.Errorf("latency table: more than %d regions", maxLatencyRegions)
			}
			ids[e.Region] = 0
			names = append(names, e.Region)
		}
	}
	slices.Sort(names)
	for i, n := range names {
		ids[n] = uint16(i)
	}

	es := make([]latEntry, len(entries))
	for i, e := range entries {
		p := e.Prefix.Masked()
		a := p.Addr().Unmap()
		le := latEntry{bits: uint8(p.Bits()), region: ids[e.Region], rttUs: rttMicros(e.RTTms)}
		if a.Is4() {
			b := a.As4()
			le.key = u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
		} else {
			le.key, le.v6 = addrU128(a), true
		}
		es[i] = le
	}
	// v4 before v6, then by start, shorter (enclosing) prefixes first: the
	// order the interval sweep needs.
	slices.SortFunc(es, func(a, b latEntry) int {
		if a.v6 != b.v6 {
			if a.v6 {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.key.hi, b.key.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key.lo, b.key.lo); c != 0 {
			return c
		}
		if c := cmp.Compare(a.bits, b.bits); c != 0 {
			return c
		}
		return cmp.Compare(a.region, b.region)
	})

	t := &LatencyTable{regions: names, entries: len(es), pairs: make([]latPair, 0, len(es))}
	var pv4, pv6 []sweepPrefix
	for i := 0; i < len(es); {
		j := i
		for j < len(es) && es[j].v6 == es[i].v6 && es[j].key == es[i].key && es[j].bits == es[i].bits {
			j++
		}
		if j-i > math.MaxUint16 {
			return nil, fmt.Errorf("latency table: more than %d regions for one network", math.MaxUint16)
		}
		net := uint32(len(t.nets))
		t.nets = append(t.nets, latNet{off: uint32(len(t.pairs)), n: uint16(j - i), bits: es[i].bits})
		for _, e := range es[i:j] {
			t.pairs = append(t.pairs, latPair{region: e.region, rttUs: e.rttUs})
		}
		sp := sweepPrefix{start: es[i].key, net: net}
		if es[i].v6 {
			sp.end = u128{sp.start.hi | hostMask(128, int(es[i].bits)).hi, sp.start.lo | hostMask(128, int(es[i].bits)).lo}
			pv6 = append(pv6, sp)
		} else {
			sp.end = u128{0, sp.start.lo | hostMask(32, int(es[i].bits)).lo}
			pv4 = append(pv4, sp)
		}
		i = j
	}

	b4 := sweep(pv4, u128{0, math.MaxUint32})
	t.v4.starts = make([]uint32, len(b4))
	t.v4.nets = make([]uint32, len(b4))
	for i, b := range b4 {
		t.v4.starts[i], t.v4.nets[i] = uint32(b.start.lo), b.net
	}
	t.v4.index = bucketIndex(len(b4), func(i int) uint32 { return t.v4.starts[i] >> (32 - bucketBits) })

	b6 := sweep(pv6, u128Max)
	t.v6.starts = make([]u128, len(b6))
	t.v6.nets = make([]uint32, len(b6))
	for i, b := range b6 {
		t.v6.starts[i], t.v6.nets[i] = b.start, b.net
	}
	t.v6.index = bucketIndex(len(b6), func(i int) uint32 { return uint32(t.v6.starts[i].hi >> (64 - bucketBits)) })
	return t, nil
}

func rttMicros(ms float64) uint32 {
	us := math.Round(ms * 1000)
	if us < 1 {
		us = 1
	}
	if us > math.MaxUint32 {
		us = math.MaxUint32
	}
	return uint32(us)
}

type sweepPrefix struct {
	start, end u128
	net        uint32
}

type boundary struct {
	start u128
	net   uint32
}

// sweep turns prefixes sorted by (start, length) into the boundaries of
// non-overlapping intervals, each labelled with the most specific prefix
// covering it (noNet for none). Adjacent intervals with the same label are
// merged. maxKey is the family's last address.
func sweep(ps []sweepPrefix, maxKey u128) []boundary {
	out := make([]boundary, 1, 2*len(ps)+1)
	out[0] = boundary{start: u128{}, net: noNet}
	emit := func(start u128, net uint32) {
		last := &out[len(out)-1]
		if last.start == start {
			// A more specific prefix (or the parent resuming) at the same
			// address replaces the label.
			last.net = net
			if len(out) > 1 && out[len(out)-2].net == net {
				out = out[:len(out)-1]
			}
			return
		}
		if last.net == net {
			return
		}
		out = append(out, boundary{start: start, net: net})
	}
	var stack []sweepPrefix
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if top.end == maxKey {
			return
		}
		next := uint32(noNet)
		if len(stack) > 0 {
			next = stack[len(stack)-1].net
		}
		emit(top.end.add1(), next)
	}
	for _, p := range ps {
		for len(stack) > 0 && stack[len(stack)-1].end.less(p.start) {
			pop()
		}
		emit(p.start, p.net)
		stack = append(stack, p)
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

// bucketIndex returns, for every bucket b, the first interval whose start
// is in bucket b or later (n when none), plus a final n.
func bucketIndex(n int, bucket func(i int) uint32) []uint32 {
	idx := make([]uint32, 1<<bucketBits+1)
	i := 0
	for b := range idx {
		for i < n && int(bucket(i)) < b {
			i++
		}
		idx[b] = uint32(i)
	}
	return idx
}

// Len is the number of distinct prefixes in the table.
func (t *LatencyTable) Len() int { return len(t.nets) }

// Entries is the number of (prefix, region) entries in the table.
func (t *LatencyTable) Entries() int { return t.entries }

// ID is the LatencyData.ID the table was compiled from.
func (t *LatencyTable) ID() string { return t.id }

// Regions lists the region names the table mentions, sorted. Read-only.
func (t *LatencyTable) Regions() []string { return t.regions }

// LatencyMatch is the result of a lookup: the RTT of every region the
// matched prefix lists, and how far the answer reaches. It refers to the
// table and does not allocate.
type LatencyMatch struct {
	t     *LatencyTable
	addr  netip.Addr
	bits  int // see Bits
	pbits int // matched entry's prefix length; -1 for none
	pairs []latPair
}

// Bits is the length of the largest network around the looked-up address
// for which this result holds: the matched prefix's length, longer when a
// more specific entry punctures it nearby, and for a miss the largest
// network holding no entry at all. It is the ECS scope a decision based
// on this lookup depends on. IPv4 lengths count IPv4 bits.
func (m LatencyMatch) Bits() int { return m.bits }

// Prefix is the table entry that matched; invalid for a miss.
func (m LatencyMatch) Prefix() netip.Prefix {
	if m.pbits < 0 {
		return netip.Prefix{}
	}
	p, _ := m.addr.Prefix(m.pbits)
	return p
}

// Len is the number of regions with an RTT for the matched prefix.
func (m LatencyMatch) Len() int { return len(m.pairs) }

// At returns the i-th region (in name order) and its RTT in milliseconds.
func (m LatencyMatch) At(i int) (region string, rttMs float64) {
	p := m.pairs[i]
	return m.t.regions[p.region], float64(p.rttUs) / 1000
}

// regionID is At without the name: the table's region index.
func (m LatencyMatch) regionID(i int) (id int, rttMs float64) {
	p := m.pairs[i]
	return int(p.region), float64(p.rttUs) / 1000
}

// Lookup finds the longest prefix holding addr. IPv4-mapped addresses are
// looked up as IPv4. It reports false when no prefix holds addr; Bits is
// still meaningful then. It does not allocate.
func (t *LatencyTable) Lookup(addr netip.Addr) (LatencyMatch, bool) {
	m := LatencyMatch{t: t, pbits: -1}
	if t == nil || !addr.IsValid() {
		return m, false
	}
	addr = addr.Unmap().WithZone("")
	m.addr = addr
	var net uint32
	if addr.Is4() {
		b := addr.As4()
		k := binary.BigEndian.Uint32(b[:])
		f := &t.v4
		i := f.find(k)
		net = f.nets[i]
		// The interval is [starts[i], end]; the answer holds on the largest
		// aligned block around k inside it.
		m.bits = 0
		if s := f.starts[i]; s != 0 {
			m.bits = bits.LeadingZeros32(k^(s-1)) + 1
		}
		if i+1 < len(f.starts) {
			m.bits = max(m.bits, bits.LeadingZeros32(k^f.starts[i+1])+1)
		}
	} else {
		k := addrU128(addr)
		f := &t.v6
		i := f.find(k)
		net = f.nets[i]
		m.bits = 0
		if s := f.starts[i]; s != (u128{}) {
			m.bits = k.xor(s.sub1()).leadingZeros() + 1
		}
		if i+1 < len(f.starts) {
			m.bits = max(m.bits, k.xor(f.starts[i+1]).leadingZeros()+1)
		}
	}
	if net == noNet {
		return m, false
	}
	n := t.nets[net]
	m.pbits = int(n.bits)
	m.pairs = t.pairs[n.off : n.off+uint32(n.n)]
	return m, true
}

// find returns the last interval starting at or before k.
func (f *latFamily4) find(k uint32) int {
	b := k >> (32 - bucketBits)
	lo, hi := int(f.index[b]), int(f.index[b+1])
	// Count the starts in [lo, hi) that are <= k.
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if f.starts[mid] <= k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// starts[0] == 0 <= k, so lo >= 1.
	return lo - 1
}

func (f *latFamily6) find(k u128) int {
	b := k.hi >> (64 - bucketBits)
	lo, hi := int(f.index[b]), int(f.index[b+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !k.less(f.starts[mid]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}
