package zones

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/miekg/dns"
)

// Set is the zones one server answers for. It is immutable; a reload
// builds a new Set.
type Set struct {
	byWire map[string]int32 // position in list, by apex wire name
	list   []*Zone
	// byLen holds, per wire length, 1 + the position of the one zone
	// whose apex has it, severalZones when more do, or 0: Find hashes a
	// suffix of the query name only when a zone apex is as long.
	byLen [256]int32
}

// severalZones marks a length shared by several apexes in Set.byLen.
const severalZones = -1

// NewSet builds a set; two zones with the same apex are an error.
func NewSet(zs ...*Zone) (*Set, error) {
	s := &Set{byWire: make(map[string]int32, len(zs))}
	for _, z := range zs {
		if _, dup := s.byWire[z.wire]; dup {
			return nil, fmt.Errorf("zone %s is configured twice", z.origin)
		}
		s.byWire[z.wire] = 0
		s.list = append(s.list, z)
	}
	slices.SortFunc(s.list, func(a, b *Zone) int { return compareNames(a.origin, b.origin) })
	for i, z := range s.list {
		s.byWire[z.wire] = int32(i)
		if s.byLen[len(z.wire)] == 0 {
			s.byLen[len(z.wire)] = int32(i) + 1
		} else {
			s.byLen[len(z.wire)] = severalZones
		}
	}
	return s, nil
}

// With is s with z in place of the zone of the same apex (or added).
func (s *Set) With(z *Zone) (*Set, error) {
	zs := make([]*Zone, 0, len(s.list)+1)
	for _, o := range s.list {
		if o.wire != z.wire {
			zs = append(zs, o)
		}
	}
	return NewSet(append(zs, z)...)
}

// Zones lists the zones in canonical order.
func (s *Set) Zones() []*Zone { return s.list }

// loadedFrom returns the zone LoadSet loaded from spec, or nil: the zone
// with the spec's origin, or for a spec without one, the zone loaded from
// the same entry.
func (s *Set) loadedFrom(spec FileSpec) *Zone {
	if spec.Origin != "" {
		return s.Zone(spec.Origin)
	}
	for _, z := range s.list {
		if z.spec.Origin == spec.Origin && z.spec.File == spec.File {
			return z
		}
	}
	return nil
}

// Zone returns the zone with this apex (presentation form), or nil.
func (s *Set) Zone(origin string) *Zone {
	w, err := WireName(origin)
	if err != nil {
		return nil
	}
	if i, ok := s.byWire[w]; ok {
		return s.list[i]
	}
	return nil
}

// Find returns the most specific zone that contains qname (lower-case wire
// form), or nil. It allocates nothing.
func (s *Set) Find(qname []byte) *Zone {
	if i := s.FindIndex(qname); i >= 0 {
		return s.list[i]
	}
	return nil
}

// FindIndex is Find's zone as its position in Zones, -1 for none: what
// is kept per zone of a set goes in a slice, found without hashing. It
// allocates nothing.
func (s *Set) FindIndex(qname []byte) int {
	if s == nil {
		return -1
	}
	for off := 0; off < len(qname); off += int(qname[off]) + 1 {
		rest := qname[off:]
		if len(rest) >= len(s.byLen) {
			continue // longer than any wire name
		}
		switch i := s.byLen[len(rest)]; i {
		case 0:
		case severalZones:
			if i, ok := s.byWire[string(rest)]; ok {
				return int(i)
			}
		default:
			if string(rest) == s.list[i-1].wire {
				return int(i - 1)
			}
		}
		if qname[off] == 0 {
			break
		}
	}
	return -1
}

// Result is an answer as a client sees it.
type Result struct {
	Zone          *Zone // nil: not ours (REFUSED)
	Rcode         int
	Authoritative bool
	Answer        []dns.RR
	Ns            []dns.RR
	Extra         []dns.RR
}

// Resolve answers a question given in presentation form. It allocates; the
// query path uses Find and Zone.Lookup instead.
func (s *Set) Resolve(qname string, qtype uint16) Result {
	w, err := WireName(qname)
	if err != nil {
		return Result{Rcode: dns.RcodeFormatError}
	}
	z := s.Find([]byte(w))
	if z == nil {
		return Result{Rcode: dns.RcodeRefused}
	}
	a := z.Lookup([]byte(w), qtype)
	an, ns, ex := a.Records(qname)
	return Result{Zone: z, Rcode: a.Rcode, Authoritative: a.Authoritative, Answer: an, Ns: ns, Extra: ex}
}

// compareNames orders names canonically (RFC 4034 §6.1) well enough for
// listing: by labels from the root.
func compareNames(a, b string) int {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if la[i] != lb[j] {
			if la[i] < lb[j] {
				return -1
			}
			return 1
		}
	}
	return len(la) - len(lb)
}

// FileSpec names one zone file to serve.
type FileSpec struct {
	Origin string // apex; empty: the SOA owner
	File   string // path; relative paths are inside Dir
	// DNSSEC, when set, are the DNSSEC records of the zone's apex: the
	// zone is signed (see LoadOptions.DNSSEC).
	DNSSEC []dns.RR
}

// LoadSet loads every zone file. Dir confines $INCLUDE and anchors
// relative paths. With prev (a reload), a zone whose file fails keeps its
// previous version serving and the error is returned beside the new set;
// without prev (start-up) any failure returns a nil set.
//
// A zone configured without origin takes its apex from its SOA owner. A
// reload never moves it: a new version whose SOA owner differs is refused
// like a file that fails, since serving it would silently drop every name
// of the previous apex. A restart takes the new apex.
func LoadSet(specs []FileSpec, dir string, prev *Set) (*Set, error) {
	var zs []*Zone
	var errs []error
	for _, spec := range specs {
		path := spec.File
		if dir != "" && !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		var old *Zone
		if prev != nil {
			old = prev.loadedFrom(spec)
		}
		z, err := LoadFile(path, LoadOptions{Origin: spec.Origin, Dir: dir, DNSSEC: spec.DNSSEC})
		if err == nil && old != nil && z.origin != old.origin {
			z, err = nil, &Error{File: path, Msg: fmt.Sprintf("the SOA owner changed from %s to %s; the zone is configured without origin and a reload does not move its apex (a restart does)",
				old.origin, z.origin)}
		}
		if err != nil {
			if old != nil {
				err = fmt.Errorf("%w; zone %s keeps serving serial %d", err, old.origin, old.soa.Serial)
				zs = append(zs, old)
			}
			errs = append(errs, err)
			continue
		}
		z.spec = spec
		zs = append(zs, z)
	}
	err := errors.Join(errs...)
	if err != nil && prev == nil {
		return nil, err
	}
	set, serr := NewSet(zs...)
	if serr != nil {
		return nil, errors.Join(err, serr)
	}
	return set, err
}
