package zones

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Answer is the response to one kind of question, computed when the zone
// loads and shared by every query that gets it. Its records must not be
// modified.
type Answer struct {
	Rcode         int
	Authoritative bool
	Answer        []dns.RR
	Ns            []dns.RR
	Extra         []dns.RR

	// synth is the wildcard owner that stands for the query name in the
	// answer section ("" when no record is synthesized, RFC 4592 §3.3.1).
	synth string
	// anchor is the longest name that every query name served by this
	// answer ends with: the node itself for exact matches, the wildcard's
	// parent, the delegation, or the apex for NXDOMAIN.
	anchor    string
	anchorLen int // its wire length
	// required is how many leading records (answer, then authority, then
	// additional) must all fit; dropping one of them sets TC.
	required int
	// aliases are the points of the CNAME chain where data from outside
	// the zone file may take over (see Alias), in chain order.
	aliases []Alias
	// proofs are the names whose denial (Signatures.Denial) the signed
	// variant of the answer carries in its authority section: the name of
	// a NODATA answer, the end of a chain that is denied, the names a
	// chain reached through a wildcard, a delegation without DS. ds is a
	// referral's DS RRset, which its signed variant carries instead.
	proofs []string
	ds     []dns.RR

	wire wireCache
	// idx is 1 + the answer's position among its zone's answers
	// (Zone.AnswerIndex), 0 for an answer no zone collected.
	idx int32
}

// Alias is a point where an answer's CNAME chain reaches a name whose
// answer the zone file alone does not settle: a name the zone does not
// hold (the precompiled answer says NXDOMAIN), an empty non-terminal, or
// a name only a wildcard covers. A service, or a name above one, may be
// there; the query path looks at the snapshot and, when it finds one,
// answers with the chain up to Target instead of the precompiled answer.
type Alias struct {
	// Target is the name the chain reaches, in lower-case wire form.
	// Shared, read-only.
	Target []byte
	// CNAMEs is NOERROR, AA, with the chain's CNAME records up to Target
	// and nothing else: the start of an answer that continues at Target
	// (Packed.TargetOff says where Target is, for compression).
	CNAMEs *Answer
	// NoData is the same chain with the zone's SOA in authority: the
	// answer when Target exists but holds no data of the asked type
	// (RFC 2308 §2.2).
	NoData *Answer
}

// Aliases lists the points of the answer's CNAME chain where a service
// may take over, in chain order; nil for most answers. Shared, read-only.
func (a *Answer) Aliases() []Alias { return a.aliases }

// Negative reports whether the answer denies data: NXDOMAIN, or NODATA
// (the SOA in authority, also after a CNAME chain).
func (a *Answer) Negative() bool {
	return a.Rcode == dns.RcodeNameError ||
		(a.Rcode == dns.RcodeSuccess && len(a.Ns) == 1 && a.Ns[0].Header().Rrtype == dns.TypeSOA)
}

// SynthesizedBelow is, for an answer synthesized from a wildcard, the
// wire length of the wildcard's parent (the closest encloser of every name
// it answers); 0 for other answers.
func (a *Answer) SynthesizedBelow() int {
	if a.synth == "" {
		return 0
	}
	return a.anchorLen
}

// AnchorLen is the wire length of the name every query name this answer
// serves ends with: the query name itself for an exact match, the
// wildcard's parent, the delegation point of a referral, the apex for the
// zone's NXDOMAIN and NoData answers. Response rate limiting accounts
// answers to it.
func (a *Answer) AnchorLen() int { return a.anchorLen }

// Records returns copies of the answer's sections as sent for qname
// (presentation form): records synthesized from a wildcard get qname as
// their owner. It allocates; it is for tests, explanations and transfers.
func (a *Answer) Records(qname string) (answer, ns, extra []dns.RR) {
	qname = dns.Fqdn(qname)
	cp := func(rrs []dns.RR, synth bool) []dns.RR {
		out := make([]dns.RR, len(rrs))
		for i, rr := range rrs {
			out[i] = dns.Copy(rr)
			if synth && a.synth != "" && rr.Header().Name == a.synth {
				out[i].Header().Name = qname
			}
		}
		return out
	}
	return cp(a.Answer, true), cp(a.Ns, false), cp(a.Extra, false)
}

