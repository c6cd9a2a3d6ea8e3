package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/dnssec"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// dnssecState is steeringState with a second IPv4 VIP in eu, so that a
// VIP failing leaves eu a subset of its addresses.
var dnssecState = strings.Replace(edgeState, "vips: [192.0.2.10, ", "vips: [192.0.2.10, 192.0.2.11, ", 1)

const dnssecZoneConfig = `    dnssec:
      key_dir: keys
      create_keys: true
`

// delegatingFiles are the files of a server with the services of state
// and example.org with the CNAMEs of edgeZone and two delegations: sub
// without DS, sec with one.
func delegatingFiles(t *testing.T, state string) map[string][]byte {
	t.Helper()
	child, err := dnssec.Generate(t.TempDir(), "sec.example.org.", dnssec.AlgECDSAP256SHA256, dnssec.RoleCSK)
	if err != nil {
		t.Fatal(err)
	}
	ds := child.DNSKEY.ToDS(dns.SHA256)
	files := steeringFiles(t)
	files["state.yaml"] = []byte(state)
	files["example.org.zone"] = []byte(edgeZone(1) + fmt.Sprintf("sec NS ns.sec\nns.sec A 192.0.2.201\nsec DS %d %d %d %s\n", ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest))
	return files
}

// signedServer runs a server signing example.org (a CSK made at start)
// with the services of dnssecState, the CNAMEs of edgeZone and two
// delegations: sub without DS, sec with one. It returns the server and
// the zone's DNSKEY.
func signedServer(t *testing.T) (*testServer, *dns.DNSKEY) {
	t.Helper()
	ts := startServerWith(t, serverSetup{extra: steeringConfig, files: delegatingFiles(t, dnssecState), zoneExtra: dnssecZoneConfig})
	waitAnswer(t, ts.addr(), "svc.deep.example.org.", "192.0.2.20")
	keys, err := dnssec.FindKeys(filepath.Join(ts.dir, "keys"), "example.org.")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys made at start: %v %v", keys, err)
	}
	k, err := dnssec.LoadKey(keys[0], "example.org.")
	if err != nil {
		t.Fatal(err)
	}
	return ts, k.DNSKEY
}

// withSubnet asks with an ECS subnet, DO and AD.
func withSubnet(cidr string) func(*dns.Msg) {
	return func(m *dns.Msg) {
		wantAD(m)
		if cidr == "" {
			return
		}
		p := netip.MustParsePrefix(cidr)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	}
}

func wantAD(m *dns.Msg) {
	m.SetEdns0(1232, true)
	m.AuthenticatedData = true
}

// answerText is the answer section as "owner TYPE data" lines, RRSIGs left
// out.
func answerText(r *dns.Msg) string {
	var got []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			continue
		}
		f := strings.Fields(strings.ToLower(rr.String()))
		got = append(got, f[0]+" "+strings.ToUpper(f[3])+" "+strings.Join(f[4:], " "))
	}
	// Sorted: a set's rotation does not matter.
	slices.Sort(got)
	return strings.Join(got, "\n")
}

// verifySigned checks every RRset of r's answer against its RRSIG with
// key, and that there is an RRSIG for each.
func verifySigned(t *testing.T, r *dns.Msg, key *dns.DNSKEY) {
	t.Helper()
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, s)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + dns.TypeToString[rr.Header().Rrtype]
		sets[k] = append(sets[k], rr)
	}
	for k, set := range sets {
		found := false
		for _, s := range sigs {
			if strings.ToLower(s.Hdr.Name)+dns.TypeToString[s.TypeCovered] != k {
				continue
			}
			if err := s.Verify(key, set); err != nil || !s.ValidityPeriod(time.Now()) {
				t.Fatalf("%s: RRSIG does not verify: %v\n%s", k, err, r)
			}
			found = true
		}
		if !found {
			t.Fatalf("%s: no RRSIG\n%s", k, r)
		}
	}
}

// validator is a validating unbound in front of ts, with key as the
// zone's trust anchor; extra adds to its server clause.
func validator(t *testing.T, ts *testServer, key *dns.DNSKEY) *unboundRun {
	t.Helper()
	return startUnbound(t, ts, unboundSetup{
		modules: "subnetcache validator iterator",
		extra: fmt.Sprintf(`  send-client-subnet: 127.0.0.1
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
  cache-max-ttl: 0
  cache-max-negative-ttl: 0
  val-log-level: 2
  trust-anchor: "%s"
`, strings.ReplaceAll(key.String(), "\t", " ")),
		stubs: []string{"example.org"},
	})
}

// validated is one question asked through a validator and the answer it
// must give, validated (AD).
type validated struct {
	name, qname string
	qtype       uint16
	subnet      string
	rcode       int
	want        string // answerText, "" for none
}

