package zones

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Error is a zone file that cannot be served, with the place that says why.
type Error struct {
	File string
	Line int // 0 when the problem is not on one line (e.g. a missing SOA)
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadOptions tune how a zone file is read.
type LoadOptions struct {
	// Origin is the zone's apex. Empty means the owner of the SOA record,
	// which then has to be written as an absolute name.
	Origin string
	// Dir confines $INCLUDE: included files are opened inside it and never
	// outside (no "..", no absolute paths, no symlinks leading out). Empty
	// means the directory of the zone file.
	Dir string
	// MaxRecords bounds the zone's size; 0 means 10 million.
	MaxRecords int
	// DNSSEC, when set, makes the zone a signed one: these records (the
	// DNSKEY RRset, and the CDS and CDNSKEY records while the zone asks
	// its parent for a DS) are put at the apex, their owner names
	// replaced by it, and the file may hold no DNSSEC records of its own
	// (DNSKEY, CDS, CDNSKEY, RRSIG, NSEC, NSEC3, NSEC3PARAM): the server
	// signs the zone and makes its NSEC chain.
	DNSSEC []dns.RR
}

// LoadFile reads and validates one zone file.
func LoadFile(path string, opts LoadOptions) (*Zone, error) {
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Dir(path)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("zone directory: %v", err)}
	}
	defer root.Close()

	// Inside the root the file is named relative to it, so that $INCLUDE
	// resolves relative paths against the including file, as BIND does.
	absDir, err1 := filepath.Abs(dir)
	absPath, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return nil, &Error{File: path, Msg: "cannot resolve path"}
	}
	rel, err := filepath.Rel(absDir, absPath)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	if !filepath.IsLocal(rel) {
		return nil, &Error{File: path, Msg: fmt.Sprintf("zone file is outside the zone directory %s", dir)}
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	defer f.Close()
	return parse(f, filepath.ToSlash(rel), path, root.FS(), opts)
}

// Parse reads a zone from r. $INCLUDE is refused, since there is no
// directory to confine it to.
func Parse(r io.Reader, filename string, opts LoadOptions) (*Zone, error) {
	return parse(r, filename, filename, nil, opts)
}

var parseErrLine = regexp.MustCompile(`^(?:.*?: )?dns: (.*) at line: (\d+):\d+$`)

type sourced struct {
	rr   dns.RR
	file string
	line int
}

func parse(r io.Reader, relName, displayName string, fsys fs.FS, opts LoadOptions) (*Zone, error) {
	origin := "."
	if opts.Origin != "" {
		if _, ok := dns.IsDomainName(opts.Origin); !ok {
			return nil, &Error{File: displayName, Msg: fmt.Sprintf("bad origin %q", opts.Origin)}
		}
		origin = canonical(opts.Origin)
	}
	maxRecords := opts.MaxRecords
	if maxRecords <= 0 {
		maxRecords = 10_000_000
	}

	t := &lineTracker{}
	top := t.reader(relName, r, nil)
	zp := dns.NewZoneParser(top, origin, relName)
	if fsys != nil {
		zp.SetIncludeAllowed(true)
		zp.SetIncludeFS(trackingFS{fsys: fsys, t: t})
	}
	display := func(file string) string {
		if file == relName {
			return displayName
		}
		return file
	}

	var recs []sourced
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		file, line := t.recordEnded()
		recs = append(recs, sourced{rr: rr, file: display(file), line: line})
		if len(recs) > maxRecords {
			return nil, &Error{File: display(file), Line: line, Msg: fmt.Sprintf("more than %d records", maxRecords)}
		}
	}
	if err := zp.Err(); err != nil {
		e := &Error{File: displayName, Msg: err.Error()}
		if t.current != nil {
			e.File, e.Line = display(t.current.name), t.current.lastLine
		}
		var pe *dns.ParseError
		if errors.As(err, &pe) {
			if m := parseErrLine.FindStringSubmatch(err.Error()); m != nil {
				e.Msg = m[1]
				e.Line, _ = strconv.Atoi(m[2])
			}
		}
		return nil, e
	}
	if opts.Origin == "" {
		for _, s := range recs {
			if s.rr.Header().Rrtype == dns.TypeSOA {
				origin = canonical(s.rr.Header().Name)
				break
			}
		}
		if origin == "." {
			return nil, &Error{File: displayName, Msg: "no SOA record, and no origin given"}
		}
	}
	if opts.DNSSEC != nil {
		for _, s := range recs {
			if t := s.rr.Header().Rrtype; isDNSSEC(t) {
				return nil, &Error{File: s.file, Line: s.line, Msg: fmt.Sprintf("%s record in a zone the server signs (its keys come from the dnssec: section, its signatures and NSEC chain from the server)", dns.TypeToString[t])}
			}
		}
		recs = append(recs, apexRecords(origin, displayName, opts.DNSSEC)...)
	}
	z, err := build(origin, displayName, recs)
	if z != nil {
		z.signed = opts.DNSSEC != nil
	}
	return z, err
}

