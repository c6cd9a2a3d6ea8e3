package regions

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"time"
	"unsafe"

	"github.com/meridian-gslb/meridian/geo"
)

// Geo tables (docs/architecture.md, Steering: the ECS scope).
//
// One location table per GeoIP database: the database's networks cut
// into sorted, non-overlapping intervals covering each address family
// whole, each with its location (country and continent, as Locate gives
// them), neighbours of one location merged. It is built once per
// database, whatever the number of services.
//
// A geo service depends on the client only through its class: the order
// in which the service prefers its regions for the client's location.
// Grouping the locations by class gives the service's partition; services
// whose maps group the locations alike share one partition, whatever
// their regions. A partition's merge is a bit per interval of the
// location table saying where a run of one group starts: the ECS scope is
// the widest CIDR block around the client inside its run. Without a merge
// (until it is built in the background, or when the budget has no room
// for it) the run comes from the location table's sets of locations
// (geosets.go): the same run, a few dozen more reads. Health, drains and
// weights change what a service picks from its class, never the
// partition.

// GeoSource gives the GeoIP database that a snapshot compiles its geo
// tables from: a *geo.Reloader (the database it serves now) or a *geo.DB.
type GeoSource interface {
	Current() *geo.DB
}

var (
	_ GeoSource = (*geo.Reloader)(nil)
	_ GeoSource = (*geo.DB)(nil)
)

// locatorDB is the database behind a Locator, when it is one of geo's:
// a snapshot's table answers for a client only when it was compiled from
// the database the client's lookups would read. Concrete types, so that
// the query path pays a type compare, not an interface conversion.
func locatorDB(l Locator) *geo.DB {
	switch l := l.(type) {
	case *geo.Reloader:
		return l.Current()
	case *geo.DB:
		return l
	}
	return nil
}

// geoLoc is a location as the database gives it.
type geoLoc struct{ country, continent string }

func geoLocation(l geoLoc) geo.Location {
	return geo.Location{Country: l.country, Continent: l.continent}
}

// aliasLoc+k is the location of an IPv6 interval that is the k-th alias
// of the IPv4 networks: its addresses are looked up in the IPv4 intervals
// by the 32 bits that follow aliases[k].
const (
	aliasLoc   = 0xFF00
	maxAliases = 0xFFFF - aliasLoc
)

// locTable is one database's networks as intervals of locations.
// Read-only once built.
//
// IPv4 interval i is [v4start[i], v4start[i+1]) with location v4loc[i];
// IPv6 interval i starts at the 128-bit address v6hi[i]:v6lo[i]. The
// first interval of each family starts at its first address.
type locTable struct {
	db      *geo.DB
	locs    []geoLoc // by location id; 0 is ("", ""), addresses in no network
	cont    []int8   // by location id: the continent's index in Continents, -1 for none
	v4start []uint32
	v4loc   []uint16
	v6hi    []uint64
	v6lo    []uint64
	v6loc   []uint16
	aliases []netip.Prefix
	v4locs  []uint16 // the locations of IPv4 intervals, each once
	// idx4 and idx6 narrow a search to a few intervals: idx6 by the
	// first 64 bits of the address.
	idx4, idx6 radixIndex
	// sets4 and sets6 give any partition its runs without a merge; nil
	// with more than setLocs-1 locations.
	sets4, sets6 *locSets

	buildTime time.Duration
	networks  int // database networks read, both families
}

// bytes is the table's memory.
func (lt *locTable) bytes() int {
	n := 6*cap(lt.v4start) + 18*cap(lt.v6hi) + 24*cap(lt.aliases) + lt.idx4.bytes() + lt.idx6.bytes()
	if lt.sets4 != nil {
		n += lt.sets4.bytes() + lt.sets6.bytes()
	}
	for _, l := range lt.locs {
		n += len(l.country) + len(l.continent) + 33
	}
	return n
}