// prepare computes every node's answers. It runs once, at load time.
func (z *Zone) prepare() error {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = z.negTTL
	negative := []dns.RR{soa}
	z.nxdomain = &Answer{Rcode: dns.RcodeNameError, Authoritative: true, Ns: negative, anchor: z.origin, required: 1}
	z.nodata = &Answer{Authoritative: true, Ns: negative, anchor: z.origin, required: 1}

	z.apex = z.nodes[z.wire]
	for _, n := range z.nodes {
		cut := z.cutAt(n.name)
		if cut != "" {
			n.under = z.nodes[mustWire(cut)]
		}
		if cut != "" && cut != n.name {
			continue // glue below a delegation: never answered from here
		}
		anchor, synth := n.name, ""
		if strings.HasPrefix(n.name, "*.") {
			anchor, synth = n.name[2:], n.name
		}
		nodata := &Answer{Authoritative: true, Ns: negative, anchor: anchor, synth: synth, required: 1, proofs: []string{n.name}}
		positive := func(rrs []dns.RR) *Answer {
			return &Answer{Authoritative: true, Answer: rrs, anchor: anchor, synth: synth, required: len(rrs)}
		}

		if n.cut {
			n.ref = z.referral(n)
			if ds := n.set(dns.TypeDS); ds != nil {
				n.ds = positive(ds)
			} else {
				n.ds = nodata
			}
			continue
		}

		if cname := n.set(dns.TypeCNAME); cname != nil {
			own := positive(cname)
			n.byType = append(n.byType, typedAnswer{dns.TypeCNAME, own})
			n.any = own
			final, err := z.chainEnd(n)
			if err != nil {
				return err
			}
			aliases := z.aliases(n, anchor, synth, negative)
			if final != nil {
				for _, s := range final.sets {
					if s.typ != dns.TypeCNAME {
						a := z.chain(n, s.typ, anchor, synth, negative)
						a.aliases = aliases
						n.byType = append(n.byType, typedAnswer{s.typ, a})
					}
				}
			}
			n.other = z.chain(n, 0, anchor, synth, negative)
			n.other.aliases = aliases
			continue
		}

		for _, s := range n.sets {
			n.byType = append(n.byType, typedAnswer{s.typ, positive(s.rrs)})
		}
		n.other = nodata
		n.any = nodata
		if len(n.byType) > 0 {
			// RFC 8482 §4.1: answer ANY with one RRset, not all of them.
			n.any = n.byType[0].ans
		}
	}

	z.collectAnswers()
	z.nxdomain.anchorLen = wireLen(z.nxdomain.anchor)
	z.nodata.anchorLen = z.nxdomain.anchorLen
	for _, n := range z.nodes {
		for _, a := range []*Answer{n.other, n.any, n.ds, n.ref} {
			if a != nil {
				a.anchorLen = wireLen(a.anchor)
			}
		}
		for _, t := range n.byType {
			t.ans.anchorLen = wireLen(t.ans.anchor)
		}
		if n.other != nil {
			for _, al := range n.other.aliases {
				al.CNAMEs.anchorLen = wireLen(al.CNAMEs.anchor)
				al.NoData.anchorLen = al.CNAMEs.anchorLen
			}
		}
	}
	return nil
}

// referral builds the answer for names at or below the delegation n.
func (z *Zone) referral(n *node) *Answer {
	ns := n.set(dns.TypeNS)
	a := &Answer{Ns: ns, anchor: n.name}
	var sibling []dns.RR
	for _, rr := range ns {
		target := canonical(rr.(*dns.NS).Ns)
		if !isSubdomain(target, z.origin) {
			continue
		}
		t := z.nodes[mustWire(target)]
		if t == nil {
			continue
		}
		addrs := append(append([]dns.RR(nil), t.set(dns.TypeA)...), t.set(dns.TypeAAAA)...)
		if isSubdomain(target, n.name) {
			a.Extra = append(a.Extra, addrs...) // in-domain glue: required (RFC 9471)
		} else {
			sibling = append(sibling, addrs...)
		}
	}
	a.required = len(ns) + len(a.Extra)
	a.Extra = append(a.Extra, sibling...)
	if a.ds = n.set(dns.TypeDS); a.ds == nil {
		a.proofs = []string{n.name}
	}
	return a
}