// isDNSSEC says whether records of type t are a signed zone's server's
// to make, never its file's.
func isDNSSEC(t uint16) bool {
	switch t {
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM:
		return true
	}
	return false
}

// apexRecords are copies of rrs owned by origin.
func apexRecords(origin, file string, rrs []dns.RR) []sourced {
	out := make([]sourced, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = origin
		out[i] = sourced{rr: c, file: file}
	}
	return out
}

// WithDNSSEC is z, a signed zone, with other DNSSEC records at its apex
// (see LoadOptions.DNSSEC): what a key rollover changes. z stays as it
// is.
func (z *Zone) WithDNSSEC(apex []dns.RR) (*Zone, error) {
	var recs []sourced
	for _, rr := range z.records {
		if isDNSSEC(rr.Header().Rrtype) {
			continue
		}
		recs = append(recs, sourced{rr: dns.Copy(rr), file: z.spec.File})
	}
	recs = append(recs, apexRecords(z.origin, z.spec.File, apex)...)
	nz, err := build(z.origin, z.spec.File, recs)
	if err != nil {
		return nil, err
	}
	nz.signed = true
	nz.spec = z.spec
	return nz, nil
}

// build validates the records and assembles the zone.
func build(origin, file string, recs []sourced) (*Zone, error) {
	z := &Zone{origin: origin, wire: mustWire(origin), labels: dns.CountLabel(origin), nodes: make(map[string]*node)}
	z.ensure(origin)
	errAt := func(s sourced, format string, args ...any) error {
		return &Error{File: s.file, Line: s.line, Msg: fmt.Sprintf(format, args...)}
	}

	type key struct {
		name string
		typ  uint16
	}
	sets := make(map[key][]sourced)
	var order []key
	var soa *sourced
	for i := range recs {
		s := recs[i]
		h := s.rr.Header()
		if h.Class != dns.ClassINET {
			return nil, errAt(s, "class %s is not served (only IN)", dns.ClassToString[h.Class])
		}
		h.Name = canonical(h.Name)
		if !isSubdomain(h.Name, origin) {
			return nil, errAt(s, "%s is outside the zone %s", h.Name, origin)
		}
		switch h.Rrtype {
		case dns.TypeSOA:
			if h.Name != origin {
				return nil, errAt(s, "SOA for %s is not at the zone apex %s", h.Name, origin)
			}
			if soa != nil {
				return nil, errAt(s, "second SOA record (the first is on line %d)", soa.line)
			}
			soa = &recs[i]
		case dns.TypeDNAME:
			return nil, errAt(s, "DNAME records are not supported")
		case dns.TypeNS:
			if strings.HasPrefix(h.Name, "*.") {
				return nil, errAt(s, "NS records at a wildcard name (%s) are not allowed", h.Name)
			}
		case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR, dns.TypeANY:
			return nil, errAt(s, "%s is not a record type that can be stored in a zone", dns.TypeToString[h.Rrtype])
		}
		if slices.Contains(dns.SplitDomainName(h.Name)[1:], "*") {
			// RFC 4592 §2.1.1: only a leftmost "*" makes a wildcard; a
			// "*" label deeper down is a literal that invites confusion.
			return nil, errAt(s, "%q has a \"*\" label that is not the leftmost", h.Name)
		}
		k := key{h.Name, h.Rrtype}
		dup := false
		for _, o := range sets[k] {
			if dns.IsDuplicate(o.rr, s.rr) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if len(sets[k]) == 0 {
			order = append(order, k)
		}
		sets[k] = append(sets[k], s)
	}
	if soa == nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("no SOA record at the zone apex %s", origin)}
	}
	if len(sets[key{origin, dns.TypeNS}]) == 0 {
		return nil, &Error{File: file, Line: soa.line, Msg: fmt.Sprintf("no NS records at the zone apex %s", origin)}
	}

	// Nodes, with an empty non-terminal for every missing ancestor.
	for _, k := range order {
		rrset := sets[k]
		n := z.ensure(k.name)
		// RFC 2181 §5.2: one TTL per RRset; serve the lowest.
		ttl := rrset[0].rr.Header().Ttl
		for _, s := range rrset[1:] {
			ttl = min(ttl, s.rr.Header().Ttl)
		}
		rrs := make([]dns.RR, len(rrset))
		for i, s := range rrset {
			s.rr.Header().Ttl = ttl
			rrs[i] = s.rr
		}
		n.sets = append(n.sets, rrSet{typ: k.typ, rrs: rrs, line: rrset[0].line, file: rrset[0].file})
	}
	for _, n := range z.nodes {
		slices.SortFunc(n.sets, func(a, b rrSet) int { return int(a.typ) - int(b.typ) })
	}

	// Per-node rules.
	for _, k := range order {
		n := z.nodes[mustWire(k.name)]
		s := sets[k][0]
		switch k.typ {
		case dns.TypeCNAME:
			if len(sets[k]) > 1 {
				return nil, errAt(sets[k][1], "more than one CNAME at %s", k.name)
			}
			if k.name == origin {
				return nil, errAt(s, "CNAME at the zone apex %s", origin)
			}
			for _, other := range n.sets {
				if other.typ != dns.TypeCNAME && other.typ != dns.TypeRRSIG && other.typ != dns.TypeNSEC {
					return nil, errAt(s, "CNAME at %s beside other data (%s on line %d)", k.name, dns.TypeToString[other.typ], other.line)
				}
			}
		case dns.TypeNS:
			if k.name != origin {
				n.cut = true
				z.hasCuts = true
			}
		}
	}

	// Data at or below a delegation is not ours, except the NS and DS at
	// the cut itself and addresses (glue).
	for _, k := range order {
		cut := z.cutAt(k.name)
		if cut == "" || (cut == k.name && (k.typ == dns.TypeNS || k.typ == dns.TypeDS)) {
			if k.typ == dns.TypeDS && cut != k.name {
				return nil, errAt(sets[k][0], "DS record at %s, which is not a delegation", k.name)
			}
			continue
		}
		if k.typ != dns.TypeA && k.typ != dns.TypeAAAA {
			return nil, errAt(sets[k][0], "%s %s is below the delegation at %s (only glue addresses may be)", k.name, dns.TypeToString[k.typ], cut)
		}
	}

	// In-zone name servers need addresses (RFC 9471): a delegation needs
	// glue for targets below it, and the zone's own data needs addresses for
	// targets outside any delegation. Targets inside some other delegation
	// are that zone's business.
	for _, k := range order {
		if k.typ != dns.TypeNS {
			continue
		}
		for _, s := range sets[k] {
			target := canonical(s.rr.(*dns.NS).Ns)
			if !isSubdomain(target, origin) {
				continue
			}
			if c := z.cutAt(target); c != "" && !(k.name != origin && isSubdomain(target, k.name)) {
				continue
			}
			t := z.nodes[mustWire(target)]
			if t == nil || (t.set(dns.TypeA) == nil && t.set(dns.TypeAAAA) == nil) {
				return nil, errAt(s, "name server %s of %s is inside the zone but has no A or AAAA record (glue)", target, k.name)
			}
		}
	}

	z.soa = soa.rr.(*dns.SOA)
	z.negTTL = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	z.records = append(z.records, z.soa)
	for _, k := range order {
		if k.typ != dns.TypeSOA {
			for _, s := range sets[k] {
				z.records = append(z.records, s.rr)
			}
		}
	}
	if err := z.prepare(); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	return z, nil
}
