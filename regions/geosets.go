package regions

// locSets finds, for any partition, the ends of a client's run without a
// merge: a tree over one family's intervals whose leaves are blocks of
// setLeaf intervals and whose nodes hold the set of locations below them,
// a bit per location. The nearest interval outside a group is a scan of
// the client's block, a climb to the first node holding a location of
// another group and a descent to its first such interval: a few dozen
// reads, and nothing per partition but one location set per group. It is
// built once per location table of fewer than setAlias locations (a
// country database has about 250); the IPv4 aliases in IPv6 take the
// last bit, setAlias. Read-only once built.
type locSets struct {
	loc []uint16   // the family's intervals' locations
	lv  [][]locSet // lv[0] by block; lv[k+1][x] is lv[k][2x] | lv[k][2x+1]
}

// locSet is a set of location ids below setLocs.
type locSet [setLocs / 64]uint64

const (
	setLocs  = 256
	setAlias = setLocs - 1 // the bit of every IPv4 alias
	setLeaf  = 32
)

// add adds location l; every alias (aliasLoc and above) is setAlias.
func (s *locSet) add(l uint16) {
	l = min(l, setAlias)
	s[l>>6] |= 1 << (l & 63)
}

func (s *locSet) has(l uint16) bool {
	l = min(l, setAlias)
	return s[l>>6]&(1<<(l&63)) != 0
}

func (s *locSet) meets(o *locSet) bool {
	return s[0]&o[0]|s[1]&o[1]|s[2]&o[2]|s[3]&o[3] != 0
}

// newLocSets builds the tree over the intervals' locations loc.
func newLocSets(loc []uint16) *locSets {
	t := &locSets{loc: loc}
	leaves := make([]locSet, (len(loc)+setLeaf-1)/setLeaf)
	for i, l := range loc {
		leaves[i/setLeaf].add(l)
	}
	t.lv = append(t.lv, leaves)
	for l := leaves; len(l) > 1; {
		up := make([]locSet, (len(l)+1)/2)
		for x := range l {
			for w := range up[x/2] {
				up[x/2][w] |= l[x][w]
			}
		}
		t.lv = append(t.lv, up)
		l = up
	}
	return t
}

func (t *locSets) bytes() int { return levelBytes(t.lv) }

// next is the first interval at or after i whose location is in other,
// or len(loc) when none is.
func (t *locSets) next(i int, other *locSet) int {
	n := len(t.loc)
	if i >= n {
		return n
	}
	// The rest of i's block, unless it holds none of other (the common
	// case inside a long run).
	end := min((i/setLeaf+1)*setLeaf, n)
	if t.lv[0][i/setLeaf].meets(other) {
		for ; i < end; i++ {
			if other.has(t.loc[i]) {
				return i
			}
		}
	}
	i = end
	// Climb from the block after i's to the first node that meets
	// other, the nodes passed holding none of its locations.
	x, k := (i+setLeaf-1)/setLeaf, 0
	for {
		if x >= len(t.lv[k]) {
			return n
		}
		if t.lv[k][x].meets(other) {
			break
		}
		if x&1 == 0 {
			x++
		} else {
			x, k = x>>1+1, k+1
		}
	}
	for ; k > 0; k-- {
		x <<= 1
		if !t.lv[k-1][x].meets(other) {
			x++
		}
	}
	for i = x * setLeaf; ; i++ {
		if other.has(t.loc[i]) {
			return i
		}
	}
}

// prev is the last interval at or before i whose location is in other,
// or -1 when none is.
func (t *locSets) prev(i int, other *locSet) int {
	if i < 0 {
		return -1
	}
	start := i / setLeaf * setLeaf
	if t.lv[0][i/setLeaf].meets(other) {
		for ; i >= start; i-- {
			if other.has(t.loc[i]) {
				return i
			}
		}
	}
	if i = start - 1; i < 0 {
		return -1
	}
	x, k := (i+1)/setLeaf-1, 0
	for {
		if x < 0 {
			return -1
		}
		if t.lv[k][x].meets(other) {
			break
		}
		if x&1 == 1 {
			x--
		} else {
			x, k = x>>1-1, k+1
		}
	}
	for ; k > 0; k-- {
		x = x<<1 + 1
		if x >= len(t.lv[k-1]) || !t.lv[k-1][x].meets(other) {
			x--
		}
	}
	for i = min((x+1)*setLeaf, len(t.loc)) - 1; ; i-- {
		if other.has(t.loc[i]) {
			return i
		}
	}
}
