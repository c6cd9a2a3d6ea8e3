package dnsserver

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// edgeState is steeringState with a service of many addresses and one
// below a wildcard.
func edgeState() *regions.State {
	st := steeringState()
	big := &regions.Region{Name: "big", Check: regions.HealthCheck{Type: "tcp", Port: 443}}
	for i := range 40 {
		big.VIPs = append(big.VIPs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}))
	}
	st.Regions["big"] = big
	st.Services["many.example.org."] = &regions.Service{Name: "many.example.org.", TTL: 30, Policy: regions.PolicyFailover,
		Regions: []regions.ServiceRegion{{Region: "big", Weight: 1}}}
	st.Services["svc.x.wild.example.org."] = &regions.Service{Name: "svc.x.wild.example.org.", TTL: 30, Policy: regions.PolicyFailover,
		Regions: []regions.ServiceRegion{{Region: "na", Weight: 1}}}
	return st
}

// edgeHandler serves the test zone and child.example.org, which the test
// zone does not delegate, with edgeState's services.
func edgeHandler(t testing.TB, cfg HandlerConfig) *Handler {
	t.Helper()
	h := steeringHandler(t, edgeState(), cfg)
	child, err := zones.Parse(strings.NewReader("$ORIGIN child.example.org.\n@ 300 SOA ns1 h 1 7200 3600 1209600 60\n@ 300 NS ns1.example.org.\nwww 300 A 192.0.2.77\nsvc 300 CNAME docs.example.org.\n"),
		"child", zones.LoadOptions{Origin: "child.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	set, err := zones.NewSet(testZones(t).Zones()[0], child)
	if err != nil {
		t.Fatal(err)
	}
	h.SetZones(set)
	return h
}

func europe() dns.EDNS0 {
	return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("193.0.0.0")}
}

// rrs writes records as "owner TTL TYPE data", lower case, for comparing.
func rrs(m []dns.RR) []string {
	var out []string
	for _, rr := range m {
		f := strings.Fields(strings.ToLower(rr.String()))
		out = append(out, f[0]+" "+f[1]+" "+strings.Join(f[3:], " "))
	}
	return out
}

func TestCNAMEToService(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{})
	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		ecs    bool
		bufLen int
		rcode  int
		answer []string
		ns     int // SOA records in authority
		scope  int // -1: not checked
		tc     bool
	}{
		{name: "to a geo service", qname: "docs.example.org.", qtype: dns.TypeA, ecs: true, scope: 24,
			answer: []string{"docs.example.org. 300 cname geo.example.org.", "geo.example.org. 60 a 192.0.2.10"}},
		{name: "client's spelling", qname: "DoCs.ExAmPlE.oRg.", qtype: dns.TypeA, ecs: true, scope: 24,
			answer: []string{"docs.example.org. 300 cname geo.example.org.", "geo.example.org. 60 a 192.0.2.10"}},
		{name: "two CNAMEs", qname: "chain.example.org.", qtype: dns.TypeAAAA, ecs: true, scope: 24,
			answer: []string{"chain.example.org. 300 cname docs.example.org.", "docs.example.org. 300 cname geo.example.org.", "geo.example.org. 60 aaaa 2001:db8::10"}},
		{name: "ANY is the CNAME", qname: "docs.example.org.", qtype: dns.TypeANY, scope: -1,
			answer: []string{"docs.example.org. 300 cname geo.example.org."}},
		{name: "CNAME itself", qname: "docs.example.org.", qtype: dns.TypeCNAME, scope: -1,
			answer: []string{"docs.example.org. 300 cname geo.example.org."}},
		{name: "other type: the chain and NODATA", qname: "docs.example.org.", qtype: dns.TypeTXT, ecs: true, scope: 0, ns: 1,
			answer: []string{"docs.example.org. 300 cname geo.example.org."}},
		{name: "to a name above a service: NODATA", qname: "toent.example.org.", qtype: dns.TypeA, ns: 1, scope: -1,
			answer: []string{"toent.example.org. 300 cname deep.example.org."}},
		{name: "to nothing: NXDOMAIN", qname: "dangle.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: 1, scope: -1,
			answer: []string{"dangle.example.org. 300 cname nope.example.org."}},
		{name: "into another zone of ours: the CNAME, for the resolver to follow", qname: "tochild.example.org.", qtype: dns.TypeA, scope: -1,
			answer: []string{"tochild.example.org. 300 cname www.child.example.org."}},
		{name: "too big for UDP: TC", qname: "tomany.example.org.", qtype: dns.TypeAAAA, bufLen: 512, tc: true, scope: -1},
		{name: "too big for UDP, over TCP", qname: "tomany.example.org.", qtype: dns.TypeAAAA, bufLen: maxMsgSize, scope: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := question(tc.qname, tc.qtype)
			if tc.ecs {
				withEDNS(m, 1232, false, europe())
			}
			proto, bufLen := ProtoUDP, 4096
			if tc.bufLen == maxMsgSize {
				proto = ProtoTCP
			}
			if tc.bufLen != 0 {
				bufLen = tc.bufLen
			}
			r := serveRaw(t, h, pack(t, m), proto, bufLen)
			if r.Rcode != tc.rcode || !r.Authoritative || r.Truncated != tc.tc {
				t.Fatalf("rcode %s AA %v TC %v:\n%s", dns.RcodeToString[r.Rcode], r.Authoritative, r.Truncated, r)
			}
			if strings.HasPrefix(tc.qname, "tomany") {
				if !tc.tc && (len(r.Answer) != 41 || r.Answer[40].Header().Name != "many.example.org.") {
					t.Fatalf("%d records:\n%s", len(r.Answer), r)
				}
				return
			}
			if got := rrs(r.Answer); !slices.Equal(got, tc.answer) {
				t.Fatalf("answer\n%q\nwant\n%q", got, tc.answer)
			}
			if len(r.Ns) != tc.ns || (tc.ns == 1 && r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Fatalf("authority %v", r.Ns)
			}
			if tc.scope >= 0 {
				if e := ecsOf(t, r); int(e.SourceScope) != tc.scope {
					t.Fatalf("ECS scope %d, want %d", e.SourceScope, tc.scope)
				}
			}
		})
	}
}

