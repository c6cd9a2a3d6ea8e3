package regions

import "math/bits"

// radixIndex narrows the search of an address among one family's sorted
// intervals to a few of them. Its root splits the address space by the
// first rootBits bits of the key; a bucket holding more than leafMax
// intervals is split again by the next bits (up to 8 at a time), as deep
// as its intervals need. A fixed-width index alone leaves the dense parts
// of the space, where most clients are, with long searches (on the
// tor-geoipdb database a /16 of IPv4 holds up to 10,725 intervals, and
// one /16 of IPv6, 2a02::/16, 67,649 of them); this one bounds every
// search to leafMax+1 intervals but where a single key holds more (IPv6
// intervals starting inside one /64). Read-only once built.
type radixIndex struct {
	// e holds the nodes one after the other, the root first: a node of
	// n bits is 2^n buckets and one more entry whose first is the
	// interval holding the address after the node's last.
	e        []radixEntry
	rootBits uint
}

// radixEntry is one bucket of a node: first is the interval holding the
// bucket's first address; child, when not 0, is the node that splits the
// bucket: its offset in e shifted left by 5, ORed with its bits.
type radixEntry struct {
	first uint32
	child uint32
}

// leafMax is the most intervals a bucket holds before it is split.
const leafMax = 16

// find returns the intervals to search for the address whose key is
// key (the address's first 64 bits, left-aligned): the interval holding
// it is among first to last, both included, and first holds the first
// address of the bucket.
func (x *radixIndex) find(key uint64) (first, last uint32) {
	e := x.e
	i := key >> (64 - x.rootBits)
	pos := x.rootBits
	for {
		c := e[i].child
		if c == 0 {
			return e[i].first, e[i+1].first
		}
		n := uint(c & 31)
		i = uint64(c>>5) + key<<pos>>(64-n)
		pos += n
	}
}

// newRadixIndex indexes n intervals whose keys are w bits wide (32 for
// IPv4, 64 for the first half of IPv6); atOrBefore(i, k) says whether
// interval i starts at or before the address whose left-aligned key is k
// (the rest of the address zero). Interval 0 starts at the first address.
func newRadixIndex(n int, w uint, atOrBefore func(i int, k uint64) bool) radixIndex {
	root := uint(min(max(bits.Len(uint(n)), 1), 16))
	x := radixIndex{rootBits: root, e: make([]radixEntry, 1<<root+1)}
	x.fill(0, 0, 0, root, uint32(n-1), n, w, atOrBefore)
	x.e = x.e[:len(x.e):len(x.e)]
	return x
}

// fill sets the buckets of the node at offset off, of nb bits, splitting
// the keys that start with the pos bits of prefix; end is the interval
// holding the address after the node's last. Buckets with too many
// intervals get a node of their own.
func (x *radixIndex) fill(off int, prefix uint64, pos, nb uint, end uint32, n int, w uint, atOrBefore func(int, uint64) bool) {
	buckets := 1 << nb
	shift := 64 - pos - nb
	i := 0
	if pos > 0 {
		// The first interval at or before the node's first address:
		// from the parent's bucket, found by the caller's search.
		i = int(x.e[off].first)
	}
	for b := range buckets {
		k := prefix | uint64(b)<<shift
		for i+1 < n && atOrBefore(i+1, k) {
			i++
		}
		x.e[off+b].first = uint32(i)
	}
	x.e[off+buckets].first = end
	for b := range buckets {
		first, last := x.e[off+b].first, x.e[off+b+1].first
		left := w - (pos + nb) // key bits below this node's
		if int(last-first)+1 <= leafMax || left == 0 {
			continue
		}
		cb := uint(min(8, left, uint(bits.Len(uint(last-first)/(leafMax/2)))))
		child := len(x.e)
		x.e = append(x.e, make([]radixEntry, 1<<cb+1)...)
		x.e[child].first = first
		x.e[off+b].child = uint32(child)<<5 | uint32(cb)
		x.fill(child, prefix|uint64(b)<<shift, pos+nb, cb, last, n, w, atOrBefore)
	}
}

// bytes is the index's memory.
func (x *radixIndex) bytes() int { return 8 * cap(x.e) }