// buildLocTable walks db once per family. Adjacent networks of one
// location, and the gaps between networks (addresses the database does
// not hold, location 0), merge.
func buildLocTable(db *geo.DB) (*locTable, error) {
	start := time.Now()
	lt := &locTable{db: db, locs: []geoLoc{{}}}
	ids := map[geoLoc]uint16{{}: 0}
	locOf := func(country, continent string) (uint16, error) {
		k := geoLoc{country, continent}
		if id, ok := ids[k]; ok {
			return id, nil
		}
		if len(lt.locs) >= aliasLoc {
			return 0, fmt.Errorf("geo tables: more than %d locations", aliasLoc)
		}
		id := uint16(len(lt.locs))
		ids[k] = id
		lt.locs = append(lt.locs, k)
		return id, nil
	}
	add4 := func(start uint32, l uint16) {
		if n := len(lt.v4loc); n > 0 && lt.v4loc[n-1] == l {
			return
		}
		lt.v4start = append(lt.v4start, start)
		lt.v4loc = append(lt.v4loc, l)
	}
	add6 := func(hi, lo uint64, l uint16) {
		if n := len(lt.v6loc); n > 0 && lt.v6loc[n-1] == l {
			return
		}
		lt.v6hi = append(lt.v6hi, hi)
		lt.v6lo = append(lt.v6lo, lo)
		lt.v6loc = append(lt.v6loc, l)
	}

	// IPv4: next is the first address not yet covered; done once a
	// network reached 255.255.255.255.
	var next uint32
	done := false
	for n, err := range db.Networks(false) {
		if err != nil {
			return nil, err
		}
		lt.networks++
		p := n.Network.Masked()
		a4 := p.Addr().As4()
		first := binary.BigEndian.Uint32(a4[:])
		last := first | uint32(uint64(1)<<(32-p.Bits())-1)
		if first > next {
			add4(next, 0)
		}
		l, err := locOf(n.Country, n.Continent)
		if err != nil {
			return nil, err
		}
		add4(first, l)
		if last == ^uint32(0) {
			done = true
			break
		}
		next = last + 1
	}
	if !done {
		add4(next, 0)
	}

	var nh, nl uint64
	done = false
	for n, err := range db.Networks(true) {
		if err != nil {
			return nil, err
		}
		lt.networks++
		p := n.Network.Masked()
		a16 := p.Addr().As16()
		fh, fl := binary.BigEndian.Uint64(a16[:8]), binary.BigEndian.Uint64(a16[8:])
		lh, ll := fh, fl
		switch b := p.Bits(); {
		case b < 64:
			lh |= ^uint64(0) >> b
			ll = ^uint64(0)
		case b < 128:
			ll |= ^uint64(0) >> (b - 64)
		}
		if fh > nh || fh == nh && fl > nl {
			add6(nh, nl, 0)
		}
		var l uint16
		if n.IPv4Alias {
			if len(lt.aliases) == maxAliases {
				return nil, fmt.Errorf("geo tables: more than %d IPv4 aliases", len(lt.aliases))
			}
			l = aliasLoc + uint16(len(lt.aliases))
			lt.aliases = append(lt.aliases, p)
		} else if l, err = locOf(n.Country, n.Continent); err != nil {
			return nil, err
		}
		add6(fh, fl, l)
		if lh == ^uint64(0) && ll == ^uint64(0) {
			done = true
			break
		}
		nh, nl = lh, ll+1
		if nl == 0 {
			nh++
		}
	}
	if !done {
		add6(nh, nl, 0)
	}
	clip := func(s []uint64) []uint64 { return s[:len(s):len(s)] }
	lt.v4start, lt.v4loc = lt.v4start[:len(lt.v4start):len(lt.v4start)], lt.v4loc[:len(lt.v4loc):len(lt.v4loc)]
	lt.v6hi, lt.v6lo, lt.v6loc = clip(lt.v6hi), clip(lt.v6lo), lt.v6loc[:len(lt.v6loc):len(lt.v6loc)]
	seen := make([]bool, len(lt.locs))
	for _, l := range lt.v4loc {
		if !seen[l] {
			seen[l] = true
			lt.v4locs = append(lt.v4locs, l)
		}
	}
	lt.idx4 = newRadixIndex(len(lt.v4start), 32, func(i int, k uint64) bool { return uint64(lt.v4start[i])<<32 <= k })
	lt.idx6 = newRadixIndex(len(lt.v6hi), 64, func(i int, k uint64) bool { return lt.v6hi[i] < k || lt.v6hi[i] == k && lt.v6lo[i] == 0 })
	if len(lt.locs) < setAlias {
		lt.sets4, lt.sets6 = newLocSets(lt.v4loc), newLocSets(lt.v6loc)
	}
	lt.cont = make([]int8, len(lt.locs))
	for i, l := range lt.locs {
		lt.cont[i] = int8(continentIndex(l.continent))
	}
	lt.buildTime = time.Since(start)
	return lt, nil
}