func TestCNAMEToServiceAllocs(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{})
	for name, m := range map[string]*dns.Msg{
		"cname to service":                 withEDNS(question("chain.example.org.", dns.TypeA), 1232, false, europe()),
		"cname nodata":                     question("toent.example.org.", dns.TypeA),
		"cname nxdomain":                   question("dangle.example.org.", dns.TypeA),
		"wildcard ent":                     question("x.wild.example.org.", dns.TypeA),
		"below a service under a wildcard": question("a.svc.x.wild.example.org.", dns.TypeA),
		"wildcard":                         question("z.y.wild.example.org.", dns.TypeA),
	} {
		req := pack(t, m)
		buf := make([]byte, 0, 4096)
		h.ServePacket(buf, req, testClient, ProtoUDP)
		if allocs := testing.AllocsPerRun(200, func() { h.ServePacket(buf, req, testClient, ProtoUDP) }); allocs != 0 {
			t.Errorf("%s: %v allocations per query", name, allocs)
		}
	}
}

// TestWildcardAndServices: a wildcard stands only for names that do not
// exist (RFC 4592 §2.2.1); a service and the names above it exist.
func TestWildcardAndServices(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{})
	cases := []struct {
		name, qname string
		rcode       int
		answers     int
	}{
		{"above a service: NODATA", "x.wild.example.org.", dns.RcodeSuccess, 0},
		{"the service", "svc.x.wild.example.org.", dns.RcodeSuccess, 1},
		{"below the service: NXDOMAIN", "a.svc.x.wild.example.org.", dns.RcodeNameError, 0},
		{"beside the service, below a name above it: NXDOMAIN", "a.x.wild.example.org.", dns.RcodeNameError, 0},
		{"other names: the wildcard", "y.wild.example.org.", dns.RcodeSuccess, 1},
		{"deeper: the wildcard", "z.y.wild.example.org.", dns.RcodeSuccess, 1},
		{"a wildcard CNAME to a service", "any.wcs.example.org.", dns.RcodeSuccess, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := serveRaw(t, h, pack(t, question(tc.qname, dns.TypeA)), ProtoUDP, 512)
			if r.Rcode != tc.rcode || len(r.Answer) != tc.answers || !r.Authoritative {
				t.Fatalf("rcode %s, %d answers:\n%s", dns.RcodeToString[r.Rcode], len(r.Answer), r)
			}
			if tc.answers == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Fatalf("authority %v", r.Ns)
			}
			if tc.answers == 2 && (r.Answer[0].Header().Name != tc.qname || r.Answer[1].Header().Name != "geo.example.org.") {
				t.Fatalf("answer %v", r.Answer)
			}
		})
	}
}

