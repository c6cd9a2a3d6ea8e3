package regions

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gslb/meridian/geo"
)

// A geo map compiled against a GeoIP database (docs/architecture.md,
// Steering: the ECS scope). The database's networks are cut into sorted,
// non-overlapping intervals covering each address family whole, each with
// the geo class its addresses get, adjacent intervals of the same class
// merged. A class is what a geo decision depends on besides health: the
// order in which the service's regions are preferred (the client's
// country list, then its continent list, then the default list, then the
// service's order, each region at its first place). Two networks with the
// same order get the same answer whatever the health, so they merge even
// when they come from different lists. A lookup is a binary search; the
// widest CIDR block around the client that stays inside its interval is
// the ECS scope of the answer.

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

// geoMap is a service's geo map as the classes see it: every list in
// region names, with the regions that can never be chosen (drained, not
// in the service) left out and empty lists dropped. Services whose
// geoMaps are equal share one table.
type geoMap struct {
	countries  map[string][]string
	continents [numContinents][]string
	def        []string
	order      []string // the service's regions that are not drained, in order
	key        string
}

// newGeoMap builds the geoMap of a service's compiled geo map.
func newGeoMap(v *ServiceView, g *geoTable) *geoMap {
	names := func(li int) []string {
		if li < 0 {
			return nil
		}
		var out []string
		for _, sl := range g.lists[li] {
			if v.slots[sl].weight > 0 {
				out = append(out, v.slots[sl].name)
			}
		}
		return out
	}
	m := &geoMap{def: names(g.def)}
	for i := range v.slots {
		if v.slots[i].weight > 0 {
			m.order = append(m.order, v.slots[i].name)
		}
	}
	var b strings.Builder
	list := func(tag string, l []string) {
		b.WriteString(tag)
		b.WriteByte('=')
		for _, n := range l {
			b.WriteString(strconv.Itoa(len(n)))
			b.WriteByte(':')
			b.WriteString(n)
		}
		b.WriteByte(';')
	}
	list("order", m.order)
	list("default", m.def)
	for _, cc := range sortedKeys(g.countries) {
		if l := names(g.countries[cc]); len(l) > 0 {
			if m.countries == nil {
				m.countries = map[string][]string{}
			}
			m.countries[cc] = l
			list("country "+cc, l)
		}
	}
	for ci, li := range g.continents {
		if l := names(li); len(l) > 0 {
			m.continents[ci] = l
			list("continent "+strconv.Itoa(ci), l)
		}
	}
	m.key = b.String()
	return m
}

// class is the class of a location: the regions in the order a decision
// prefers them, each once, joined with NULs.
func (m *geoMap) class(country, continent string) string {
	var seq []string
	add := func(l []string) {
		for _, n := range l {
			if !slices.Contains(seq, n) {
				seq = append(seq, n)
			}
		}
	}
	if country != "" {
		add(m.countries[country])
	}
	if ci := continentIndex(continent); ci >= 0 {
		add(m.continents[ci])
	}
	add(m.def)
	add(m.order)
	return strings.Join(seq, "\x00")
}

// prefixTable is one geoMap compiled against one database. Read-only.
//
// IPv4: interval i is [v4start[i], v4start[i+1]) with class v4class[i];
// v4start[0] is 0.
//
// IPv6 is cut at /64 boundaries, so that a key takes 8 bytes: interval i
// starts at the /64 whose high 64 bits are m6hi[i] (m6hi[0] is 0). A /64
// that holds more than one class is an interval of its own, of class
// splitMark, and its own intervals are in the split part: splitHi[j] is
// such a /64, its intervals are splitLo (the low 64 bits of their starts,
// the first 0) and splitClass from splitOff[j] to splitOff[j+1]. A block
// that reaches out of a /64 holds it whole, so cutting at /64 boundaries
// loses no scope. An interval of class aliasClass+k is the k-th alias of
// the IPv4 networks: its addresses are looked up in the IPv4 intervals by
// the 32 bits that follow aliases[k].
type prefixTable struct {
	db          *geo.DB
	v4start     []uint32
	v4class     []uint16
	m6hi        []uint64
	m6class     []uint16
	splitHi     []uint64
	splitOff    []uint32
	splitLo     []uint64
	splitClass  []uint16
	aliases     []netip.Prefix
	classes     []string // each class id's class (see geoMap.class)
	compileTime time.Duration
	networks    int // database networks read, both families
}