// find4 is the interval holding the IPv4 address x.
func (lt *locTable) find4(x uint32) int {
	first, last := lt.idx4.find(uint64(x) << 32)
	return int(first) + last32(lt.v4start[first:last+1], x)
}

// find6 is the interval holding the IPv6 address xh:xl: a search of the
// first 64 bits, then of the last 64 among the intervals starting in
// the same /64, if any.
func (lt *locTable) find6(xh, xl uint64) int {
	first, last := lt.idx6.find(xh)
	hi := lt.v6hi[first : last+1]
	i := last64(hi, xh)
	if hi[i] != xh || lt.v6lo[int(first)+i] <= xl {
		return int(first) + i
	}
	// Interval i starts after x in x's /64 (rare: networks longer than
	// /64).
	return int(first) + search128(hi[:i+1], lt.v6lo[first:int(first)+i+1], xh, xl)
}

// last32 is the last i with s[i] <= x; s[0] <= x. The steps are random,
// so they are taken without a branch: a branch would be mispredicted
// every other step.
func last32(s []uint32, x uint32) int {
	i, n := 0, len(s)
	for n > 1 {
		h := n >> 1
		i += h & int((int64(s[i+h])-int64(x)-1)>>63) // h if s[i+h] <= x
		n -= h
	}
	return i
}

// last64 is last32 for 64-bit keys.
func last64(s []uint64, x uint64) int {
	i, n := 0, len(s)
	for n > 1 {
		h := n >> 1
		_, gt := bits.Sub64(x, s[i+h], 0) // 1 if s[i+h] > x
		i += h & (int(gt) - 1)
		n -= h
	}
	return i
}

// search128 is the last i with hi[i]:lo[i] <= xh:xl; the first entry is
// 0:0.
func search128(hi, lo []uint64, xh, xl uint64) int {
	a, b := 0, len(hi)
	for b-a > 1 {
		m := int(uint(a+b) >> 1)
		if h := hi[m]; h < xh || h == xh && lo[m] <= xl {
			a = m
		} else {
			b = m
		}
	}
	return a
}

// lcp128 is the number of leading bits x and y share; x != y.
func lcp128(xh, xl, yh, yl uint64) int {
	if xh != yh {
		return bits.LeadingZeros64(xh ^ yh)
	}
	return 64 + bits.LeadingZeros64(xl^yl)
}

// partition groups the locations of one location table by the class a
// geo map gives them: group[loc] is the group of location loc, groups
// numbered in the order of their first location. Services whose maps
// group the locations alike share one partition (and its merge). Read-only.
type partition struct {
	lt     *locTable
	key    string // group as bytes: identifies the partition of lt
	group  []uint16
	groups int
	// v4one: all of IPv4 is one group, v4group; the IPv4 aliases in
	// IPv6 are then of that group too and merge with their neighbours.
	v4one   bool
	v4group uint16
	// other4[g] and other6[g] are the locations not of group g, for the
	// table's locSets; nil without them. other6 holds the IPv4 aliases
	// unless they merge with group g.
	other4, other6 []locSet
}

// newPartition is the partition of lt with the given groups.
func newPartition(lt *locTable, group []uint16, groups int) *partition {
	p := &partition{lt: lt, group: group, groups: groups, v4one: true, v4group: group[lt.v4loc[0]]}
	for _, l := range lt.v4locs {
		if group[l] != p.v4group {
			p.v4one = false
			break
		}
	}
	if lt.sets4 != nil {
		p.other4, p.other6 = make([]locSet, groups), make([]locSet, groups)
		for g := range groups {
			for l, lg := range group {
				if int(lg) != g {
					p.other4[g].add(uint16(l))
					p.other6[g].add(uint16(l))
				}
			}
			if !p.v4one || int(p.v4group) != g {
				p.other6[g].add(aliasLoc)
			}
		}
	}
	p.key = string(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(group))), 2*len(group)))
	return p
}

// bytes is the partition's memory, without its merge.
func (p *partition) bytes() int {
	return 2*len(p.group) + len(p.key) + 32*(cap(p.other4)+cap(p.other6)) + 112
}

// merge marks, per interval of a location table, where a run of one
// group of a partition starts. Read-only once built.
type merge struct {
	b4, b6 bitIndex
	// runs4 and runs6 count the merged intervals.
	runs4, runs6 int
	buildTime    time.Duration
}

