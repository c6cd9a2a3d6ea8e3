package dnsserver

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// signedHandler is steeringHandler with example.org signed by a CSK.
func signedHandler(t testing.TB) *Handler {
	t.Helper()
	k, err := dnssec.Generate(t.TempDir(), "example.org.", dnssec.AlgECDSAP256SHA256, dnssec.RoleCSK)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := dnssec.NewKeySet("example.org.", []*dnssec.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	z, err := zones.LoadFile("testdata/example.org.zone", zones.LoadOptions{Origin: "example.org.", Dir: "testdata", DNSSEC: ks.Apex()})
	if err != nil {
		t.Fatal(err)
	}
	set, err := zones.NewSet(z)
	if err != nil {
		t.Fatal(err)
	}
	plain := steeringHandler(t, steeringState(), HandlerConfig{})
	cfg := plain.cfg
	cfg.DNSSEC = dnssec.NewSigner(map[string]dnssec.ZoneConfig{"example.org.": {Keys: ks}}, nil)
	h := NewHandler(cfg, set, nil)
	h.SetSnapshot(regions.BuildSnapshot(steeringState(), nil, regions.SnapshotOptions{}))
	if h.SignedState() == nil {
		t.Fatal("nothing signed")
	}
	return h
}

var signedQueries = map[string]*dns.Msg{
	"static":       question("www.example.org.", dns.TypeA),
	"nxdomain":     question("nope.example.org.", dns.TypeA),
	"nodata":       question("www.example.org.", dns.TypeMX),
	"wildcard":     question("x.wild.example.org.", dns.TypeA),
	"referral":     question("www.sub.example.org.", dns.TypeA),
	"service":      withEDNS(question("geo.example.org.", dns.TypeA), 1232, false, subnetOpt("202.12.27.0/24")),
	"cname":        withEDNS(question("docs.example.org.", dns.TypeA), 1232, false, subnetOpt("202.12.27.0/24")),
	"service type": question("geo.example.org.", dns.TypeTXT),
	"above":        question("deep.example.org.", dns.TypeA),
	"truncated":    question("big.example.org.", dns.TypeTXT),
}

// TestSignedDOClearUnchanged: without the DO bit a signed zone answers
// byte for byte as an unsigned one.
func TestSignedDOClearUnchanged(t *testing.T) {
	signed := signedHandler(t)
	plain := steeringHandler(t, steeringState(), HandlerConfig{})
	for name, m := range signedQueries {
		for _, edns := range []bool{false, true} {
			m := m.Copy()
			if edns && m.IsEdns0() == nil {
				withEDNS(m, 1232, false)
			}
			req := pack(t, m)
			a := signed.ServePacket(make([]byte, 0, 4096), req, testClient, ProtoUDP)
			b := plain.ServePacket(make([]byte, 0, 4096), req, testClient, ProtoUDP)
			if !bytes.Equal(a, b) {
				t.Errorf("%s (EDNS %v): signed zone answers DO=0 differently", name, edns)
			}
		}
	}
}

// TestSignedDOAnswers: with DO, answers carry signatures and denials, and
// the query path allocates nothing.
func TestSignedDOAnswers(t *testing.T) {
	h := signedHandler(t)
	count := func(rrs []dns.RR, t uint16) int {
		n := 0
		for _, rr := range rrs {
			if rr.Header().Rrtype == t {
				n++
			}
		}
		return n
	}
	for name, m := range signedQueries {
		m := m.Copy()
		if o := m.IsEdns0(); o != nil {
			o.SetDo(true)
		} else {
			withEDNS(m, 1232, true)
		}
		req := pack(t, m)
		r := serveRaw(t, h, req, ProtoUDP, 4096)
		sigs, nsec := count(r.Answer, dns.TypeRRSIG)+count(r.Ns, dns.TypeRRSIG), count(r.Ns, dns.TypeNSEC)
		switch name {
		case "truncated":
			if !r.Truncated {
				t.Errorf("%s: not truncated", name)
			}
		case "nxdomain":
			if sigs < 2 || nsec < 1 || r.Rcode != dns.RcodeNameError {
				t.Errorf("%s: %d RRSIG %d NSEC\n%s", name, sigs, nsec, r)
			}
		case "nodata", "service type", "above", "referral":
			if nsec != 1 {
				t.Errorf("%s: %d NSEC\n%s", name, nsec, r)
			}
		case "wildcard":
			if sigs != 2 || nsec != 1 {
				t.Errorf("%s: %d RRSIG %d NSEC\n%s", name, sigs, nsec, r)
			}
		default:
			if sigs != len(r.Answer)-sigs && !(name == "cname" && sigs == 2) || sigs == 0 {
				t.Errorf("%s: %d RRSIG\n%s", name, sigs, r)
			}
		}
		buf := make([]byte, 0, 4096)
		h.ServePacket(buf, req, testClient, ProtoUDP)
		if a := testing.AllocsPerRun(100, func() { h.ServePacket(buf, req, testClient, ProtoUDP) }); a != 0 {
			t.Errorf("%s: %v allocations per query with DO", name, a)
		}
	}
}

func subnetOpt(cidr string) *dns.EDNS0_SUBNET {
	p := netip.MustParsePrefix(cidr)
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()}
}

// BenchmarkServeSignedDO serves the same queries of a signed zone with
// the DO bit clear and set: the CPU a signed answer costs per query over
// an unsigned one (signatures and denials copied, never made).
func BenchmarkServeSignedDO(b *testing.B) {
	h := signedHandler(b)
	for _, name := range []string{"service", "static", "cname", "nxdomain", "nodata"} {
		for _, do := range []bool{false, true} {
			m := signedQueries[name].Copy()
			if o := m.IsEdns0(); o != nil {
				o.SetDo(do)
			} else {
				withEDNS(m, 1232, do)
			}
			req := pack(b, m)
			buf := make([]byte, 0, 4096)
			b.Run(fmt.Sprintf("%s/DO=%d", name, map[bool]int{false: 0, true: 1}[do]), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					h.ServePacket(buf, req, testClient, ProtoUDP)
				}
			})
		}
	}
}