// Class ids at aliasClass and above are not classes: aliasClass+k is the
// k-th IPv4 alias and splitMark a split /64.
const (
	aliasClass = 0xFFF0
	maxAliases = 0xFFFF - aliasClass
	splitMark  = 0xFFFF
)

// lookup returns the class of a's interval and the length of the widest
// CIDR block holding a inside that interval. a is unmapped and valid. It
// does not allocate.
func (t *prefixTable) lookup(a netip.Addr) (class int, scope int) {
	if a.Is4() {
		b := a.As4()
		return t.lookup4(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	xh, xl := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	i := searchLo(t.m6hi, xh)
	c := t.m6class[i]
	// The block of x at length p leaves its interval exactly when it
	// holds the address before the interval or the one after it, that
	// is when x shares its first p bits with one of them.
	if c == splitMark {
		j := searchLo(t.splitHi, xh)
		lo, hi := int(t.splitOff[j]), int(t.splitOff[j+1])
		k := lo + searchLo(t.splitLo[lo:hi], xl)
		c = t.splitClass[k]
		if k > lo {
			scope = 64 + bits.LeadingZeros64(xl^(t.splitLo[k]-1)) + 1
		}
		if k+1 < hi {
			scope = max(scope, 64+bits.LeadingZeros64(xl^t.splitLo[k+1])+1)
		}
	} else {
		if i > 0 {
			scope = bits.LeadingZeros64(xh^(t.m6hi[i]-1)) + 1
		}
		if i+1 < len(t.m6hi) {
			scope = max(scope, bits.LeadingZeros64(xh^t.m6hi[i+1])+1)
		}
	}
	if c >= aliasClass {
		n := uint(t.aliases[c-aliasClass].Bits()) // at most 96
		var v uint64                              // the bits after the prefix, first
		if n < 64 {
			v = xh<<n | xl>>(64-n)
		} else {
			v = xl << (n - 64)
		}
		class, scope = t.lookup4(uint32(v >> 32))
		return class, int(n) + scope
	}
	return int(c), scope
}

// lookup4 is lookup for the IPv4 address x.
func (t *prefixTable) lookup4(x uint32) (class int, scope int) {
	s := t.v4start
	lo := searchLo(s, x)
	if lo > 0 {
		scope = bits.LeadingZeros32(x^(s[lo]-1)) + 1
	}
	if lo+1 < len(s) {
		scope = max(scope, bits.LeadingZeros32(x^s[lo+1])+1)
	}
	return int(t.v4class[lo]), scope
}

// searchLo is the last i with k[i] <= x; k[0] <= x.
func searchLo[T uint32 | uint64](k []T, x T) int {
	lo, hi := 0, len(k)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if k[m] <= x {
			lo = m
		} else {
			hi = m
		}
	}
	return lo
}

// bytes is the table's memory: its intervals and class names.
func (t *prefixTable) bytes() int {
	n := 4*cap(t.v4start) + 2*cap(t.v4class) + 8*cap(t.m6hi) + 2*cap(t.m6class) +
		8*cap(t.splitHi) + 4*cap(t.splitOff) + 8*cap(t.splitLo) + 2*cap(t.splitClass) + 24*cap(t.aliases)
	for _, c := range t.classes {
		n += len(c) + 16
	}
	return n
}

// tableBuilder compiles one geoMap while the database is walked.
type tableBuilder struct {
	m    *geoMap
	t    *prefixTable
	ids  map[string]uint16    // class -> id
	memo map[[2]string]uint16 // (country, continent) -> id
	def  uint16               // the class of addresses in no network
	// The IPv6 intervals before they are split into the table's parts.
	hi, lo []uint64
	class  []uint16
}

func newTableBuilder(db *geo.DB, m *geoMap) (*tableBuilder, error) {
	b := &tableBuilder{m: m, t: &prefixTable{db: db}, ids: map[string]uint16{}, memo: map[[2]string]uint16{}}
	var err error
	b.def, err = b.classOf("", "")
	return b, err
}

func (b *tableBuilder) classOf(country, continent string) (uint16, error) {
	k := [2]string{country, continent}
	if id, ok := b.memo[k]; ok {
		return id, nil
	}
	c := b.m.class(country, continent)
	id, ok := b.ids[c]
	if !ok {
		if len(b.t.classes) >= aliasClass {
			return 0, fmt.Errorf("more than %d geo classes", aliasClass)
		}
		id = uint16(len(b.t.classes))
		b.ids[c] = id
		b.t.classes = append(b.t.classes, c)
	}
	b.memo[k] = id
	return id, nil
}

func (b *tableBuilder) add4(start uint32, class uint16) {
	t := b.t
	if n := len(t.v4class); n > 0 && t.v4class[n-1] == class {
		return
	}
	t.v4start = append(t.v4start, start)
	t.v4class = append(t.v4class, class)
}

func (b *tableBuilder) add6(hi, lo uint64, class uint16) {
	if n := len(b.class); n > 0 && b.class[n-1] == class {
		return
	}
	b.hi = append(b.hi, hi)
	b.lo = append(b.lo, lo)
	b.class = append(b.class, class)
}

// finish cuts the IPv6 intervals at /64 boundaries and trims every
// slice to its length.
func (b *tableBuilder) finish() *prefixTable {
	t := b.t
	add := func(hi uint64, class uint16) {
		if n := len(t.m6class); n > 0 && t.m6class[n-1] == class && class != splitMark {
			return
		}
		t.m6hi = append(t.m6hi, hi)
		t.m6class = append(t.m6class, class)
	}
	n := len(b.hi)
	for i := 0; i < n; {
		h := b.hi[i]
		if b.lo[i] == 0 && (i+1 == n || b.hi[i+1] != h) {
			add(h, b.class[i]) // no interval starts inside this /64
			i++
			continue
		}
		// Intervals start inside h: its own intervals, the first one
		// the interval before i when i starts after h's first address.
		t.splitHi = append(t.splitHi, h)
		t.splitOff = append(t.splitOff, uint32(len(t.splitLo)))
		if b.lo[i] != 0 {
			t.splitLo = append(t.splitLo, 0)
			t.splitClass = append(t.splitClass, b.class[i-1])
		}
		k := i
		for ; k < n && b.hi[k] == h; k++ {
			t.splitLo = append(t.splitLo, b.lo[k])
			t.splitClass = append(t.splitClass, b.class[k])
		}
		add(h, splitMark)
		// The last interval goes on into the next /64 unless another
		// starts there.
		if h != ^uint64(0) && (k == n || b.hi[k] != h+1) {
			add(h+1, b.class[k-1])
		}
		i = k
	}
	t.splitOff = append(t.splitOff, uint32(len(t.splitLo)))
	t.v4start, t.v4class = slices.Clip(t.v4start), slices.Clip(t.v4class)
	t.m6hi, t.m6class = slices.Clip(t.m6hi), slices.Clip(t.m6class)
	t.splitHi, t.splitOff = slices.Clip(t.splitHi), slices.Clip(t.splitOff)
	t.splitLo, t.splitClass = slices.Clip(t.splitLo), slices.Clip(t.splitClass)
	t.aliases, t.classes = slices.Clip(t.aliases), slices.Clip(t.classes)
	b.hi, b.lo, b.class = nil, nil, nil
	return t
}

// compileTables walks db once per family and compiles every map in
// maps. Adjacent networks of one class, and the gaps between networks
// (the class of an address the database does not hold), merge.
func compileTables(db *geo.DB, maps []*geoMap) ([]*prefixTable, error) {
	start := time.Now()
	bs := make([]*tableBuilder, len(maps))
	for i, m := range maps {
		b, err := newTableBuilder(db, m)
		if err != nil {
			return nil, err
		}
		bs[i] = b
	}
	networks := 0

	// IPv4: next is the first address not yet covered; done once a
	// network reached 255.255.255.255.
	var next uint32
	done := false
	for n, err := range db.Networks(false) {
		if err != nil {
			return nil, err
		}
		networks++
		p := n.Network.Masked()
		a4 := p.Addr().As4()
		first := binary.BigEndian.Uint32(a4[:])
		last := first | uint32(uint64(1)<<(32-p.Bits())-1)
		for _, b := range bs {
			if first > next {
				b.add4(next, b.def)
			}
			id, err := b.classOf(n.Country, n.Continent)
			if err != nil {
				return nil, err
			}
			b.add4(first, id)
		}
		if last == ^uint32(0) {
			done = true
			break
		}
		next = last + 1
	}
	if !done {
		for _, b := range bs {
			b.add4(next, b.def)
		}
	}

	var nh, nl uint64
	done = false
	var aliases []netip.Prefix
	for n, err := range db.Networks(true) {
		if err != nil {
			return nil, err
		}
		networks++
		p := n.Network.Masked()
		a16 := p.Addr().As16()
		fh, fl := binary.BigEndian.Uint64(a16[:8]), binary.BigEndian.Uint64(a16[8:])
		lh, ll := fh, fl
		switch bits := p.Bits(); {
		case bits < 64:
			lh |= ^uint64(0) >> bits
			ll = ^uint64(0)
		case bits < 128:
			ll |= ^uint64(0) >> (bits - 64)
		}
		alias := uint16(0)
		if n.IPv4Alias {
			if len(aliases) == maxAliases {
				return nil, fmt.Errorf("geo tables: more than %d IPv4 aliases", len(aliases))
			}
			alias = aliasClass + uint16(len(aliases))
			aliases = append(aliases, p)
		}
		for _, b := range bs {
			if fh > nh || fh == nh && fl > nl {
				b.add6(nh, nl, b.def)
			}
			id := alias
			switch {
			case n.IPv4Alias && len(b.t.v4start) == 1:
				// All of IPv4 is one class, so the alias is too: it
				// merges with its neighbours.
				id = b.t.v4class[0]
			case !n.IPv4Alias:
				if id, err = b.classOf(n.Country, n.Continent); err != nil {
					return nil, err
				}
			}
			b.add6(fh, fl, id)
		}
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
		for _, b := range bs {
			b.add6(nh, nl, b.def)
		}
	}

	took := time.Since(start)
	out := make([]*prefixTable, len(bs))
	for i, b := range bs {
		b.t.aliases = aliases
		out[i] = b.finish()
		out[i].compileTime = took
		out[i].networks = networks
	}
	return out, nil
}

// GeoTableInfo describes one compiled geo table of a snapshot.
type GeoTableInfo struct {
	// Services are the services that use the table.
	Services []string `json:"services"`
	// Classes counts the distinct region orders the map gives.
	Classes int `json:"classes"`
	// IntervalsV4 and IntervalsV6 count the merged intervals.
	IntervalsV4 int `json:"intervals_v4"`
	IntervalsV6 int `json:"intervals_v6"`
	// Bytes is the memory the table holds.
	Bytes int `json:"bytes"`
	// Networks counts the database networks read to compile it (both
	// families, IPv4 networks once more for each place the database
	// aliases them in IPv6).
	Networks int `json:"networks"`
	// CompileTime is how long the walk of the database took (shared by
	// the tables compiled in the same walk).
	CompileTime time.Duration `json:"compile_time"`
	// Reused says the snapshot took the table over from the previous one
	// rather than compiling it.
	Reused bool `json:"reused"`
}
