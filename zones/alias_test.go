package zones

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestAliases: chains that end at a name the zone file does not settle
// expose it, with the chain up to it, ready to be continued on the wire.
func TestAliases(t *testing.T) {
	set := loadTestSet(t)
	cases := []struct {
		name    string
		qname   string
		qtype   uint16
		targets []string // presentation form
		chains  []int    // CNAME records up to each target
	}{
		{"dangling", "dangling.example.org.", dns.TypeA, []string{"nothere.example.org."}, []int{1}},
		{"dangling, any other type", "dangling.example.org.", dns.TypeTXT, []string{"nothere.example.org."}, []int{1}},
		{"two CNAMEs, then dangling", "twice.example.org.", dns.TypeAAAA, []string{"nothere.example.org."}, []int{2}},
		{"to an empty non-terminal", "toent.example.org.", dns.TypeA, []string{"b.ent.example.org."}, []int{1}},
		{"to a wildcard", "towild.example.org.", dns.TypeA, []string{"foo.wild.example.org."}, []int{1}},
		{"to a wildcard, type it lacks", "towild.example.org.", dns.TypeMX, []string{"foo.wild.example.org."}, []int{1}},
		{"from a wildcard", "x.wc.example.org.", dns.TypeA, nil, nil},
		{"from a wildcard, three CNAMEs, dangling", "a.long.name.wdang.example.org.", dns.TypeA, []string{"nothere.example.org."}, []int{3}},
		{"to data", "chain.example.org.", dns.TypeA, nil, nil},
		{"out of zone", "ext.example.org.", dns.TypeA, nil, nil},
		{"the CNAME itself", "dangling.example.org.", dns.TypeCNAME, nil, nil},
		{"ANY", "dangling.example.org.", dns.TypeANY, nil, nil},
		{"no chain", "nothere.example.org.", dns.TypeA, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			qname := mixCase(tc.qname)
			w, _ := WireName(qname)
			z := set.Find([]byte(w))
			a := z.Lookup([]byte(w), tc.qtype)
			var got []string
			for _, al := range a.Aliases() {
				name, _, err := dns.UnpackDomainName(al.Target, 0)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, name)
			}
			if !slices.Equal(got, tc.targets) {
				t.Fatalf("alias targets %v, want %v", got, tc.targets)
			}
			for i, al := range a.Aliases() {
				an, ns, _ := al.CNAMEs.Records(qname)
				if len(an) != tc.chains[i] || len(ns) != 0 || al.CNAMEs.Rcode != dns.RcodeSuccess || !al.CNAMEs.Authoritative {
					t.Fatalf("CNAMEs answer: %v %v", an, ns)
				}
				if last := an[len(an)-1].(*dns.CNAME); !strings.EqualFold(last.Target, tc.targets[i]) {
					t.Fatalf("chain ends at %s, want %s", last.Target, tc.targets[i])
				}
				an2, ns2, _ := al.NoData.Records(qname)
				if len(an2) != len(an) || len(ns2) != 1 || ns2[0].Header().Rrtype != dns.TypeSOA || al.NoData.Rcode != dns.RcodeSuccess || !al.NoData.Negative() {
					t.Fatalf("NoData answer: %v %v", an2, ns2)
				}
				checkTargetOff(t, qname, tc.qtype, al.CNAMEs, tc.targets[i])
			}
		})
	}
}

// checkTargetOff continues a compiled chain with an A record whose owner
// is a compression pointer to TargetOff: it must decode as the target.
func checkTargetOff(t *testing.T, qname string, qtype uint16, a *Answer, target string) {
	t.Helper()
	for _, p := range []*Packed{a.Packed(wireLen(qname)), mustPackedFor(t, a, qname)} {
		if p == nil || p.TargetOff == 0 {
			t.Fatalf("no target offset: %+v", p)
		}
		counts := p.sections
		m := decode(t, qname, qtype, p, counts)
		if len(m.Answer) != int(counts[0]) {
			t.Fatalf("decoded %d records", len(m.Answer))
		}
		// header, question, body and the record, as the query path
		// writes them
		msg := []byte{0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0}
		var q [MaxNameLen]byte
		n, _ := dns.PackDomainName(qname, q[:], 0, nil, false)
		msg = append(msg, q[:n]...)
		msg = append(msg, byte(qtype>>8), byte(qtype), 0, 1)
		msg = append(msg, p.Body...)
		msg = append(msg, 0xC0|byte(p.TargetOff>>8), byte(p.TargetOff), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99)
		binary.BigEndian.PutUint16(msg[6:], counts[0]+1)
		var out dns.Msg
		if err := out.Unpack(msg); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		last := out.Answer[len(out.Answer)-1]
		if !strings.EqualFold(last.Header().Name, target) || last.(*dns.A).A.String() != "192.0.2.99" {
			t.Fatalf("appended record %v, want owner %s", last, target)
		}
	}
}

func mustPackedFor(t *testing.T, a *Answer, qname string) *Packed {
	t.Helper()
	p, err := a.PackedFor(qname)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNegativeAndAnchor: whether an answer denies data, and the name
// it is anchored at (AnchorLen), which response rate limiting accounts
// it to.
func TestNegativeAndAnchor(t *testing.T) {
	set := loadTestSet(t)
	for _, tc := range []struct {
		qname    string
		qtype    uint16
		negative bool
		anchor   string
	}{
		{"www.example.org.", dns.TypeA, false, "www.example.org."},
		{"www.example.org.", dns.TypeMX, true, "www.example.org."},
		{"nothere.example.org.", dns.TypeA, true, "example.org."},
		{"a.b.nothere.example.org.", dns.TypeA, true, "example.org."},
		{"chain.example.org.", dns.TypeMX, true, "chain.example.org."},
		{"chain.example.org.", dns.TypeA, false, "chain.example.org."},
		{"x.sub.example.org.", dns.TypeA, false, "sub.example.org."}, // referral
		{"ent.example.org.", dns.TypeA, true, "ent.example.org."},
		{"x.y.wild.example.org.", dns.TypeA, false, "wild.example.org."},
		{"x.y.wild.example.org.", dns.TypeMX, true, "wild.example.org."},
	} {
		a := lookupName(set, tc.qname, tc.qtype)
		if got := a.Negative(); got != tc.negative {
			t.Errorf("%s %s: Negative() = %v, want %v", tc.qname, dns.TypeToString[tc.qtype], got, tc.negative)
		}
		if got, want := a.AnchorLen(), len(mustWire(tc.anchor)); got != want {
			t.Errorf("%s %s: AnchorLen() = %d, want %d (%s)", tc.qname, dns.TypeToString[tc.qtype], got, want, tc.anchor)
		}
	}
}

func mustWireB(name string) []byte { return []byte(mustWire(name)) }

// lookupName is the answer the zone of set that holds qname
// (presentation form) gives to qname and qtype.
func lookupName(set *Set, qname string, qtype uint16) *Answer {
	w := mustWireB(qname)
	return set.Find(w).Lookup(w, qtype)
}
