package zones

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// loadTestSet loads the zones in testdata as a server would.
func loadTestSet(t testing.TB) *Set {
	t.Helper()
	var zs []*Zone
	for _, f := range []struct{ file, origin string }{
		{"testdata/example.org.zone", "example.org."},
		{"testdata/child.example.org.zone", "child.example.org."},
	} {
		z, err := LoadFile(f.file, LoadOptions{Origin: f.origin, Dir: "testdata"})
		if err != nil {
			t.Fatalf("load %s: %v", f.file, err)
		}
		zs = append(zs, z)
	}
	s, err := NewSet(zs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const soaNeg = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"

type lookupCase struct {
	name   string
	qname  string
	qtype  uint16
	rcode  int
	aa     bool
	answer []string
	ns     []string
	extra  []string
}

var lookupCases = []lookupCase{
	{name: "exact", qname: "www.example.org.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, aa: true,
		answer: []string{"www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN A 192.0.2.2"}},
	{name: "exact AAAA", qname: "www.example.org.", qtype: dns.TypeAAAA, aa: true,
		answer: []string{"www.example.org. 3600 IN AAAA 2001:db8::1"}},
	{name: "case insensitive", qname: "WwW.ExAmPlE.oRg.", qtype: dns.TypeA, aa: true,
		answer: []string{"www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN A 192.0.2.2"}},
	{name: "apex SOA", qname: "example.org.", qtype: dns.TypeSOA, aa: true,
		answer: []string{"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2024010101 7200 3600 1209600 300"}},
	{name: "apex NS", qname: "example.org.", qtype: dns.TypeNS, aa: true,
		answer: []string{"example.org. 3600 IN NS ns1.example.org.", "example.org. 3600 IN NS ns2.example.net."}},
	{name: "nodata", qname: "www.example.org.", qtype: dns.TypeMX, aa: true, ns: []string{soaNeg}},
	{name: "nxdomain", qname: "nothere.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNeg}},
	{name: "nxdomain deep", qname: "a.b.c.nothere.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNeg}},
	{name: "cname followed", qname: "alias.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"alias.example.org. 3600 IN CNAME www.example.org.", "www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN A 192.0.2.2"}},
	{name: "cname chain", qname: "chain.example.org.", qtype: dns.TypeAAAA, aa: true,
		answer: []string{"chain.example.org. 3600 IN CNAME alias.example.org.", "alias.example.org. 3600 IN CNAME www.example.org.", "www.example.org. 3600 IN AAAA 2001:db8::1"}},
	{name: "cname chain nodata", qname: "chain.example.org.", qtype: dns.TypeMX, aa: true,
		answer: []string{"chain.example.org. 3600 IN CNAME alias.example.org.", "alias.example.org. 3600 IN CNAME www.example.org."},
		ns:     []string{soaNeg}},
	{name: "cname itself", qname: "alias.example.org.", qtype: dns.TypeCNAME, aa: true,
		answer: []string{"alias.example.org. 3600 IN CNAME www.example.org."}},
	{name: "cname out of zone", qname: "ext.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"ext.example.org. 3600 IN CNAME www.example.net."}},
	{name: "cname to nxdomain", qname: "dangling.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
		answer: []string{"dangling.example.org. 3600 IN CNAME nothere.example.org."}, ns: []string{soaNeg}},
	{name: "cname into wildcard", qname: "towild.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"towild.example.org. 3600 IN CNAME foo.wild.example.org.", "foo.wild.example.org. 3600 IN A 192.0.2.100"}},
	{name: "wildcard", qname: "foo.wild.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"foo.wild.example.org. 3600 IN A 192.0.2.100"}},
	{name: "wildcard several labels", qname: "a.b.wild.example.org.", qtype: dns.TypeTXT, aa: true,
		answer: []string{`a.b.wild.example.org. 3600 IN TXT "wildcard"`}},
	{name: "wildcard nodata", qname: "foo.wild.example.org.", qtype: dns.TypeMX, aa: true, ns: []string{soaNeg}},
	{name: "wildcard asked literally", qname: "*.wild.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"*.wild.example.org. 3600 IN A 192.0.2.100"}},
	{name: "exact beats wildcard", qname: "host.wild.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"host.wild.example.org. 3600 IN A 192.0.2.101"}},
	{name: "exact nodata beats wildcard", qname: "host.wild.example.org.", qtype: dns.TypeTXT, aa: true, ns: []string{soaNeg}},
	{name: "no wildcard below closest encloser", qname: "x.host.wild.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNeg}},
	{name: "wildcard cname", qname: "foo.wc.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"foo.wc.example.org. 3600 IN CNAME www.example.org.", "www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN A 192.0.2.2"}},
	{name: "empty non-terminal", qname: "ent.example.org.", qtype: dns.TypeA, aa: true, ns: []string{soaNeg}},
	{name: "empty non-terminal deeper", qname: "b.ent.example.org.", qtype: dns.TypeAAAA, aa: true, ns: []string{soaNeg}},
	{name: "below empty non-terminal", qname: "a.b.ent.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"a.b.ent.example.org. 3600 IN A 192.0.2.7"}},
	{name: "referral with glue", qname: "sub.example.org.", qtype: dns.TypeA,
		ns:    []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."},
		extra: []string{"ns.sub.example.org. 3600 IN A 192.0.2.200"}},
	{name: "referral below the cut", qname: "deep.www.sub.example.org.", qtype: dns.TypeMX,
		ns:    []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."},
		extra: []string{"ns.sub.example.org. 3600 IN A 192.0.2.200"}},
	{name: "glue is not an answer", qname: "ns.sub.example.org.", qtype: dns.TypeA,
		ns:    []string{"sub.example.org. 3600 IN NS ns.sub.example.org.", "sub.example.org. 3600 IN NS ns.example.net."},
		extra: []string{"ns.sub.example.org. 3600 IN A 192.0.2.200"}},
	{name: "DS at cut from parent", qname: "sub.example.org.", qtype: dns.TypeDS, aa: true,
		answer: []string{"sub.example.org. 3600 IN DS 12345 13 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"}},
	{name: "DS absent at cut", qname: "other.example.org.", qtype: dns.TypeDS, aa: true, ns: []string{soaNeg}},
	{name: "referral with sibling glue", qname: "other.example.org.", qtype: dns.TypeA,
		ns:    []string{"other.example.org. 3600 IN NS ns1.example.net.", "other.example.org. 3600 IN NS ns1.example.org."},
		extra: []string{"ns1.example.org. 3600 IN A 192.0.2.53", "ns1.example.org. 3600 IN AAAA 2001:db8::53"}},
	{name: "ANY minimal", qname: "www.example.org.", qtype: dns.TypeANY, aa: true,
		answer: []string{"www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN A 192.0.2.2"}},
	{name: "ANY at cname", qname: "alias.example.org.", qtype: dns.TypeANY, aa: true,
		answer: []string{"alias.example.org. 3600 IN CNAME www.example.org."}},
	{name: "ANY at empty non-terminal", qname: "ent.example.org.", qtype: dns.TypeANY, aa: true, ns: []string{soaNeg}},
	{name: "ANY nxdomain", qname: "nothere.example.org.", qtype: dns.TypeANY, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNeg}},
	{name: "included file", qname: "included.example.org.", qtype: dns.TypeTXT, aa: true,
		answer: []string{`included.example.org. 600 IN TXT "from an include"`}},
	{name: "child zone wins", qname: "www.child.example.org.", qtype: dns.TypeA, aa: true,
		answer: []string{"www.child.example.org. 60 IN A 198.51.100.1"}},
	{name: "child zone nxdomain", qname: "nope.child.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
		ns: []string{"child.example.org. 60 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60"}},
	{name: "outside every zone", qname: "www.example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	{name: "parent of a zone", qname: "org.", qtype: dns.TypeNS, rcode: dns.RcodeRefused},
}

func TestLookup(t *testing.T) {
	set := loadTestSet(t)
	for _, tc := range lookupCases {
		t.Run(tc.name, func(t *testing.T) {
			res := set.Resolve(tc.qname, tc.qtype)
			if res.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s", dns.RcodeToString[res.Rcode], dns.RcodeToString[tc.rcode])
			}
			if res.Authoritative != tc.aa {
				t.Errorf("AA = %v, want %v", res.Authoritative, tc.aa)
			}
			checkSection(t, "answer", res.Answer, tc.answer)
			checkSection(t, "authority", res.Ns, tc.ns)
			checkSection(t, "additional", res.Extra, tc.extra)
		})
	}
}

// checkSection compares records with presentation-format expectations,
// ignoring the case of owner names (the query's spelling is kept on the
// wire; see the wire test).
func checkSection(t *testing.T, section string, got []dns.RR, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d records, want %d:\n%s", section, len(got), len(want), rrList(got))
		return
	}
	for i, w := range want {
		rr, err := dns.NewRR(w)
		if err != nil {
			t.Fatalf("bad expectation %q: %v", w, err)
		}
		if !strings.EqualFold(got[i].String(), rr.String()) {
			t.Errorf("%s[%d] = %s\nwant %s", section, i, got[i], rr)
		}
	}
}

func rrList(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString("\t" + rr.String() + "\n")
	}
	return b.String()
}

// TestPacked checks every lookup case on the wire: the compiled answer,
// put behind the query's own question (in odd case), decodes to exactly
// the records Resolve gives, with names compressed against the question.
func TestPacked(t *testing.T) {
	set := loadTestSet(t)
	for _, tc := range lookupCases {
		if tc.rcode == dns.RcodeRefused {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			qname := mixCase(tc.qname)
			w, err := WireName(qname)
			if err != nil {
				t.Fatal(err)
			}
			z := set.Find([]byte(w))
			a := z.Lookup([]byte(w), tc.qtype)
			p := a.Packed(len(w))
			if p == nil {
				t.Fatal("answer was not precompiled")
			}
			if p2 := a.Packed(len(w)); p2 != p {
				t.Error("second call compiled again")
			}
			m := decode(t, qname, tc.qtype, p, p.sections)
			want := set.Resolve(qname, tc.qtype)
			if m.Rcode != want.Rcode || m.Authoritative != want.Authoritative {
				t.Errorf("rcode/AA = %d/%v, want %d/%v", m.Rcode, m.Authoritative, want.Rcode, want.Authoritative)
			}
			checkSection(t, "answer", m.Answer, strs(want.Answer))
			checkSection(t, "authority", m.Ns, strs(want.Ns))
			checkSection(t, "additional", m.Extra, strs(want.Extra))
			// Names that point at the question keep the client's spelling.
			for _, rr := range m.Answer {
				if strings.EqualFold(rr.Header().Name, qname) && rr.Header().Name != qname {
					t.Errorf("owner %q lost the question's case %q", rr.Header().Name, qname)
				}
			}
		})
	}
}

// mixCase alternates the case of letters, as 0x20-randomising resolvers do.
func mixCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 && 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func strs(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

// decode assembles header + question + the first records of a Packed and
// parses the result with miekg/dns.
func decode(t *testing.T, qname string, qtype uint16, p *Packed, counts [3]uint16) *dns.Msg {
	t.Helper()
	buf := make([]byte, 12, 512)
	buf[2] = 0x80
	if p.Authoritative {
		buf[2] |= 0x04
	}
	buf[3] = byte(p.Rcode)
	buf[5] = 1
	for i, c := range counts {
		buf[6+2*i], buf[7+2*i] = byte(c>>8), byte(c)
	}
	var q [MaxNameLen]byte
	n, err := dns.PackDomainName(qname, q[:], 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	buf = append(buf, q[:n]...)
	buf = append(buf, byte(qtype>>8), byte(qtype), 0, 1)
	size := 0
	for i := range counts {
		size += int(counts[i])
	}
	if size > 0 {
		buf = append(buf, p.Body[:p.ends[size-1]]...)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	return m
}

func TestPackedFit(t *testing.T) {
	set := loadTestSet(t)
	cases := []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"answer", "www.example.org.", dns.TypeA},
		{"referral with glue", "x.sub.example.org.", dns.TypeA},
		{"referral with sibling glue", "other.example.org.", dns.TypeA},
		{"nxdomain", "no.example.org.", dns.TypeA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := WireName(tc.qname)
			a := set.Find([]byte(w)).Lookup([]byte(w), tc.qtype)
			p := a.Packed(len(w))
			for room := 0; room <= len(p.Body)+1; room++ {
				n, counts, tc2 := p.Fit(room)
				if n > room {
					t.Fatalf("room %d: Fit returned %d bytes", room, n)
				}
				total := int(counts[0] + counts[1] + counts[2])
				switch {
				case tc2:
					if n != 0 || total != 0 {
						t.Fatalf("room %d: truncated but kept %d records", room, total)
					}
					if room >= int(p.ends[p.required-1]) {
						t.Fatalf("room %d: truncated although the required records fit", room)
					}
				default:
					if total < p.required {
						t.Fatalf("room %d: %d records, fewer than the %d required, without TC", room, total, p.required)
					}
					decode(t, tc.qname, tc.qtype, p, counts)
				}
			}
		})
	}
}

func TestLookupAllocs(t *testing.T) {
	set := loadTestSet(t)
	for _, q := range []string{"www.example.org.", "foo.wild.example.org.", "nothere.example.org.", "x.sub.example.org."} {
		w, _ := WireName(q)
		wb := []byte(w)
		set.Find(wb).Lookup(wb, dns.TypeA).Packed(len(wb)) // compile once
		allocs := testing.AllocsPerRun(100, func() {
			z := set.Find(wb)
			if z.Lookup(wb, dns.TypeA).Packed(len(wb)) == nil {
				t.Fatal("not precompiled")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per lookup, want 0", q, allocs)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	set := loadTestSet(b)
	for _, q := range []string{"www.example.org.", "foo.wild.example.org.", "nothere.example.org.", "x.sub.example.org.", "chain.example.org."} {
		w, _ := WireName(q)
		wb := []byte(w)
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set.Find(wb).Lookup(wb, dns.TypeA).Packed(len(wb))
			}
		})
	}
}