// mergeBytes is the memory of a merge over lt, known before it is built:
// every partition's merge over one table costs the same.
func mergeBytes(lt *locTable) int {
	return bitIndexBytes(len(lt.v4start)) + bitIndexBytes(len(lt.v6hi)) + 64
}

func (m *merge) bytes() int { return m.b4.bytes() + m.b6.bytes() + 64 }

// buildMerge computes p's runs over its location table.
func buildMerge(p *partition) *merge {
	start := time.Now()
	lt := p.lt
	m := &merge{}
	m.b4 = newBitIndex(len(lt.v4start))
	prev := -1
	for i, l := range lt.v4loc {
		if g := int(p.group[l]); g != prev {
			m.b4.set(i)
			m.runs4++
			prev = g
		}
	}
	m.b4.finish()
	m.b6 = newBitIndex(len(lt.v6hi))
	prev = -1
	for i, l := range lt.v6loc {
		var g int
		switch {
		case l < aliasLoc:
			g = int(p.group[l])
		case p.v4one:
			g = int(p.v4group)
		default:
			g = 1<<16 + int(l) // an alias is a run of its own
		}
		if g != prev {
			m.b6.set(i)
			m.runs6++
			prev = g
		}
	}
	m.b6.finish()
	m.buildTime = time.Since(start)
	return m
}

// lookup returns the group of a and the length of the widest CIDR block
// holding a inside its run: the run of p's merge when m is set, else the
// run found in the location table's sets; a table without sets (more
// locations than they hold) widens a's interval as far as scanBudget
// more intervals allow (see widen4). a is unmapped and valid. It does
// not allocate.
func (p *partition) lookup(m *merge, a netip.Addr) (group int, scope int) {
	group, scope, _ = p.lookupWithin(m, a, scanBudget)
	return group, scope
}

// lookupLoc is lookup that also returns a's location id (its continent
// is counted; see Snapshot.ClientContinent).
func (p *partition) lookupLoc(m *merge, a netip.Addr) (group int, scope int, loc uint16) {
	return p.lookupWithin(m, a, scanBudget)
}

// lookupWithin is lookupLoc with budget in place of scanBudget.
func (p *partition) lookupWithin(m *merge, a netip.Addr, budget int) (group int, scope int, loc uint16) {
	if a.Is4() {
		b := a.As4()
		return p.lookup4(m, binary.BigEndian.Uint32(b[:]), budget)
	}
	lt := p.lt
	b := a.As16()
	xh, xl := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	i := lt.find6(xh, xl)
	l := lt.v6loc[i]
	if l >= aliasLoc {
		n := uint(lt.aliases[l-aliasLoc].Bits()) // at most 96
		if !p.v4one {
			group, scope, loc = p.lookup4(m, aliasedV4(n, xh, xl), budget)
			return group, int(n) + scope, loc
		}
		group = int(p.v4group)
		l = lt.v4loc[lt.find4(aliasedV4(n, xh, xl))]
	} else {
		group = int(p.group[l])
	}
	// The block of x at length n leaves its run exactly when it holds
	// the address before the run or the first one after it, that is when
	// x shares its first n bits with one of them.
	j, k := i, i+1
	switch {
	case m != nil:
		j, k = m.b6.run(i)
	case p.other6 != nil:
		o := &p.other6[group]
		j, k = lt.sets6.prev(i-1, o)+1, lt.sets6.next(i+1, o)
	}
	if j > 0 {
		h, l := lt.v6hi[j], lt.v6lo[j]-1
		if lt.v6lo[j] == 0 {
			h--
		}
		scope = lcp128(xh, xl, h, l) + 1
	}
	if k < len(lt.v6hi) {
		scope = max(scope, lcp128(xh, xl, lt.v6hi[k], lt.v6lo[k])+1)
	}
	if m == nil && p.other6 == nil && scope > 0 {
		scope = p.widen6(xh, xl, i, uint16(group), scope, budget)
	}
	return group, scope, l
}

// aliasedV4 is the IPv4 address embedded in the IPv6 address xh:xl by
// an alias prefix of n bits: the 32 bits that follow the prefix.
func aliasedV4(n uint, xh, xl uint64) uint32 {
	var v uint64 // the bits after the prefix, first
	if n < 64 {
		v = xh<<n | xl>>(64-n)
	} else {
		v = xl << (n - 64)
	}
	return uint32(v >> 32)
}

