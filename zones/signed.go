package zones

import (
	"slices"

	"github.com/miekg/dns"
)

// Signatures is what a signed zone adds to its answers (RFC 4035 §3.1).
// The dnssec package provides it; zones only places the records.
type Signatures interface {
	// RRSIGs returns the signatures of one RRset of the zone as a
	// signed answer carries it: nil for RRsets that are not signed (a
	// delegation's NS, glue).
	RRSIGs(rrset []dns.RR) []dns.RR
	// Denial returns the NSEC records, each followed by its signatures,
	// that prove what the zone says about name: its own NSEC when it
	// has one (NODATA, a delegation without DS); for an empty
	// non-terminal the NSEC that covers it; for a name that does not
	// exist the NSEC that covers it and the one that matches or covers
	// the wildcard at its closest encloser.
	Denial(name string) []dns.RR
}

// collectAnswers lists every answer prepare made, once each.
func (z *Zone) collectAnswers() {
	seen := map[*Answer]bool{}
	add := func(a *Answer) {
		if a != nil && !seen[a] {
			seen[a] = true
			z.answers = append(z.answers, a)
			a.idx = int32(len(z.answers))
		}
	}
	add(z.nxdomain)
	add(z.nodata)
	for _, w := range slices.Sorted(mapKeys(z.nodes)) {
		n := z.nodes[w]
		for _, t := range n.byType {
			add(t.ans)
		}
		for _, a := range []*Answer{n.other, n.any, n.ds, n.ref} {
			add(a)
		}
		if n.other != nil {
			for _, al := range n.other.aliases {
				add(al.CNAMEs)
				add(al.NoData)
			}
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// SignedAnswers builds the DNSSEC variant (for queries with the DO bit) of
// every answer of the zone: each RRset of the answer and authority
// sections followed by its signatures, a referral's DS RRset with its
// signatures (or the NSEC that proves there is none), and the denials of
// the names the answer denies. What depends on the query name (the NSEC
// covering a name that does not exist, or the one a wildcard answer
// needs) is not in it: the query path adds it (see Answer.Denies). The
// variants share nothing mutable with z; z stays as it is. The variant
// of answer a is at z.AnswerIndex(a): the query path finds it without
// hashing.
func (z *Zone) SignedAnswers(s Signatures) []*Answer {
	out := make([]*Answer, len(z.answers))
	for i, a := range z.answers {
		out[i] = a.signed(s)
	}
	return out
}

// AnswerIndex is the position of a among z's answers, the index of its
// signed variant in SignedAnswers; -1 when a is not one of z's answers.
// It allocates nothing.
func (z *Zone) AnswerIndex(a *Answer) int {
	if i := int(a.idx) - 1; i >= 0 && i < len(z.answers) && z.answers[i] == a {
		return i
	}
	return -1
}

func (a *Answer) signed(s Signatures) *Answer {
	v := &Answer{Rcode: a.Rcode, Authoritative: a.Authoritative, synth: a.synth, anchor: a.anchor, anchorLen: a.anchorLen}
	added := 0
	withSigs := func(rrs []dns.RR) []dns.RR {
		var out []dns.RR
		for i := 0; i < len(rrs); {
			j := i + 1
			h := rrs[i].Header()
			for j < len(rrs) && rrs[j].Header().Rrtype == h.Rrtype && rrs[j].Header().Name == h.Name {
				j++
			}
			out = append(out, rrs[i:j]...)
			sigs := s.RRSIGs(rrs[i:j])
			out = append(out, sigs...)
			added += len(sigs)
			i = j
		}
		return out
	}
	v.Answer = withSigs(a.Answer)
	v.Ns = withSigs(a.Ns)
	if a.ds != nil {
		v.Ns = append(v.Ns, withSigs(a.ds)...)
		added += len(a.ds)
	}
	seen := map[string]bool{}
	for _, name := range a.proofs {
		for _, rr := range s.Denial(name) {
			key := rr.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			v.Ns = append(v.Ns, rr)
			added++
		}
	}
	v.Extra = a.Extra
	v.required = a.required + added
	return v
}

// Denies says what a signed answer leaves to the query path to prove
// about the query name, because it depends on it: wildcard is true for an
// answer synthesized from a wildcard (the NSEC covering the query name
// proves that it does not exist, RFC 4035 §3.1.3.3); the zone's shared
// NXDOMAIN and NODATA answers (Zone.NXDomain, Zone.NoData) need the
// denial of the query name itself.
func (a *Answer) Denies() (wildcard bool) { return a.synth != "" }

// NameTypes is one name of a zone with the types it holds, as its NSEC
// record lists them (without NSEC and RRSIG).
type NameTypes struct {
	Name  string // lower case, fully qualified
	Types []uint16
}

// Names lists every name of the zone that holds data the zone answers
// with, with its types: names below a delegation (glue) are left out, and
// a delegation holds its NS and DS only. Empty non-terminals hold nothing
// and are not listed. The order is not defined.
func (z *Zone) Names() []NameTypes {
	var out []NameTypes
	for _, n := range z.nodes {
		if len(n.sets) == 0 || (n.under != nil && n.under != n) {
			continue
		}
		nt := NameTypes{Name: n.name}
		for _, st := range n.sets {
			nt.Types = append(nt.Types, st.typ)
		}
		out = append(out, nt)
	}
	return out
}

// RRsets lists every RRset the zone signs: the data of every name it
// answers with, the DS at its delegations; not a delegation's NS, not
// glue (RFC 4035 §2.2). The records must not be modified.
func (z *Zone) RRsets() [][]dns.RR {
	var out [][]dns.RR
	for _, n := range z.nodes {
		if n.under != nil && n.under != n {
			continue
		}
		for _, st := range n.sets {
			if n.cut && st.typ != dns.TypeDS {
				continue
			}
			out = append(out, st.rrs)
		}
	}
	return out
}

// Signed says whether the zone was loaded with keys (LoadOptions.DNSSEC).
func (z *Zone) Signed() bool { return z.signed }