func (c validated) check(t *testing.T, ub *unboundRun) {
	t.Helper()
	r, err := ub.ask("udp", c.qname, c.qtype, withSubnet(c.subnet))
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != c.rcode || !r.AuthenticatedData || answerText(r) != c.want {
		t.Fatalf("rcode %s AD %v, want %s AD; answer\n%s\nwant\n%s\nreply:\n%s\nunbound log:\n%s", dns.RcodeToString[r.Rcode], r.AuthenticatedData,
			dns.RcodeToString[c.rcode], answerText(r), c.want, r, ub.log())
	}
}

// checkWeighted: the answer unbound gets for lb validates, and every
// draw the server makes (asked directly, unbound would answer from its
// cache within the second) carries a valid signature of its set.
func checkWeighted(t *testing.T, ub *unboundRun, ts *testServer, key *dns.DNSKEY, sets ...string) {
	t.Helper()
	r, err := ub.ask("udp", "lb.example.org.", dns.TypeA, withSubnet(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := answerText(r); r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || !slices.Contains(sets, got) {
		t.Fatalf("rcode %s AD %v, answer\n%s\nwant AD and one of %q\nunbound log:\n%s", dns.RcodeToString[r.Rcode], r.AuthenticatedData, got, sets, ub.log())
	}
	seen := map[string]bool{}
	for range 40 {
		r := query(t, "udp", ts.addr(), "lb.example.org.", dns.TypeA, withSubnet(""))
		got := answerText(r)
		if !slices.Contains(sets, got) {
			t.Fatalf("answer\n%s\nwant one of %q", got, sets)
		}
		verifySigned(t, r, key)
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Errorf("40 weighted answers were all %v", seen)
	}
}

const (
	lbEU = "lb.example.org. A 192.0.2.10\nlb.example.org. A 192.0.2.11"
	lbNA = "lb.example.org. A 192.0.2.20"
	lbAS = "lb.example.org. A 192.0.2.30"
)

// answerKinds are the kinds of answer a validator must validate: static
// records, a service steered by continent with ECS from three
// continents, CNAMEs into a service, NXDOMAIN, NODATA (at a name, at a
// service, at an empty non-terminal above one), wildcards, the DS and its
// denial at delegations, the DNSKEY.
func answerKinds(t *testing.T, ts *testServer, key *dns.DNSKEY) []validated {
	ok, nx := dns.RcodeSuccess, dns.RcodeNameError
	return []validated{
		{"static", "www.example.org.", dns.TypeA, "", ok, "www.example.org. A 192.0.2.1"},
		{"static IPv6", "www.example.org.", dns.TypeAAAA, "", ok, "www.example.org. AAAA 2001:db8::1"},
		{"geo Europe", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok, "geo.example.org. A 192.0.2.10\ngeo.example.org. A 192.0.2.11"},
		{"geo North America", "geo.example.org.", dns.TypeA, "8.8.8.0/24", ok, "geo.example.org. A 192.0.2.20"},
		{"geo Asia", "geo.example.org.", dns.TypeA, "202.12.27.0/24", ok, "geo.example.org. A 192.0.2.30"},
		{"geo Europe IPv6", "geo.example.org.", dns.TypeAAAA, "193.0.0.0/24", ok, "geo.example.org. AAAA 2001:db8::10"},
		{"failover", "svc.deep.example.org.", dns.TypeA, "", ok, "svc.deep.example.org. A 192.0.2.20"},
		{"CNAME into a service", "docs.example.org.", dns.TypeA, "202.12.27.0/24", ok, "docs.example.org. CNAME geo.example.org.\ngeo.example.org. A 192.0.2.30"},
		{"two CNAMEs into a service", "chain.example.org.", dns.TypeAAAA, "8.8.8.0/24", ok,
			"chain.example.org. CNAME docs.example.org.\ndocs.example.org. CNAME geo.example.org.\ngeo.example.org. AAAA 2001:db8::20"},
		{"CNAME within the zone", "alias.example.org.", dns.TypeA, "", ok, "alias.example.org. CNAME www.example.org.\nwww.example.org. A 192.0.2.1"},
		{"NXDOMAIN", "nope.example.org.", dns.TypeA, "", nx, ""},
		{"NXDOMAIN below a service", "x.geo.example.org.", dns.TypeA, "", nx, ""},
		{"CNAME to nothing", "dangle.example.org.", dns.TypeA, "", nx, "dangle.example.org. CNAME nowhere.example.org."},
		{"NODATA", "www.example.org.", dns.TypeMX, "", ok, ""},
		{"NODATA at a service", "geo.example.org.", dns.TypeTXT, "", ok, ""},
		{"NODATA at a service without IPv6", "svc.deep.example.org.", dns.TypeMX, "", ok, ""},
		{"NODATA above a service", "deep.example.org.", dns.TypeA, "", ok, ""},
		{"NODATA through a CNAME into a service", "docs.example.org.", dns.TypeTXT, "", ok, "docs.example.org. CNAME geo.example.org."},
		{"wildcard", "host.wild.example.org.", dns.TypeA, "", ok, "host.wild.example.org. A 192.0.2.100"},
		{"wildcard two labels down", "a.b.wild.example.org.", dns.TypeA, "", ok, "a.b.wild.example.org. A 192.0.2.100"},
		{"wildcard NODATA", "host.wild.example.org.", dns.TypeMX, "", ok, ""},
		{"delegation without DS", "sub.example.org.", dns.TypeDS, "", ok, ""},
		{"delegation with DS", "sec.example.org.", dns.TypeDS, "", ok, answerText(&dns.Msg{Answer: []dns.RR{mustRR(t, "sec.example.org. 300 IN DS "+dsText(t, ts))}})},
		{"DNSKEY", "example.org.", dns.TypeDNSKEY, "", ok, answerText(&dns.Msg{Answer: []dns.RR{key}})},
		{"large answer over TCP", "big.example.org.", dns.TypeSOA, "", ok, ""},
	}
}

// healthReporter registers a prober in na and reports on eu's VIPs
// through ts's etcd, with the server's certificate.
func healthReporter(t *testing.T, ts *testServer, vips ...string) func(down ...string) {
	t.Helper()
	cli := ts.etcdClient(t)
	st := store.NewStore(cli, store.DefaultPrefix, nil)
	lease, err := cli.Grant(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterProber(context.Background(), &regions.ProberInfo{ID: "p1", Region: "na", Started: time.Now()}, lease.ID); err != nil {
		t.Fatal(err)
	}
	return func(down ...string) {
		rep := &regions.HealthReport{Region: "eu", Prober: "p1", ProberRegion: "na", Trusted: true, Observed: time.Now()}
		for _, a := range vips {
			rep.VIPs = append(rep.VIPs, regions.VIPHealth{Addr: netip.MustParseAddr(a), Up: !slices.Contains(down, a), Since: time.Now()})
		}
		if _, err := st.PutHealthReport(context.Background(), rep, lease.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDirect asks the server for name A (with the ECS subnet, DO) until
// its answer is want.
func waitDirect(t *testing.T, ts *testServer, name, subnet, want string) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := query(t, "udp", ts.addr(), name, dns.TypeA, withSubnet(subnet))
		if answerText(r) == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered\n%s\nlast:\n%s", want, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDNSSECThroughUnbound: a validating unbound, with the zone's DNSKEY
// as its trust anchor, validates every kind of answer through the server
// (AD, nothing bogus), and again right after a VIP and then a whole
// region fail.
func TestDNSSECThroughUnbound(t *testing.T) {
	ts, key := signedServer(t)
	// A fresh unbound after each health change: its cache must not answer
	// for the server.
	ub := validator(t, ts, key)
	t.Run("weighted", func(t *testing.T) { checkWeighted(t, ub, ts, key, lbEU, lbNA, lbAS) })
	for _, c := range answerKinds(t, ts, key) {
		t.Run(c.name, func(t *testing.T) { c.check(t, ub) })
	}

	// Health: eu's second VIP fails, then its first: the subset, then the
	// failover to na, are signed before they are served.
	report := healthReporter(t, ts, "192.0.2.10", "192.0.2.11", "2001:db8::10")
	report("192.0.2.11")
	waitDirect(t, ts, "geo.example.org.", "193.0.0.0/24", "geo.example.org. A 192.0.2.10")
	ub = validator(t, ts, key)
	ok := dns.RcodeSuccess
	t.Run("after a VIP failed", func(t *testing.T) {
		validated{"", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok, "geo.example.org. A 192.0.2.10"}.check(t, ub)
		validated{"", "docs.example.org.", dns.TypeA, "193.0.0.0/24", ok, "docs.example.org. CNAME geo.example.org.\ngeo.example.org. A 192.0.2.10"}.check(t, ub)
	})
	report("192.0.2.10", "192.0.2.11")
	waitDirect(t, ts, "geo.example.org.", "193.0.0.0/24", "geo.example.org. A 192.0.2.20")
	ub = validator(t, ts, key)
	t.Run("after the region failed over", func(t *testing.T) {
		validated{"", "geo.example.org.", dns.TypeA, "193.0.0.0/24", ok, "geo.example.org. A 192.0.2.20"}.check(t, ub)
		checkWeighted(t, ub, ts, key, lbNA, lbAS)
	})
	if strings.Contains(ub.log(), "validation failure") {
		t.Errorf("unbound saw bogus answers:\n%s", ub.log())
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// dsText is the DS of sec.example.org in the test zone, as its file has it.
func dsText(t *testing.T, ts *testServer) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.dir, "example.org.zone"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "sec DS ") {
			return strings.TrimPrefix(line, "sec DS ")
		}
	}
	t.Fatal("no DS in the zone")
	return ""
}

// TestDNSSECDelvAndVerify: BIND's delv, with the zone's DNSKEY as its
// trust anchor, fully validates the answers unbound does; dnssec-verify
// accepts the zone as a transfer carries it (every RRset signed, the
// NSEC chain complete); referrals carry the DS with its signature, or
// the NSEC proving there is none.
func TestDNSSECDelvAndVerify(t *testing.T) {
	delv := testtool.Need(t, "delv")
	verify := testtool.Need(t, "dnssec-verify")
	ts, key := signedServer(t)
	anchor := filepath.Join(t.TempDir(), "anchor.conf")
	if err := os.WriteFile(anchor, []byte(fmt.Sprintf("trust-anchors {\n  example.org. static-key %d %d %d %q;\n};\n",
		key.Flags, key.Protocol, key.Algorithm, key.PublicKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, qtype, want string }{
		{"www.example.org", "A", "192.0.2.1"},
		{"geo.example.org", "A", "192.0.2."},
		{"docs.example.org", "A", "CNAME"},
		{"host.wild.example.org", "A", "192.0.2.100"},
		{"nope.example.org", "A", "NXDOMAIN"},
		{"deep.example.org", "A", "NXRRSET"},
		{"www.example.org", "MX", "NXRRSET"},
	} {
		t.Run("delv "+c.name+" "+c.qtype, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, delv, append(digArgs(t, ts.addr(), 0), "-a", anchor, "+root=example.org", c.name, c.qtype)...).CombinedOutput()
			if !bytes.Contains(out, []byte("; fully validated")) && !bytes.Contains(out, []byte("; negative response, fully validated")) || !bytes.Contains(out, []byte(c.want)) {
				t.Fatalf("delv did not validate %s %s (want %q):\n%s", c.name, c.qtype, c.want, out)
			}
		})
	}

	t.Run("dnssec-verify of the transfer", func(t *testing.T) { verifyTransfer(t, ts, verify) })

	t.Run("referrals", func(t *testing.T) {
		for _, c := range []struct{ name, proof string }{
			{"www.sub.example.org.", "NSEC"},
			{"www.sec.example.org.", "DS"},
		} {
			r := query(t, "udp", ts.addr(), c.name, dns.TypeA, wantAD)
			if r.Authoritative || len(r.Answer) != 0 {
				t.Fatalf("%s: not a referral:\n%s", c.name, r)
			}
			sets := map[uint16][]dns.RR{}
			var sig *dns.RRSIG
			for _, rr := range r.Ns {
				if s, ok := rr.(*dns.RRSIG); ok {
					sig = s
					continue
				}
				sets[rr.Header().Rrtype] = append(sets[rr.Header().Rrtype], rr)
			}
			proof := sets[dns.StringToType[c.proof]]
			if len(sets[dns.TypeNS]) == 0 || len(proof) != 1 || sig == nil || sig.TypeCovered != dns.StringToType[c.proof] {
				t.Fatalf("%s: want NS, %s and its RRSIG in authority:\n%s", c.name, c.proof, r)
			}
			if err := sig.Verify(key, proof); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if nsec, ok := proof[0].(*dns.NSEC); ok && (slices.Contains(nsec.TypeBitMap, dns.TypeDS) || !slices.Contains(nsec.TypeBitMap, dns.TypeNS)) {
				t.Fatalf("%s: the NSEC must show NS and no DS: %s", c.name, nsec)
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// verifyTransfer transfers example.org from ts and has dnssec-verify
// check it: every RRset signed, the NSEC chain complete.
func verifyTransfer(t *testing.T, ts *testServer, verify string) {
	t.Helper()
	tr := &dns.Transfer{}
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	env, err := tr.In(m, ts.DNSTCP[0].String())
	if err != nil {
		t.Fatal(err)
	}
	var zone strings.Builder
	n := 0
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		for _, rr := range e.RR[:len(e.RR)-boolInt(n > 0 && e.RR[len(e.RR)-1].Header().Rrtype == dns.TypeSOA)] {
			zone.WriteString(rr.String() + "\n")
		}
		n++
	}
	path := filepath.Join(t.TempDir(), "example.org.signed")
	if err := os.WriteFile(path, []byte(zone.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// -z: a CSK, with the SEP flag, signs every RRset.
	out := runTool(t, verify, "-z", "-o", "example.org", path)
	mustContain(t, out, "Zone fully signed", "Algorithm: ECDSAP256SHA256")
}