// lookup4 is lookupWithin for the IPv4 address x.
func (p *partition) lookup4(m *merge, x uint32, budget int) (group int, scope int, loc uint16) {
	s := p.lt.v4start
	i := p.lt.find4(x)
	loc = p.lt.v4loc[i]
	group = int(p.group[loc])
	j, k := i, i+1
	if m != nil {
		// m.b4.run(i), its common case inline.
		w := m.b4.w0[i>>6]
		if before, after := w<<(63-uint(i)&63), w>>(uint(i)&63)>>1; before != 0 && after != 0 {
			j, k = i-bits.LeadingZeros64(before), i+1+bits.TrailingZeros64(after)
		} else {
			j, k = m.b4.runFar(i)
		}
	} else if p.other4 != nil {
		o := &p.other4[group]
		j, k = p.lt.sets4.prev(i-1, o)+1, p.lt.sets4.next(i+1, o)
	}
	if j > 0 {
		scope = bits.LeadingZeros32(x^(s[j]-1)) + 1
	}
	if k < len(s) {
		scope = max(scope, bits.LeadingZeros32(x^s[k])+1)
	}
	if m == nil && p.other4 == nil && scope > 0 {
		scope = p.widen4(x, i, uint16(group), scope, budget)
	}
	return group, scope, loc
}

// continent is the continent of the address a (unmapped, valid) as
// Snapshot.ClientContinent returns it: an index in Continents, or -1.
// One search through the index, no allocation.
func (lt *locTable) continent(a netip.Addr) int {
	var l uint16
	if a.Is4() {
		b := a.As4()
		l = lt.v4loc[lt.find4(binary.BigEndian.Uint32(b[:]))]
	} else {
		b := a.As16()
		xh, xl := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		l = lt.v6loc[lt.find6(xh, xl)]
		if l >= aliasLoc {
			n := uint(lt.aliases[l-aliasLoc].Bits())
			l = lt.v4loc[lt.find4(aliasedV4(n, xh, xl))]
		}
	}
	return int(lt.cont[l])
}

// scanBudget bounds the intervals a lookup without a merge or sets reads
// to widen its scope beyond the client's interval. With www's map on the
// tor-geoipdb database, 64 gives 211,624 CIDR blocks over IPv4 where the
// merge gives 209,732 and the interval alone 570,186 (TestGeoTableTor).
const scanBudget = 64

// widen4 widens the scope of x, whose interval i is of group g and
// whose block of length scope lies in i, one bit at a time while the
// wider block holds only intervals of group g, reading at most budget
// more intervals: the scope of x's run, or a narrower one when the
// budget ran out. It does not allocate.
func (p *partition) widen4(x uint32, i int, g uint16, scope, budget int) int {
	s, loc := p.lt.v4start, p.lt.v4loc
	lo, hi := i, i+1 // intervals [lo, hi) hold the block of length scope
	for ; scope > 0; scope-- {
		tail := ^uint32(0) >> (scope - 1) // the bits outside the wider block's prefix
		for first := x &^ tail; lo > 0 && s[lo] > first; {
			lo--
			if budget--; budget < 0 || p.group[loc[lo]] != g {
				return scope
			}
		}
		for last := x | tail; hi < len(s) && s[hi] <= last; hi++ {
			if budget--; budget < 0 || p.group[loc[hi]] != g {
				return scope
			}
		}
	}
	return 0
}

// widen6 is widen4 for the IPv6 address xh:xl.
func (p *partition) widen6(xh, xl uint64, i int, g uint16, scope, budget int) int {
	lt := p.lt
	other := func(l uint16) bool { // l is not of group g
		if l >= aliasLoc {
			return !p.v4one || p.v4group != g
		}
		return p.group[l] != g
	}
	lo, hi := i, i+1
	for ; scope > 0; scope-- {
		th, tl := ^uint64(0), ^uint64(0) // the bits outside the wider block's prefix
		if n := uint(scope - 1); n < 64 {
			th >>= n
		} else {
			th, tl = 0, tl>>(n-64)
		}
		for fh, fl := xh&^th, xl&^tl; lo > 0 && (lt.v6hi[lo] > fh || lt.v6hi[lo] == fh && lt.v6lo[lo] > fl); {
			lo--
			if budget--; budget < 0 || other(lt.v6loc[lo]) {
				return scope
			}
		}
		for eh, el := xh|th, xl|tl; hi < len(lt.v6hi) && (lt.v6hi[hi] < eh || lt.v6hi[hi] == eh && lt.v6lo[hi] <= el); hi++ {
			if budget--; budget < 0 || other(lt.v6loc[hi]) {
				return scope
			}
		}
	}
	return 0
}

