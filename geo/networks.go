package geo

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// ErrUnordered is wrapped by the error Networks yields when the database
// lists networks out of address order, which a well-formed search tree
// never does.
var ErrUnordered = errors.New("networks out of address order")

// Network is one network of the database as Locate sees its addresses.
type Network struct {
	// Location is what Locate returns for every address of the network;
	// its Network is set.
	Location
	// IPv4Alias marks an IPv6 network where the database places its
	// IPv4 networks: Locate finds an IPv6 address in it as the IPv4
	// address in the 32 bits that follow the prefix. Its Location is
	// zero but for Network.
	IPv4Alias bool
}

// The places where IPv6 databases alias their IPv4 networks, besides
// ::/96 where they hold them: IPv4-mapped addresses, Teredo and 6to4.
var ipv4AliasCandidates = []netip.Prefix{
	netip.MustParsePrefix("::ffff:0:0/96"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2002::/16"),
}

var v6Any = netip.PrefixFrom(netip.IPv6Unspecified(), 0)

// Networks iterates, in address order, over the networks of the database
// that hold a record, as Locate sees the addresses of one family.
// Addresses in no yielded network are the ones Locate finds nothing for.
//
// With v6 false it covers the IPv4 space, with IPv4 prefixes. With v6
// true it covers the IPv6 space with IPv6 prefixes; where an IPv6
// database holds or aliases its IPv4 networks (::/96, and ::ffff:0:0/96,
// 2001::/32, 2002::/16 when the database points them at its IPv4
// networks) it yields one Network marked IPv4Alias instead of each IPv4
// network again. An IPv4-only database has no IPv6 networks. (Locate
// itself looks IPv4-mapped addresses up as IPv4.)
//
// It is for compiling lookup tables off the query path: it walks the whole
// search tree (about half a million networks for a full country database)
// and allocates. The iteration stops at the first error, which it yields
// with a zero Network.
func (db *DB) Networks(v6 bool) iter.Seq2[Network, error] {
	return func(yield func(Network, error) bool) {
		if db == nil || (v6 && db.info.IPVersion == 4) {
			return
		}
		w := walker{db: db, yield: yield}
		if !v6 {
			w.walk(v4Any)
			return
		}
		aliases, err := db.ipv4Aliases()
		if err != nil {
			yield(Network{}, err)
			return
		}
		for _, p := range complement(v6Any, aliases) {
			// The aliases below p come in order between the parts of the
			// complement: the complement's prefixes are in address order
			// and the aliases fill its holes.
			for len(aliases) > 0 && aliases[0].Addr().Less(p.Addr()) {
				if !w.emit(Network{Location: Location{Network: aliases[0]}, IPv4Alias: true}) {
					return
				}
				aliases = aliases[1:]
			}
			if !w.walk(p) {
				return
			}
		}
		for _, a := range aliases {
			if !w.emit(Network{Location: Location{Network: a}, IPv4Alias: true}) {
				return
			}
		}
	}
}

// walker yields the networks of one family in order, checking the order.
type walker struct {
	db      *DB
	yield   func(Network, error) bool
	last    netip.Addr           // last address of the previous network
	decoded map[uintptr]Location // city records, decoded once per walk
	stopped bool                 // yield returned false, or an error was yielded
}

// walk yields the networks within p (a network holding p whole comes out
// as p). With v6 it includes the networks under aliases of the IPv4 tree
// that ipv4Aliases did not recognise, so that none is missed. It returns
// false when the iteration must stop.
func (w *walker) walk(p netip.Prefix) bool {
	var opts []maxminddb.NetworksOption
	if p.Addr().Is6() {
		opts = append(opts, maxminddb.IncludeAliasedNetworks())
	}
	for res := range w.db.mm.NetworksWithin(p, opts...) {
		if err := res.Err(); err != nil {
			w.fail(fmt.Errorf("geoip database: reading networks: %w", err))
			return false
		}
		n := walkPrefix(res.Prefix(), p.Addr().Is6())
		if n.Bits() < p.Bits() {
			n = p
		}
		loc, err := w.location(res)
		if err != nil {
			w.fail(fmt.Errorf("geoip database: network %s: %w", n, err))
			return false
		}
		loc.Network = n
		if !w.emit(Network{Location: loc}) {
			return false
		}
	}
	return !w.stopped
}

func (w *walker) location(res maxminddb.Result) (Location, error) {
	off := res.Offset()
	if loc, ok := w.db.byOffset[off]; ok {
		return loc, nil
	}
	if loc, ok := w.decoded[off]; ok {
		return loc, nil
	}
	loc, err := w.db.decodeAt(res)
	if err != nil {
		return Location{}, err
	}
	if w.decoded == nil {
		w.decoded = make(map[uintptr]Location)
	}
	w.decoded[off] = loc
	return loc, nil
}

func (w *walker) emit(n Network) bool {
	if w.stopped {
		return false
	}
	p := n.Network
	if w.last.IsValid() && !w.last.Less(p.Addr()) {
		w.fail(fmt.Errorf("geoip database: %w: %s after %s", ErrUnordered, p, w.last))
		return false
	}
	w.last = networkEnd(p)
	if !w.yield(n, nil) {
		w.stopped = true
		return false
	}
	return true
}

func (w *walker) fail(err error) {
	if !w.stopped {
		w.stopped = true
		w.yield(Network{}, err)
	}
}

// ipv4Aliases lists, in address order, the IPv6 networks where the
// database holds or aliases its IPv4 networks. ::/96 is one unless a
// network holds it whole. A candidate is one when the database has no
// network of its own under it and the first network the alias leads to
// is the first IPv4 network, moved under the candidate: then the
// candidate's node is the IPv4 tree. Anything else under a candidate is
// walked like any other IPv6 network.
func (db *DB) ipv4Aliases() ([]netip.Prefix, error) {
	first4, ok4, err := firstNetwork(db.mm.NetworksWithin(v4Any))
	if err != nil {
		return nil, fmt.Errorf("geoip database: reading networks: %w", err)
	}
	var out []netip.Prefix
	if !ok4 || first4.Prefix().Addr().Is4() {
		out = append(out, netip.PrefixFrom(netip.IPv6Unspecified(), 96))
	}
	if !ok4 {
		return out, nil
	}
	for _, c := range ipv4AliasCandidates {
		_, own, err := firstNetwork(db.mm.NetworksWithin(c))
		if err != nil {
			return nil, fmt.Errorf("geoip database: reading networks: %w", err)
		}
		if own {
			continue
		}
		a, ok, err := firstNetwork(db.mm.NetworksWithin(c, maxminddb.IncludeAliasedNetworks()))
		if err != nil {
			return nil, fmt.Errorf("geoip database: reading networks: %w", err)
		}
		if ok && a.Offset() == first4.Offset() && a.Prefix() == under(c, first4.Prefix()) {
			out = append(out, c)
		}
	}
	return out, nil
}

// firstNetwork is the first network of a walk.
func firstNetwork(seq iter.Seq[maxminddb.Result]) (maxminddb.Result, bool, error) {
	for res := range seq {
		return res, true, res.Err()
	}
	return maxminddb.Result{}, false, nil
}

// under is the IPv4 network p placed under the IPv6 prefix c: its 32 bits
// follow c's.
func under(c, p netip.Prefix) netip.Prefix {
	b := c.Masked().Addr().As16()
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	for i := range 32 {
		if v&(1<<(31-i)) != 0 {
			bit := c.Bits() + i
			b[bit/8] |= 1 << (7 - bit%8)
		}
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), c.Bits()+p.Bits())
}