func TestWaitForSnapshot(t *testing.T) {
	acl := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	h := edgeHandler(t, HandlerConfig{WaitForSnapshot: true, TransferACL: acl})
	h.SetSnapshot(nil)
	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		before int // rcode before the first snapshot
		after  int
	}{
		{"static record", "www.example.org.", dns.TypeA, dns.RcodeSuccess, dns.RcodeSuccess},
		{"static CNAME chain", "alias.example.org.", dns.TypeA, dns.RcodeSuccess, dns.RcodeSuccess},
		{"referral", "x.sub.example.org.", dns.TypeA, dns.RcodeSuccess, dns.RcodeSuccess},
		{"service name", "geo.example.org.", dns.TypeA, dns.RcodeServerFailure, dns.RcodeSuccess},
		{"name above a service", "deep.example.org.", dns.TypeA, dns.RcodeServerFailure, dns.RcodeSuccess},
		{"CNAME to a service", "docs.example.org.", dns.TypeA, dns.RcodeServerFailure, dns.RcodeSuccess},
		{"no such name", "nope.example.org.", dns.TypeA, dns.RcodeServerFailure, dns.RcodeNameError},
		{"no such type", "www.example.org.", dns.TypeTXT, dns.RcodeServerFailure, dns.RcodeSuccess},
		{"CNAME into another zone of ours", "tochild.example.org.", dns.TypeA, dns.RcodeSuccess, dns.RcodeSuccess},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := pack(t, question(tc.qname, tc.qtype))
			h.SetSnapshot(nil)
			if r := serveRaw(t, h, req, ProtoUDP, 512); r.Rcode != tc.before {
				t.Fatalf("before the snapshot: %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.before])
			}
			h.SetSnapshot(regions.BuildSnapshot(edgeState(), nil, regions.SnapshotOptions{}))
			if r := serveRaw(t, h, req, ProtoUDP, 512); r.Rcode != tc.after {
				t.Fatalf("with a snapshot: %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.after])
			}
		})
	}
	t.Run("transfer", func(t *testing.T) {
		h.SetSnapshot(nil)
		msgs := transfer(t, h, "example.org.", dns.TypeAXFR, testClient)
		if len(msgs) != 1 || msgs[0].Rcode != dns.RcodeServerFailure {
			t.Fatalf("transfer before the snapshot: %v", msgs)
		}
	})
	t.Run("without the option, denials are sent", func(t *testing.T) {
		h := testHandler(t, HandlerConfig{})
		if r := serveRaw(t, h, pack(t, question("nope.example.org.", dns.TypeA)), ProtoUDP, 512); r.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	})
	if n := h.metrics.waiting.Load(); n == 0 {
		t.Error("SERVFAILs for want of a snapshot not counted")
	}
}