// bitIndex is a bit set over n positions with a summary per level (a bit
// per word of the level below, set when that word is not zero), so that
// the nearest set bit before or after a position is found in a few word
// operations however far it is.
type bitIndex struct {
	n  int
	w0 []uint64   // the bits: lv[0], for the word most lookups end in
	lv [][]uint64 // lv[0] holds the bits; the last level has one word
}

func newBitIndex(n int) bitIndex {
	w := make([]uint64, (n+63)/64)
	return bitIndex{n: n, w0: w, lv: [][]uint64{w}}
}

func bitIndexBytes(n int) int {
	b := 0
	for w := (n + 63) / 64; ; w = (w + 63) / 64 {
		b += 8*w + 24
		if w <= 1 {
			return b
		}
	}
}

func (b *bitIndex) bytes() int { return levelBytes(b.lv) }

// levelBytes is the memory of the levels of a tree (bitIndex, locSets):
// their elements and slice headers.
func levelBytes[T any](lv [][]T) int {
	var e T
	n := 0
	for _, l := range lv {
		n += int(unsafe.Sizeof(e))*cap(l) + 24
	}
	return n
}

func (b *bitIndex) set(i int) { b.w0[i>>6] |= 1 << (uint(i) & 63) }

// finish builds the summaries once every bit is set.
func (b *bitIndex) finish() {
	for l := b.lv[0]; len(l) > 1; {
		up := make([]uint64, (len(l)+63)/64)
		for w, x := range l {
			if x != 0 {
				up[w>>6] |= 1 << (uint(w) & 63)
			}
		}
		b.lv = append(b.lv, up)
		l = up
	}
}

// run is the run holding position i: its first position, and the first
// after it (n for the last run). Bit 0 is set. Most runs are short, so
// both ends are mostly in i's word: that case reads one word.
func (b *bitIndex) run(i int) (first, end int) {
	w := b.w0[i>>6]
	before, after := w<<(63-uint(i)&63), w>>(uint(i)&63)>>1 // bit i on top; bit i+1 at the bottom
	if before == 0 || after == 0 {
		return b.runFar(i)
	}
	return i - bits.LeadingZeros64(before), i + 1 + bits.TrailingZeros64(after)
}

// runFar is run when an end is beyond i's word.
func (b *bitIndex) runFar(i int) (first, end int) { return b.prev(i), b.next(i + 1) }

// prev is the last set bit at or before i; bit 0 is set.
func (b *bitIndex) prev(i int) int { return b.prevAt(0, i) }

// next is the first set bit at or after i, or n when none is.
func (b *bitIndex) next(i int) int {
	if i >= b.n {
		return b.n
	}
	if j := b.nextAt(0, i); j >= 0 {
		return j
	}
	return b.n
}

func (b *bitIndex) prevAt(k, i int) int {
	lv := b.lv[k]
	w := i >> 6
	if m := lv[w] & (^uint64(0) >> (63 - uint(i)&63)); m != 0 {
		return w<<6 + 63 - bits.LeadingZeros64(m)
	}
	if w == 0 {
		return -1
	}
	if k+1 == len(b.lv) {
		for w--; w >= 0; w-- {
			if lv[w] != 0 {
				return w<<6 + 63 - bits.LeadingZeros64(lv[w])
			}
		}
		return -1
	}
	if w = b.prevAt(k+1, w-1); w < 0 {
		return -1
	}
	return w<<6 + 63 - bits.LeadingZeros64(lv[w])
}

func (b *bitIndex) nextAt(k, i int) int {
	lv := b.lv[k]
	w := i >> 6
	if w >= len(lv) {
		return -1
	}
	if m := lv[w] & (^uint64(0) << (uint(i) & 63)); m != 0 {
		return w<<6 + bits.TrailingZeros64(m)
	}
	if k+1 == len(b.lv) {
		for w++; w < len(lv); w++ {
			if lv[w] != 0 {
				return w<<6 + bits.TrailingZeros64(lv[w])
			}
		}
		return -1
	}
	if w = b.nextAt(k+1, w+1); w < 0 {
		return -1
	}
	return w<<6 + bits.TrailingZeros64(lv[w])
}
