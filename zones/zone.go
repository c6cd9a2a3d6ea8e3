package zones

import (
	"fmt"

	"github.com/miekg/dns"
)

// Zone is one loaded zone. It is immutable once built and safe for any
// number of concurrent lookups.
type Zone struct {
	origin  string // lower-case presentation form, fully qualified
	wire    string // lower-case wire form
	soa     *dns.SOA
	negTTL  uint32
	nodes   map[string]*node // by lower-case wire name
	apex    *node
	hasCuts bool
	labels  int      // labels of the apex
	records []dns.RR // SOA first, for zone transfers

	nxdomain *Answer
	nodata   *Answer // for any name in the zone: names answered elsewhere (services)
	answers  []*Answer
	signed   bool // loaded with keys: answers get signed variants

	// spec is the configuration entry LoadSet loaded the zone from (zero
	// for zones built otherwise): a reload finds the previous version of
	// a zone configured without origin by it.
	spec FileSpec
}

// node is one owner name. Empty non-terminals are nodes without sets.
type node struct {
	name string // lower-case presentation form
	wire string
	sets []rrSet // sorted by type
	cut  bool    // holds NS and is not the apex
	// under is the topmost delegation at or above the node, or nil: a
	// name found in the map is answered with its referral at once.
	under *node

	// Precomputed answers, see prepare.
	byType []typedAnswer
	other  *Answer // any type not in byType
	any    *Answer
	ds     *Answer // at a cut: DS is answered by the parent side
	ref    *Answer // at a cut: the referral
	wild   *node   // the child "*", if there is one
}

type rrSet struct {
	typ  uint16
	rrs  []dns.RR
	file string
	line int
}

type typedAnswer struct {
	typ uint16
	ans *Answer
}

// Origin is the zone's apex, lower case and fully qualified.
func (z *Zone) Origin() string { return z.origin }

// SOA is the zone's SOA record. It must not be modified.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// NegativeTTL is the TTL of negative answers (RFC 2308 §5).
func (z *Zone) NegativeTTL() uint32 { return z.negTTL }

// Records lists every record of the zone, SOA first, for zone transfers.
// The records must not be modified.
func (z *Zone) Records() []dns.RR { return z.records }

func (z *Zone) ensure(name string) *node {
	w := mustWire(name)
	if n := z.nodes[w]; n != nil {
		return n
	}
	n := &node{name: name, wire: w}
	z.nodes[w] = n
	if name != z.origin {
		parent := name[len(dns.SplitDomainName(name)[0])+1:]
		if parent == "" {
			parent = "."
		}
		p := z.ensure(parent)
		if name[0] == '*' && name[1] == '.' {
			p.wild = n
		}
	}
	return n
}

// set returns the records of one type at the node, or nil.
func (n *node) set(typ uint16) []dns.RR {
	for _, s := range n.sets {
		if s.typ == typ {
			return s.rrs
		}
	}
	return nil
}

// cutAt returns the topmost delegation at or above name, or "".
func (z *Zone) cutAt(name string) string {
	if !z.hasCuts {
		return ""
	}
	labels := dns.SplitDomainName(name)
	apexLabels := dns.CountLabel(z.origin)
	for i := len(labels) - apexLabels - 1; i >= 0; i-- {
		anc := dns.Fqdn(joinLabels(labels[i:]))
		if n := z.nodes[mustWire(anc)]; n != nil && n.cut {
			return anc
		}
	}
	return ""
}

func joinLabels(l []string) string {
	s := ""
	for i, x := range l {
		if i > 0 {
			s += "."
		}
		s += x
	}
	return s
}

type match uint8

const (
	matchNone     match = iota // NXDOMAIN
	matchExact                 // the name itself
	matchWildcard              // synthesized from the returned wildcard node
	matchCut                   // at or below the returned delegation
)

// find locates qname (lower-case wire form, inside the zone). It
// allocates nothing.
func (z *Zone) find(qname []byte) (*node, match) {
	// Most queries name a node that exists: one map lookup answers them.
	if n := z.nodes[string(qname)]; n != nil {
		if n.under != nil {
			return n.under, matchCut
		}
		return n, matchExact
	}
	var starts [128]uint8
	nl := labelStarts(qname, &starts)
	// Walk down from the apex: the first missing node ends the search,
	// since every ancestor of every name has a node. The name itself is
	// missing (above), so the walk stops one label short of it.
	closest := z.apex
	for i := nl - z.labels - 1; i >= 1; i-- {
		n := z.nodes[string(qname[starts[i]:])]
		if n == nil {
			break
		}
		if n.cut {
			return n, matchCut
		}
		closest = n
	}
	if w := closest.wild; w != nil {
		return w, matchWildcard
	}
	return nil, matchNone
}

// Lookup answers qname (lower-case wire form, inside the zone) and qtype.
// It allocates nothing and returns a shared answer that must not be
// modified. Callers handle AXFR/IXFR and meta types before asking.
func (z *Zone) Lookup(qname []byte, qtype uint16) *Answer {
	n, m := z.find(qname)
	switch m {
	case matchExact, matchWildcard:
		return n.answer(qtype)
	case matchCut:
		if qtype == dns.TypeDS && len(qname) == len(n.wire) {
			return n.ds
		}
		return n.ref
	}
	return z.nxdomain
}

func (n *node) answer(qtype uint16) *Answer {
	if qtype == dns.TypeANY {
		return n.any
	}
	for _, t := range n.byType {
		if t.typ == qtype {
			return t.ans
		}
	}
	return n.other
}

// IsApex reports whether the lower-case wire name is the zone's apex.
func (z *Zone) IsApex(wire []byte) bool { return string(wire) == z.wire }

// NoData is a NODATA answer (the SOA in authority) valid for any name in
// the zone, for names whose data does not come from the zone file.
func (z *Zone) NoData() *Answer { return z.nodata }

// NXDomain is the zone's NXDOMAIN answer, valid for any name in it.
func (z *Zone) NXDomain() *Answer { return z.nxdomain }

// CheckDynamicName says why a name (lower-case wire form, inside the zone)
// cannot be answered from outside the zone file, e.g. by a service: it
// has records of its own, or it lies at or below a delegation. nil: it can.
func (z *Zone) CheckDynamicName(wire []byte) error {
	n, m := z.find(wire)
	switch {
	case m == matchCut:
		return fmt.Errorf("it is at or below the delegation %s in zone %s", n.name, z.origin)
	case m == matchExact && len(n.sets) > 0:
		return fmt.Errorf("it has records in zone %s; a name is either in the zone file or a service", z.origin)
	case m == matchExact && string(wire) == z.wire:
		return fmt.Errorf("it is the apex of zone %s", z.origin)
	}
	return nil
}