// transfer runs a zone transfer through ServeStream.
func transfer(t *testing.T, h *Handler, name string, qtype uint16, src netip.AddrPort, edit ...func(*dns.Msg)) []*dns.Msg {
	t.Helper()
	m := question(name, qtype)
	for _, e := range edit {
		e(m)
	}
	req := pack(t, m)
	if !h.WantsStream(req, src) {
		t.Fatalf("%s %s not taken as a transfer", name, dns.TypeToString[qtype])
	}
	var msgs []*dns.Msg
	err := h.ServeStream(req, src, func(b []byte) error {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("message does not parse: %v", err)
		}
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestTransferServices(t *testing.T) {
	st := edgeState()
	down(st, "eu") // down regions are transferred: fail-open
	lb := st.Services["lb.example.org."]
	lb.Regions = slices.Clone(lb.Regions)
	lb.Regions[2].Weight = 0 // drained ones are not
	elsewhere := *lb
	elsewhere.Name = "elsewhere.example.net." // in no zone of ours
	st.Services[elsewhere.Name] = &elsewhere
	h := edgeHandler(t, HandlerConfig{TransferACL: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))

	var got []dns.RR
	for _, m := range transfer(t, h, "example.org.", dns.TypeAXFR, testClient) {
		got = append(got, m.Answer...)
	}
	if got[0].Header().Rrtype != dns.TypeSOA || got[len(got)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatal("transfer not framed by the SOA")
	}
	byName := map[string][]string{}
	for _, rr := range got {
		switch rr.Header().Rrtype {
		case dns.TypeA, dns.TypeAAAA:
			byName[rr.Header().Name] = append(byName[rr.Header().Name], rrs([]dns.RR{rr})[0])
		}
	}
	for name, want := range map[string][]string{
		"geo.example.org.":        {"geo.example.org. 60 a 192.0.2.10", "geo.example.org. 60 a 192.0.2.20", "geo.example.org. 60 a 192.0.2.30", "geo.example.org. 60 aaaa 2001:db8::10", "geo.example.org. 60 aaaa 2001:db8::20"},
		"lb.example.org.":         {"lb.example.org. 30 a 192.0.2.10", "lb.example.org. 30 a 192.0.2.20", "lb.example.org. 30 aaaa 2001:db8::10", "lb.example.org. 30 aaaa 2001:db8::20"},
		"svc.deep.example.org.":   {"svc.deep.example.org. 30 a 192.0.2.10", "svc.deep.example.org. 30 a 192.0.2.20", "svc.deep.example.org. 30 a 192.0.2.30", "svc.deep.example.org. 30 aaaa 2001:db8::10", "svc.deep.example.org. 30 aaaa 2001:db8::20"},
		"www.example.org.":        {"www.example.org. 300 a 192.0.2.1", "www.example.org. 300 aaaa 2001:db8::1"},
		"elsewhere.example.net.":  nil,
		"svc.x.wild.example.org.": {"svc.x.wild.example.org. 30 a 192.0.2.20", "svc.x.wild.example.org. 30 aaaa 2001:db8::20"},
	} {
		if !slices.Equal(byName[name], want) {
			t.Errorf("%s: %q, want %q", name, byName[name], want)
		}
	}
	// The child zone carries none of example.org's services.
	for _, m := range transfer(t, h, "child.example.org.", dns.TypeAXFR, testClient) {
		for _, rr := range m.Answer {
			if !dns.IsSubDomain("child.example.org.", rr.Header().Name) {
				t.Errorf("child zone transfer has %s", rr)
			}
		}
	}
}

func TestTSIGUnknownKey(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{TransferACL: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	signed := func(name string, qtype uint16, edns bool) []byte {
		m := question(name, qtype)
		if edns {
			withEDNS(m, 1232, false)
		}
		m.SetTsig("Some-Key.example.", dns.HmacSHA256, 300, time.Now().Unix())
		m.Id = 4242
		b, _, err := dns.TsigGenerate(m, "c2VjcmV0c2VjcmV0c2VjcmV0", "", false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	check := func(t *testing.T, req []byte, r *dns.Msg) {
		t.Helper()
		var in dns.Msg
		if err := in.Unpack(req); err != nil {
			t.Fatal(err)
		}
		sent := in.IsTsig()
		if r.Rcode != dns.RcodeNotAuth || len(r.Answer) != 0 {
			t.Fatalf("rcode %s:\n%s", dns.RcodeToString[r.Rcode], r)
		}
		tsig := r.IsTsig()
		if tsig == nil {
			t.Fatalf("no TSIG record last:\n%s", r)
		}
		if tsig.Error != dns.RcodeBadKey || tsig.MACSize != 0 || tsig.MAC != "" || tsig.Algorithm != sent.Algorithm ||
			tsig.Hdr.Name != sent.Hdr.Name || tsig.Hdr.Class != dns.ClassANY || tsig.Hdr.Ttl != 0 ||
			tsig.OrigId != sent.OrigId || tsig.TimeSigned != sent.TimeSigned || tsig.Fudge != sent.Fudge {
			t.Fatalf("TSIG %v, request's %v", tsig, sent)
		}
	}
	for _, edns := range []bool{false, true} {
		req := signed("www.example.org.", dns.TypeA, edns)
		r := serveRaw(t, h, req, ProtoUDP, 512)
		check(t, req, r)
		if edns && r.IsEdns0() == nil {
			t.Fatal("OPT record dropped")
		}
	}
	t.Run("transfer", func(t *testing.T) {
		req := signed("example.org.", dns.TypeAXFR, false)
		var msgs []*dns.Msg
		if err := h.ServeStream(req, testClient, func(b []byte) error {
			m := new(dns.Msg)
			if err := m.Unpack(b); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		check(t, req, msgs[0])
	})
	t.Run("TSIG not last: FORMERR", func(t *testing.T) {
		req := signed("www.example.org.", dns.TypeA, false)
		var m dns.Msg
		if err := m.Unpack(req); err != nil {
			t.Fatal(err)
		}
		m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 1)})
		if r := serveRaw(t, h, pack(t, &m), ProtoUDP, 512); r.Rcode != dns.RcodeFormatError {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	})
	t.Run("unreadable TSIG: FORMERR", func(t *testing.T) {
		req := signed("www.example.org.", dns.TypeA, false)
		// Cut the record's data short and fix up its length.
		var m dns.Msg
		if err := m.Unpack(req); err != nil {
			t.Fatal(err)
		}
		m.Extra = []dns.RR{&dns.RFC3597{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY}, Rdata: "0b686d61632d73686132"}}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if r := serveRaw(t, h, b, ProtoUDP, 512); r.Rcode != dns.RcodeFormatError {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	})
}

// TestRcodeLabels: BADVERS (16 in an OPT record) is labelled BADVERS, and
// TSIG errors are counted by their own names.
func TestRcodeLabels(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{})
	m := withEDNS(question("www.example.org.", dns.TypeA), 1232, false)
	m.IsEdns0().SetVersion(1)
	if r := serveRaw(t, h, pack(t, m), ProtoUDP, 512); r.Rcode != dns.RcodeBadVers {
		t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	s := question("www.example.org.", dns.TypeA)
	s.SetTsig("k.", dns.HmacSHA256, 300, time.Now().Unix())
	req, _, err := dns.TsigGenerate(s, "c2VjcmV0", "", false)
	if err != nil {
		t.Fatal(err)
	}
	serveRaw(t, h, req, ProtoUDP, 512)

	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Metrics())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var l []string
			for _, p := range m.GetLabel() {
				l = append(l, p.GetName()+"="+p.GetValue())
			}
			labels[f.GetName()+"{"+strings.Join(l, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"meridian_dns_responses_total{proto=udp,rcode=BADVERS}": 1,
		"meridian_dns_responses_total{proto=udp,rcode=NOTAUTH}": 1,
		"meridian_dns_tsig_errors_total{error=BADKEY}":          1,
	} {
		if got, ok := labels[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for key := range labels {
		if strings.Contains(key, "BADSIG") {
			t.Errorf("%s: no reply here carries BADSIG", key)
		}
	}
}

func TestFollowService(t *testing.T) {
	h := edgeHandler(t, HandlerConfig{})
	cases := []struct {
		name    string
		service string // "" none
		cnames  int
	}{
		{"geo.example.org.", "geo.example.org.", 0},
		{"GEO.example.org", "geo.example.org.", 0},
		{"docs.example.org.", "geo.example.org.", 1},
		{"chain.example.org.", "geo.example.org.", 2},
		{"svc.child.example.org.", "geo.example.org.", 2}, // from one of our zones into another
		{"tochild.example.org.", "", 1},
		{"toent.example.org.", "", 1},
		{"dangle.example.org.", "", 1},
		{"alias.example.org.", "", 1},
		{"any.wcs.example.org.", "geo.example.org.", 1},
		{"a.svc.x.wild.example.org.", "", 0},
		{"www.example.org.", "", 0},
		{"x.sub.example.org.", "", 0},
		{"www.example.com.", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap, v, cnames, err := h.FollowService(tc.name)
			if err != nil || snap != h.Snapshot() {
				t.Fatalf("snapshot %p (want %p), err %v", snap, h.Snapshot(), err)
			}
			got := ""
			if v != nil {
				got = v.Name()
			}
			if got != tc.service || len(cnames) != tc.cnames {
				t.Fatalf("service %q via %v, want %q via %d CNAMEs", got, cnames, tc.service, tc.cnames)
			}
			for _, rr := range cnames {
				if rr.Header().Rrtype != dns.TypeCNAME {
					t.Fatalf("%s among the CNAMEs", rr)
				}
			}
		})
	}
	if _, _, _, err := h.FollowService("bad..name"); err == nil {
		t.Error("a bad name gives no error")
	}
	h.SetSnapshot(nil)
	if snap, v, _, err := h.FollowService("docs.example.org."); snap != nil || v != nil || err != nil {
		t.Error("a service found without a snapshot")
	}
}