// complement is the CIDR cover of within without holes (disjoint, in
// address order), in address order.
func complement(within netip.Prefix, holes []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	var rec func(p netip.Prefix)
	rec = func(p netip.Prefix) {
		overlaps := false
		for _, h := range holes {
			if h.Bits() <= p.Bits() && h.Contains(p.Addr()) {
				return // p is inside a hole
			}
			if p.Overlaps(h) {
				overlaps = true
			}
		}
		if !overlaps {
			out = append(out, p)
			return
		}
		lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
		b := p.Addr().As16()
		bit := p.Bits()
		b[bit/8] |= 1 << (7 - bit%8)
		rec(lo)
		rec(netip.PrefixFrom(netip.AddrFrom16(b), p.Bits()+1))
	}
	rec(within)
	return out
}

// walkPrefix puts a network from the search tree in the terms of the
// family walked. The tree's IPv4 part comes out in IPv4 form; a network
// holding the whole IPv4 part comes out as ::/n.
func walkPrefix(p netip.Prefix, v6 bool) netip.Prefix {
	a := p.Addr()
	switch {
	case !v6 && !a.Is4():
		return v4Any
	case v6 && a.Is4():
		b := a.As4()
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{12: b[0], 13: b[1], 14: b[2], 15: b[3]}), p.Bits()+96)
	}
	return p
}

// networkEnd is the highest address of p.
func networkEnd(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		if p.Bits() < 32 {
			v |= ^uint32(0) >> p.Bits()
		}
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}