// target resolves a CNAME target inside the zone for chasing: the node
// holding its data and the name to present it under.
func (z *Zone) target(name string) (*node, match) {
	w, err := WireName(name)
	if err != nil {
		return nil, matchNone
	}
	return z.find([]byte(w))
}

const maxChain = 16

// chainEnd follows n's CNAME chain inside the zone and returns the last
// node reached, or nil when the chain leaves the zone's data.
func (z *Zone) chainEnd(n *node) (*node, error) {
	seen := map[*node]bool{n: true}
	cur := n
	for range maxChain {
		c := cur.set(dns.TypeCNAME)
		if c == nil {
			return cur, nil
		}
		target := canonical(c[0].(*dns.CNAME).Target)
		if !isSubdomain(target, z.origin) {
			return nil, nil
		}
		next, m := z.target(target)
		if m != matchExact && m != matchWildcard {
			return nil, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("CNAME loop through %s", target)
		}
		seen[next] = true
		cur = next
	}
	return nil, fmt.Errorf("CNAME chain from %s is longer than %d", n.name, maxChain)
}

// chain builds the answer for qtype at the CNAME node n, following the
// chain inside the zone (RFC 1034 §4.3.2). qtype 0 stands for any type the
// chain's end does not hold. The rcode is that of the last name (RFC 6604).
func (z *Zone) chain(n *node, qtype uint16, anchor, synth string, negative []dns.RR) *Answer {
	a := &Answer{Authoritative: true, anchor: anchor, synth: synth}
	cur, owner := n, n.name
	for range maxChain {
		if c := cur.set(dns.TypeCNAME); c != nil {
			a.Answer = append(a.Answer, withOwner(c, owner)...)
			target := canonical(c[0].(*dns.CNAME).Target)
			if !isSubdomain(target, z.origin) {
				break // out of zone: the resolver continues
			}
			next, m := z.target(target)
			switch m {
			case matchNone:
				a.Rcode, a.Ns = dns.RcodeNameError, negative
				a.proofs = append(a.proofs, target)
			case matchCut:
				// The resolver follows the delegation.
			default:
				if m == matchWildcard {
					a.proofs = append(a.proofs, target) // the name the wildcard stands for does not exist
				}
				cur, owner = next, target
				continue
			}
			break
		}
		if rrs := cur.set(qtype); rrs != nil && qtype != 0 {
			a.Answer = append(a.Answer, withOwner(rrs, owner)...)
		} else {
			a.Ns = negative
			if !slices.Contains(a.proofs, owner) {
				a.proofs = append(a.proofs, owner)
			}
		}
		break
	}
	a.required = len(a.Answer) + len(a.Ns)
	return a
}

// aliases finds the points of n's CNAME chain where a service may take
// over (see Alias). chainEnd has checked the chain for loops.
func (z *Zone) aliases(n *node, anchor, synth string, negative []dns.RR) []Alias {
	var out []Alias
	var recs []dns.RR
	var wild []string // targets reached through a wildcard so far
	cur, owner := n, n.name
	for range maxChain {
		c := cur.set(dns.TypeCNAME)
		if c == nil {
			break
		}
		recs = append(recs, withOwner(c, owner)...)
		target := canonical(c[0].(*dns.CNAME).Target)
		if !isSubdomain(target, z.origin) {
			break
		}
		next, m := z.target(target)
		if m == matchNone || m == matchWildcard || (m == matchExact && len(next.sets) == 0) {
			chain := slices.Clip(slices.Clone(recs))
			out = append(out, Alias{
				Target: []byte(mustWire(target)),
				CNAMEs: &Answer{Authoritative: true, Answer: chain, anchor: anchor, synth: synth, required: len(chain), proofs: slices.Clone(wild)},
				NoData: &Answer{Authoritative: true, Answer: chain, Ns: negative, anchor: anchor, synth: synth, required: len(chain) + 1,
					proofs: append(slices.Clone(wild), target)},
			})
		}
		if m != matchExact && m != matchWildcard {
			break
		}
		if m == matchWildcard {
			wild = append(wild, target)
		}
		cur, owner = next, target
	}
	return out
}

// withOwner returns rrs under another owner name (for data reached through
// a wildcard); rrs itself when the name is already right.
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	if len(rrs) == 0 || rrs[0].Header().Name == owner {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
	}
	return out
}
