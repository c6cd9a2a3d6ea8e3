package latency

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
	"strconv"
	"strings"
)

// Table answers "how fast is each region for this client network"
// by longest-prefix match. It is compiled once per latency table (see
// Compile) and shared, read-only, by every snapshot built from the
// same table identifier.
//
// The prefixes, which may nest, are flattened into sorted, non-overlapping
// intervals (one list per family), each carrying the run of (region id,
// RTT) pairs of the most specific prefix covering it, or none. A lookup
// reads a bucket index on the leading address bits, then binary-searches
// the few intervals of its bucket. With a million prefixes the arrays are
// far larger than the CPU caches, so what a lookup costs is the number of
// cache lines it touches one after the other: an index slot, the
// intervals of one bucket (mostly one or two lines), and the pairs if
// the caller reads them. Everything else (a trie, a separate table of
// prefixes) would add a dependent miss per level.
type Table struct {
	id       string
	regions  []string // sorted; a pair's region id indexes it
	v4       latFamily4
	v6       latFamily6
	pairs    []latPair // runs, one per prefix
	prefixes int
	entries  int
}

// latVal is what an interval answers: a run of pairs and the length of
// the prefix it came from. n == 0: no prefix covers the interval.
type latVal struct {
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

// maxRegions bounds the distinct region names of one table, so a
// pair's region id fits in 16 bits.
const maxRegions = math.MaxUint16

// Bucket index sizes: about one interval per bucket, within these
// bounds. 2^16 buckets (256 KiB) stay in the CPU's cache, while a larger
// index is one more cache miss per lookup; with a million prefixes that
// leaves about 20 intervals (4 cache lines) per bucket. Measured with
// BenchmarkLatencyLookup: 2^16 beat 2^18 and 2^20.
const (
	minBucketBits = 8
	maxBucketBits = 16
)

func bucketBitsFor(n int) uint {
	return uint(min(max(bits.Len(uint(n)), minBucketBits), maxBucketBits))
}

// latFamily4 holds the IPv4 intervals. Interval i covers
// [iv[i].start, iv[i+1].start-1]; iv[0].start == 0.
type latFamily4 struct {
	iv    []latIv4
	shift uint     // 32 - bucket bits
	index []uint32 // first interval starting in each bucket or later, plus len(iv)
}

type latIv4 struct {
	start uint32
	val   latVal
}

// latFamily6 holds the IPv6 intervals. Real tables sit in a small part of
// the address space (2000::/3), so the bucket bits are taken after the
// leading bits that all intervals but the first share: [lowKey, highKey].
type latFamily6 struct {
	iv              []latIv6
	skip            uint // shared leading bits
	shift           uint // 64 - bucket bits
	lowKey, highKey u128
	index           []uint32
}

type latIv6 struct {
	start u128
	val   latVal
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
func (a u128) or(b u128) u128  { return u128{a.hi | b.hi, a.lo | b.lo} }
func (a u128) andNot(b u128) u128 {
	return u128{a.hi &^ b.hi, a.lo &^ b.lo}
}

// shl shifts left by n < 128 bits.
func (a u128) shl(n uint) u128 {
	if n >= 64 {
		return u128{a.lo << (n - 64), 0}
	}
	if n == 0 {
		return a
	}
	return u128{a.hi<<n | a.lo>>(64-n), a.lo << n}
}

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

// Compile parses csv as ParseCSV does and builds the lookup structure,
// named id (the stored table's identifier, which changes whenever the
// table does). It fails if the CSV is invalid or names more than 65,535
// regions.
func Compile(id string, csv []byte) (*Table, error) {
	if csv == nil {
		return nil, errors.New("latency table: no data")
	}
	t, err := compileLatencyCSV(csv)
	if err != nil {
		return nil, err
	}
	t.id = id
	return t, nil
}

// compileLatencyCSV reads the CSV in one pass without allocating per line
// when it is valid, which for a million lines is several times faster
// than ParseCSV (whose duplicate check and per-line strings
// dominate). It accepts exactly what ParseCSV accepts: at the
// first line it does not take, or a duplicate, it hands the whole input to
// ParseCSV, which stays the one judge of validity and the one
// author of error messages.
func compileLatencyCSV(csv []byte) (*Table, error) {
	if es, names, ok := scanLatencyCSV(csv); ok {
		if t, dup := buildLatency(es, names); !dup {
			return t, nil
		}
	}
	entries, err := ParseCSV(bytes.NewReader(csv))
	if err != nil {
		return nil, err
	}
	return compileLatencyEntries(entries)
}

// maxFastLine is the longest line scanLatencyCSV takes; well below the
// line limit of ParseCSV's scanner, so that a line it would refuse
// goes to it.
const maxFastLine = 4096

// scanLatencyCSV parses the lines the way ParseCSV does (the same
// trimming and the same parsers on the same fields) and reports false at
// the first line that ParseCSV might judge differently. Duplicates
// are found later, after sorting.
func scanLatencyCSV(csv []byte) ([]latEntry, []string, bool) {
	text := string(csv)
	ids := make(map[string]uint16)
	var names []string
	es := make([]latEntry, 0, len(text)/24)
	for line := 1; len(text) > 0; line++ {
		raw := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			raw, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		if len(raw) > maxFastLine {
			return nil, nil, false
		}
		l := strings.TrimSpace(raw)
		if l == "" || l[0] == '#' {
			continue
		}
		if line == 1 && strings.HasPrefix(strings.ToLower(l), "cidr,") {
			continue
		}
		f0, rest, ok := strings.Cut(l, ",")
		if !ok {
			return nil, nil, false
		}
		f1, f2, ok := strings.Cut(rest, ",")
		if !ok || strings.IndexByte(f2, ',') >= 0 {
			return nil, nil, false
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(f0))
		if err != nil || p.Addr().Is4In6() || p != p.Masked() {
			return nil, nil, false
		}
		region := strings.TrimSpace(f1)
		if !ValidRegionName(region) {
			return nil, nil, false
		}
		rtt, err := strconv.ParseFloat(strings.TrimSpace(f2), 64)
		if err != nil || math.IsNaN(rtt) || rtt <= 0 || rtt > MaxRTTms {
			return nil, nil, false
		}
		id, ok := ids[region]
		if !ok {
			if len(names) == maxRegions {
				return nil, nil, false
			}
			// A copy: the names outlive the CSV text.
			region = strings.Clone(region)
			id = uint16(len(names))
			ids[region] = id
			names = append(names, region)
		}
		es = append(es, newLatEntry(p, id, rtt))
	}
	// Region ids in name order.
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	remap := make([]uint16, len(names))
	for i, n := range sorted {
		remap[ids[n]] = uint16(i)
	}
	for i := range es {
		es[i].region = remap[es[i].region]
	}
	return es, sorted, true
}

// MaxRegionNameLen is the longest region name.
const MaxRegionNameLen = 63

// ValidRegionName says whether s is a region name: lower-case letters,
// digits and inner hyphens, at most MaxRegionNameLen bytes, like a DNS
// label. The model validates region names with it too (a latency table
// names regions, and a table must accept exactly the names a region may
// have); it is written without a regexp because a table has a million
// lines.
func ValidRegionName(s string) bool {
	if s == "" || len(s) > MaxRegionNameLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// latEntry is an entry reduced to what the build sorts on.
type latEntry struct {
	key    u128
	bits   uint8
	v6     bool
	region uint16
	rttUs  uint32
}

func newLatEntry(p netip.Prefix, region uint16, rttMs float64) latEntry {
	p = p.Masked()
	a := p.Addr().Unmap()
	e := latEntry{bits: uint8(p.Bits()), region: region, rttUs: rttMicros(rttMs)}
	if a.Is4() {
		b := a.As4()
		e.key = u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	} else {
		e.key, e.v6 = addrU128(a), true
	}
	return e
}

// compileLatencyEntries builds a table from parsed entries.
func compileLatencyEntries(entries []Entry) (*Table, error) {
	ids := make(map[string]uint16)
	var names []string
	for _, e := range entries {
		if _, ok := ids[e.Region]; !ok {
			if len(names) >= maxRegions {
				return nil, fmt.Errorf("latency table: more than %d regions", maxRegions)
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
		es[i] = newLatEntry(e.Prefix, ids[e.Region], e.RTTms)
	}
	t, dup := buildLatency(es, names)
	if dup {
		return nil, errors.New("latency table: a network is listed twice for one region")
	}
	return t, nil
}

// buildLatency sorts es and builds the table; it reports true instead if
// a (network, region) pair is listed twice.
func buildLatency(es []latEntry, names []string) (*Table, bool) {
	sortLatEntries(es)
	for i := 1; i < len(es); i++ {
		a, b := &es[i-1], &es[i]
		if a.v6 == b.v6 && a.key == b.key && a.bits == b.bits && a.region == b.region {
			return nil, true
		}
	}

	t := &Table{regions: names, entries: len(es), pairs: make([]latPair, 0, len(es))}
	var pv4, pv6 []sweepPrefix
	for i := 0; i < len(es); {
		j := i
		for j < len(es) && es[j].v6 == es[i].v6 && es[j].key == es[i].key && es[j].bits == es[i].bits {
			j++
		}
		// j-i <= the number of regions (no duplicates), which fits.
		val := latVal{off: uint32(len(t.pairs)), n: uint16(j - i), bits: es[i].bits}
		for _, e := range es[i:j] {
			t.pairs = append(t.pairs, latPair{region: e.region, rttUs: e.rttUs})
		}
		t.prefixes++
		sp := sweepPrefix{start: es[i].key, val: val}
		if es[i].v6 {
			sp.end = sp.start.or(hostMask(128, int(es[i].bits)))
			pv6 = append(pv6, sp)
		} else {
			sp.end = sp.start.or(hostMask(32, int(es[i].bits)))
			pv4 = append(pv4, sp)
		}
		i = j
	}

	b4 := sweep(pv4, u128{0, math.MaxUint32})
	t.v4.iv = make([]latIv4, len(b4))
	for i, b := range b4 {
		t.v4.iv[i] = latIv4{start: uint32(b.start.lo), val: b.val}
	}
	bb := bucketBitsFor(len(b4))
	t.v4.shift = 32 - bb
	t.v4.index = bucketIndex(len(b4), bb, func(i int) uint64 { return uint64(t.v4.iv[i].start >> t.v4.shift) })

	b6 := sweep(pv6, u128Max)
	f6 := &t.v6
	f6.iv = make([]latIv6, len(b6))
	for i, b := range b6 {
		f6.iv[i] = latIv6(b)
	}
	bb = bucketBitsFor(len(b6))
	f6.shift = 64 - bb
	// Every interval but the first (which starts at ::) lies in
	// [lowKey, highKey]: the network of the bits they share.
	f6.lowKey, f6.highKey = u128{}, u128Max
	if n := len(b6); n > 1 {
		common := b6[1].start.xor(b6[n-1].start).leadingZeros()
		f6.skip = uint(min(common, 128-int(bb)))
		f6.lowKey = b6[1].start.andNot(hostMask(128, int(f6.skip)))
		f6.highKey = f6.lowKey.or(hostMask(128, int(f6.skip)))
	}
	f6.index = bucketIndex(len(b6), bb, func(i int) uint64 {
		if i == 0 && f6.skip > 0 {
			return 0 // before every bucket; counts as bucket 0
		}
		return f6.bucket(f6.iv[i].start)
	})
	return t, false
}

// sortLatEntries puts es in the order the interval sweep needs: IPv4
// before IPv6, then by start address, shorter (enclosing) prefixes first,
// then by region. It is an LSD radix sort on 16-bit digits, several times
// faster than a comparison sort for a million entries; digits that are
// the same in every entry (the low 64 bits of IPv6 prefixes up to /64,
// say) cost one counting pass and no move.
func sortLatEntries(es []latEntry) {
	if len(es) < radixMin {
		slices.SortFunc(es, compareLatEntries)
		return
	}
	tmp := make([]latEntry, len(es))
	// Stable partition by family into tmp, then sort each part back.
	n4 := 0
	for i := range es {
		if !es[i].v6 {
			n4++
		}
	}
	i4, i6 := 0, n4
	for _, e := range es {
		if e.v6 {
			tmp[i6] = e
			i6++
		} else {
			tmp[i4] = e
			i4++
		}
	}
	copy(es, tmp)
	radixSort(es[:n4], tmp[:n4], 4)
	radixSort(es[n4:], tmp[n4:], 10)
}

// radixMin is the size below which a comparison sort is faster than
// clearing 64Ki counters per digit.
const radixMin = 4096

// compareLatEntries is the order sortLatEntries makes.
func compareLatEntries(a, b latEntry) int {
	switch {
	case a.v6 != b.v6:
		if a.v6 {
			return 1
		}
		return -1
	case a.key.hi != b.key.hi:
		return cmp.Compare(a.key.hi, b.key.hi)
	case a.key.lo != b.key.lo:
		return cmp.Compare(a.key.lo, b.key.lo)
	case a.bits != b.bits:
		return cmp.Compare(a.bits, b.bits)
	}
	return cmp.Compare(a.region, b.region)
}

// latDigit is the d-th least significant 16-bit digit of the sort key
// (start address, prefix length, region).
func latDigit(e *latEntry, d int) uint16 {
	switch {
	case d == 0:
		return e.region
	case d == 1:
		return uint16(e.bits)
	case d < 6:
		return uint16(e.key.lo >> (16 * (d - 2)))
	default:
		return uint16(e.key.hi >> (16 * (d - 6)))
	}
}

// radixSort sorts es by its first digits digits, using tmp (as long as
// es) as scratch; the result is in es.
func radixSort(es, tmp []latEntry, digits int) {
	if len(es) < 2 {
		return
	}
	var count [1 << 16]int
	src, dst := es, tmp
	for d := range digits {
		clear(count[:])
		for i := range src {
			count[latDigit(&src[i], d)]++
		}
		if count[latDigit(&src[0], d)] == len(src) {
			continue // one value: already in order
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for i := range src {
			k := latDigit(&src[i], d)
			dst[count[k]] = src[i]
			count[k]++
		}
		src, dst = dst, src
	}
	if &src[0] != &es[0] {
		copy(es, src)
	}
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
	val        latVal
}

type boundary struct {
	start u128
	val   latVal
}

// sweep turns prefixes sorted by (start, length) into the boundaries of
// non-overlapping intervals, each labelled with the most specific prefix
// covering it (n == 0 for none). Adjacent intervals with the same label
// are merged. maxKey is the family's last address.
func sweep(ps []sweepPrefix, maxKey u128) []boundary {
	out := make([]boundary, 1, 2*len(ps)+1)
	emit := func(start u128, val latVal) {
		last := &out[len(out)-1]
		if last.start == start {
			// A more specific prefix (or the parent resuming) at the same
			// address replaces the label.
			last.val = val
			if len(out) > 1 && out[len(out)-2].val == val {
				out = out[:len(out)-1]
			}
			return
		}
		if last.val == val {
			return
		}
		out = append(out, boundary{start: start, val: val})
	}
	var stack []sweepPrefix
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if top.end == maxKey {
			return
		}
		var next latVal
		if len(stack) > 0 {
			next = stack[len(stack)-1].val
		}
		emit(top.end.add1(), next)
	}
	for _, p := range ps {
		for len(stack) > 0 && stack[len(stack)-1].end.less(p.start) {
			pop()
		}
		emit(p.start, p.val)
		stack = append(stack, p)
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

// bucketIndex returns, for every bucket b of 2^bb, the first interval
// whose bucket is b or later (n when none), plus a final n. bucket must be
// non-decreasing in i.
func bucketIndex(n int, bb uint, bucket func(i int) uint64) []uint32 {
	idx := make([]uint32, 1<<bb+1)
	i := 0
	for b := range idx {
		for i < n && bucket(i) < uint64(b) {
			i++
		}
		idx[b] = uint32(i)
	}
	return idx
}

// bucket is the index bucket of k, which must lie in [lowKey, highKey].
func (f *latFamily6) bucket(k u128) uint64 {
	return k.shl(f.skip).hi >> f.shift
}

// Len is the number of distinct prefixes in the table.
func (t *Table) Len() int { return t.prefixes }

// Entries is the number of (prefix, region) entries in the table.
func (t *Table) Entries() int { return t.entries }

// ID is the identifier the table was compiled with.
func (t *Table) ID() string { return t.id }

// Regions lists the region names the table mentions, sorted. Read-only.
func (t *Table) Regions() []string { return t.regions }

// Match is the result of a lookup: the RTT of every region the
// matched prefix lists, and how far the answer reaches. It refers to the
// table and does not allocate.
type Match struct {
	t     *Table
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
func (m Match) Bits() int { return m.bits }

// Prefix is the table entry that matched; invalid for a miss.
func (m Match) Prefix() netip.Prefix {
	if m.pbits < 0 {
		return netip.Prefix{}
	}
	p, _ := m.addr.Prefix(m.pbits)
	return p
}

// Len is the number of regions with an RTT for the matched prefix.
func (m Match) Len() int { return len(m.pairs) }

// At returns the i-th region (in name order) and its RTT in milliseconds.
func (m Match) At(i int) (region string, rttMs float64) {
	p := m.pairs[i]
	return m.t.regions[p.region], float64(p.rttUs) / 1000
}

// regionID is At without the name: the table's region index.
func (m Match) RegionID(i int) (id int, rttMs float64) {
	p := m.pairs[i]
	return int(p.region), float64(p.rttUs) / 1000
}

// Lookup finds the longest prefix holding addr. IPv4-mapped addresses are
// looked up as IPv4. It reports false when no prefix holds addr; Bits is
// still meaningful then. It does not allocate.
func (t *Table) Lookup(addr netip.Addr) (Match, bool) {
	m := Match{t: t, pbits: -1}
	if t == nil || !addr.IsValid() {
		return m, false
	}
	addr = addr.Unmap().WithZone("")
	m.addr = addr
	var val latVal
	if addr.Is4() {
		b := addr.As4()
		k := binary.BigEndian.Uint32(b[:])
		f := &t.v4
		i := f.find(k)
		val = f.iv[i].val
		// The interval is [start, next start - 1]; the answer holds on the
		// largest aligned block around k inside it.
		if s := f.iv[i].start; s != 0 {
			m.bits = bits.LeadingZeros32(k^(s-1)) + 1
		}
		if i+1 < len(f.iv) {
			m.bits = max(m.bits, bits.LeadingZeros32(k^f.iv[i+1].start)+1)
		}
	} else {
		k := addrU128(addr)
		f := &t.v6
		i := f.find(k)
		val = f.iv[i].val
		if s := f.iv[i].start; s != (u128{}) {
			m.bits = k.xor(s.sub1()).leadingZeros() + 1
		}
		if i+1 < len(f.iv) {
			m.bits = max(m.bits, k.xor(f.iv[i+1].start).leadingZeros()+1)
		}
	}
	if val.n == 0 {
		return m, false
	}
	m.pbits = int(val.bits)
	m.pairs = t.pairs[val.off : val.off+uint32(val.n)]
	return m, true
}

// linearScan is the range length below which find scans instead of
// halving.
const linearScan = 16

// find returns the last interval starting at or before k.
func (f *latFamily4) find(k uint32) int {
	b := k >> f.shift
	lo, hi := int(f.index[b]), int(f.index[b+1])
	// Count the starts in [lo, hi) that are <= k: halve while the range
	// is long (a crowded bucket), then scan, which reads consecutive
	// cache lines the CPU prefetches.
	for hi-lo > linearScan {
		mid := int(uint(lo+hi) >> 1)
		if f.iv[mid].start <= k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for lo < hi && f.iv[lo].start <= k {
		lo++
	}
	// iv[0].start == 0 <= k, so lo >= 1.
	return lo - 1
}

func (f *latFamily6) find(k u128) int {
	if k.less(f.lowKey) {
		return 0
	}
	if f.highKey.less(k) {
		return len(f.iv) - 1
	}
	b := f.bucket(k)
	lo, hi := int(f.index[b]), int(f.index[b+1])
	for hi-lo > linearScan {
		mid := int(uint(lo+hi) >> 1)
		if !k.less(f.iv[mid].start) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for lo < hi && !k.less(f.iv[lo].start) {
		lo++
	}
	return lo - 1
}
