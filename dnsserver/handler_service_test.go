package dnsserver

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/geo/geotest"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/zones"
)

// steeringState: three regions and services steered by continent, by
// weight, and one below an empty non-terminal.
func steeringState() *regions.State {
	st := regions.NewState()
	check := regions.HealthCheck{Type: "tcp", Port: 443}
	add := func(name string, lat, lon float64, vips ...string) {
		r := &regions.Region{Name: name, Location: regions.Location{Lat: lat, Lon: lon}, Check: check}
		for _, v := range vips {
			r.VIPs = append(r.VIPs, netip.MustParseAddr(v))
		}
		st.Regions[name] = r
	}
	add("eu", 52.37, 4.9, "192.0.2.10", "2001:db8::10")
	add("na", 38.9, -77.0, "192.0.2.20", "2001:db8::20")
	add("as", 35.7, 139.7, "192.0.2.30")
	all := []regions.ServiceRegion{{Region: "eu", Weight: 1}, {Region: "na", Weight: 1}, {Region: "as", Weight: 1}}
	st.Services["geo.example.org."] = &regions.Service{
		Name: "geo.example.org.", TTL: 60, Policy: regions.PolicyGeo, Regions: all,
		Geo: &regions.GeoMap{
			Countries:  map[string][]string{"DE": {"as"}},
			Continents: map[string][]string{"EU": {"eu", "na"}, "NA": {"na", "eu"}, "AS": {"as", "na"}},
			Default:    []string{"na", "eu", "as"},
		},
	}
	st.Services["lb.example.org."] = &regions.Service{Name: "lb.example.org.", TTL: 30, Policy: regions.PolicyWeighted, Regions: all}
	st.Services["svc.deep.example.org."] = &regions.Service{Name: "svc.deep.example.org.", TTL: 30, Policy: regions.PolicyFailover, Regions: all}
	st.Services["closed.example.org."] = &regions.Service{Name: "closed.example.org.", TTL: 30, Policy: regions.PolicyFailover,
		Regions: []regions.ServiceRegion{{Region: "as", Weight: 1}}, AllDown: regions.AllDown{Mode: regions.AllDownFailClosed}}
	return st
}

func steeringHandler(t testing.TB, st *regions.State, cfg HandlerConfig) *Handler {
	t.Helper()
	cfg.Locator = geotest.Open(t,
		geotest.Net{CIDR: "193.0.0.0/16", Country: "NL"},
		geotest.Net{CIDR: "193.0.1.0/24", Country: "DE"},
		geotest.Net{CIDR: "193.0.2.128/28", Country: "DE"},
		geotest.Net{CIDR: "8.8.8.0/24", Country: "US"},
		geotest.Net{CIDR: "202.12.27.0/24", Country: "JP"},
		geotest.Net{CIDR: "2001:67c::/32", Country: "NL"},
	)
	h := NewHandler(cfg, testZones(t), nil)
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))
	return h
}

// tableHandler is steeringHandler with the geo maps compiled against its
// database, as the server builds its snapshots.
func tableHandler(t testing.TB, st *regions.State, cfg HandlerConfig) *Handler {
	t.Helper()
	h := steeringHandler(t, st, cfg)
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{GeoIP: h.cfg.Locator.(*geo.DB)}))
	return h
}

// TestServeServiceTableScope: with compiled geo tables, the ECS scope is
// the merged block. 8.8.8.0/24 is North America, whose regions come in
// the default's order: the block reaches over every address below
// 193.0.0.0 that the database does not hold, 0.0.0.0/1.
func TestServeServiceTableScope(t *testing.T) {
	q := pack(t, withEDNS(question("geo.example.org.", dns.TypeA), 1232, false,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("8.8.8.0")}))
	for _, tc := range []struct {
		name  string
		h     *Handler
		scope uint8
	}{
		{"database network", steeringHandler(t, steeringState(), HandlerConfig{}), 24},
		{"merged block", tableHandler(t, steeringState(), HandlerConfig{}), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := serveRaw(t, tc.h, q, ProtoUDP, 4096)
			scope := -1
			if o := r.IsEdns0(); o != nil {
				for _, e := range o.Option {
					if sub, ok := e.(*dns.EDNS0_SUBNET); ok {
						scope = int(sub.SourceScope)
					}
				}
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.20" || scope != int(tc.scope) {
				t.Fatalf("answer %v with scope %d, want 192.0.2.20 with /%d", r.Answer, scope, tc.scope)
			}
		})
	}
}

// down has two registered, trusted probers report every VIP of region down.
func down(st *regions.State, region string) {
	st.Health[region] = map[string]*regions.HealthReport{}
	for i, id := range []string{"p1", "p2"} {
		lease := int64(100 + i)
		st.Probers[id] = &regions.ProberInfo{ID: id, Region: region, Lease: lease}
		h := &regions.HealthReport{Region: region, Prober: id, Trusted: true, Lease: lease}
		for _, a := range st.Regions[region].VIPs {
			h.VIPs = append(h.VIPs, regions.VIPHealth{Addr: a, Up: false, Reason: "connection refused"})
		}
		st.Health[region][id] = h
	}
}

func TestServeService(t *testing.T) {
	h := steeringHandler(t, steeringState(), HandlerConfig{})
	ecs := func(family uint16, bits uint8, addr string) dns.EDNS0 {
		return &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: bits, Address: net.ParseIP(addr)}
	}
	cases := []struct {
		name    string
		qname   string
		qtype   uint16
		src     string
		opt     dns.EDNS0 // an ECS option, or nil
		rcode   int
		answers []string
		ttl     uint32
		scope   int // -1: no ECS option expected
		nsSOA   bool
	}{
		{name: "europe by ECS", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "193.0.0.0"), answers: []string{"192.0.2.10"}, ttl: 60, scope: 24},
		{name: "north america by ECS", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "8.8.8.0"), answers: []string{"192.0.2.20"}, ttl: 60, scope: 24},
		{name: "asia by ECS", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "202.12.27.0"), answers: []string{"192.0.2.30"}, ttl: 60, scope: 24},
		{name: "country beats continent", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "193.0.1.0"), answers: []string{"192.0.2.30"}, ttl: 60, scope: 24},
		{name: "source longer than the maximum is truncated", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 32, "193.0.2.130"), answers: []string{"192.0.2.10"}, ttl: 60, scope: 24},
		{name: "no ECS: the packet's source", qname: "geo.example.org.", qtype: dns.TypeA, src: "202.12.27.33", answers: []string{"192.0.2.30"}, ttl: 60, scope: -1},
		{name: "private ECS: steered by the source, scope the whole subnet", qname: "geo.example.org.", qtype: dns.TypeA, src: "8.8.8.8", opt: ecs(1, 24, "10.1.2.0"), answers: []string{"192.0.2.20"}, ttl: 60, scope: 24},
		{name: "loopback ECS", qname: "geo.example.org.", qtype: dns.TypeA, src: "202.12.27.33", opt: ecs(1, 24, "127.0.0.0"), answers: []string{"192.0.2.30"}, ttl: 60, scope: 24},
		{name: "documentation ECS, mapped", qname: "geo.example.org.", qtype: dns.TypeA, src: "193.0.0.1", opt: ecs(2, 120, "::ffff:192.0.2.0"), answers: []string{"192.0.2.10"}, ttl: 60, scope: 120},
		{name: "unusable ECS, weighted answer: still the source prefix", qname: "lb.example.org.", qtype: dns.TypeA, src: "193.0.0.1", opt: ecs(1, 20, "10.1.0.0"), ttl: 30, scope: 20},
		{name: "ECS /0: not tailored", qname: "geo.example.org.", qtype: dns.TypeA, src: "8.8.8.8", opt: ecs(1, 0, "0.0.0.0"), answers: []string{"192.0.2.20"}, ttl: 60, scope: 0},
		{name: "IPv6 client", qname: "geo.example.org.", qtype: dns.TypeAAAA, opt: ecs(2, 48, "2001:67c:2e8::"), answers: []string{"2001:db8::10"}, ttl: 60, scope: 32},
		{name: "IPv4-mapped ECS", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(2, 120, "::ffff:193.0.0.0"), answers: []string{"192.0.2.10"}, ttl: 60, scope: 120},
		{name: "scope is the database network when shorter", qname: "geo.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "193.0.200.0"), answers: []string{"192.0.2.10"}, ttl: 60, scope: 17},
		{name: "unknown location: default list", qname: "geo.example.org.", qtype: dns.TypeA, src: "9.9.9.9", answers: []string{"192.0.2.20"}, ttl: 60, scope: -1},
		{name: "case insensitive", qname: "GeO.ExAmPlE.oRg.", qtype: dns.TypeA, opt: ecs(1, 24, "202.12.27.0"), answers: []string{"192.0.2.30"}, ttl: 60, scope: 24},
		{name: "ANY answered with A", qname: "geo.example.org.", qtype: dns.TypeANY, opt: ecs(1, 24, "8.8.8.0"), answers: []string{"192.0.2.20"}, ttl: 60, scope: 24},
		{name: "other types: NODATA with scope 0", qname: "geo.example.org.", qtype: dns.TypeMX, opt: ecs(1, 24, "8.8.8.0"), scope: 0, nsSOA: true},
		{name: "no address of the family: NODATA", qname: "geo.example.org.", qtype: dns.TypeAAAA, opt: ecs(1, 24, "202.12.27.0"), answers: []string{"2001:db8::20"}, ttl: 60, scope: 24},
		{name: "weighted: scope 0", qname: "lb.example.org.", qtype: dns.TypeA, opt: ecs(1, 24, "8.8.8.0"), ttl: 30, scope: 0},
		{name: "empty non-terminal above a service", qname: "deep.example.org.", qtype: dns.TypeA, scope: -1, nsSOA: true},
		{name: "below a service: NXDOMAIN", qname: "x.geo.example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, scope: -1, nsSOA: true},
		{name: "service below an empty non-terminal", qname: "svc.deep.example.org.", qtype: dns.TypeA, answers: []string{"192.0.2.10"}, ttl: 30, scope: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := question(tc.qname, tc.qtype)
			if tc.opt != nil {
				withEDNS(m, 1232, false, tc.opt)
			}
			src := testClient
			if tc.src != "" {
				src = netip.AddrPortFrom(netip.MustParseAddr(tc.src), 5300)
			}
			out := h.ServePacket(make([]byte, 0, 4096), pack(t, m), src, ProtoUDP)
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode || !r.Authoritative {
				t.Fatalf("rcode %s AA %v\n%s", dns.RcodeToString[r.Rcode], r.Authoritative, r)
			}
			if tc.answers != nil || tc.ttl != 0 { // ttl without answers: some answer
				if len(r.Answer) == 0 {
					t.Fatalf("no answer:\n%s", r)
				}
				for i, rr := range r.Answer {
					if rr.Header().Name != tc.qname || rr.Header().Ttl != tc.ttl {
						t.Errorf("record %s: want owner %s TTL %d", rr, tc.qname, tc.ttl)
					}
					if tc.answers == nil {
						continue
					}
					var got string
					switch a := rr.(type) {
					case *dns.A:
						got = a.A.String()
					case *dns.AAAA:
						got = a.AAAA.String()
					}
					if i >= len(tc.answers) || got != tc.answers[i] {
						t.Errorf("answer %d = %s, want %v", i, got, tc.answers)
					}
				}
			} else if len(r.Answer) != 0 {
				t.Errorf("unexpected answer %v", r.Answer)
			}
			if tc.nsSOA && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("authority %v, want the SOA", r.Ns)
			}
			if tc.scope < 0 {
				if o := r.IsEdns0(); o != nil {
					for _, opt := range o.Option {
						if _, ok := opt.(*dns.EDNS0_SUBNET); ok {
							t.Errorf("ECS in reply to a query without it")
						}
					}
				}
				return
			}
			if e := ecsOf(t, r); int(e.SourceScope) != tc.scope {
				t.Errorf("ECS scope %d, want %d", e.SourceScope, tc.scope)
			}
		})
	}
}

func TestServeServiceHealth(t *testing.T) {
	st := steeringState()
	down(st, "eu")
	h := steeringHandler(t, st, HandlerConfig{})
	q := withEDNS(question("geo.example.org.", dns.TypeA), 1232, false,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("193.0.0.0")})
	r := serveRaw(t, h, pack(t, q), ProtoUDP, 1232)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.20" {
		t.Fatalf("europe down: %v", r.Answer)
	}
	if r.Answer[0].Header().Ttl != 30 {
		t.Errorf("TTL %d while a region is down, want the degraded 30", r.Answer[0].Header().Ttl)
	}

	// All of a fail-closed service's regions down: NODATA, not NXDOMAIN or SERVFAIL.
	down(st, "as")
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))
	r = serveRaw(t, h, pack(t, question("closed.example.org.", dns.TypeA)), ProtoUDP, 512)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("fail-closed: %v", r)
	}
	// A fail-open service still answers.
	down(st, "na")
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))
	r = serveRaw(t, h, pack(t, question("lb.example.org.", dns.TypeA)), ProtoUDP, 512)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 15 {
		t.Fatalf("fail-open: %v", r)
	}
	if sc := h.Metrics().Answers().Services["lb.example.org."]; sc.FailOpen != 1 || sc.Answers != 1 {
		t.Errorf("fail-open answer counted as %+v, want one answer failing open", sc)
	}
}

func TestServeServiceTruncation(t *testing.T) {
	st := steeringState()
	r := st.Regions["na"]
	r.VIPs = nil
	for i := range 40 {
		r.VIPs = append(r.VIPs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}))
	}
	h := steeringHandler(t, st, HandlerConfig{})
	q := pack(t, question("svc.deep.example.org.", dns.TypeAAAA))
	// eu has one AAAA; drain it so na (40 AAAA, 1.1 KB) answers.
	st.Services["svc.deep.example.org."].Regions[0].Weight = 0
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))
	m := serveRaw(t, h, q, ProtoUDP, 4096)
	if !m.Truncated || len(m.Answer) != 0 {
		t.Fatalf("40 AAAA in 512 bytes: TC %v, %d answers", m.Truncated, len(m.Answer))
	}
	m = serveRaw(t, h, q, ProtoTCP, maxMsgSize)
	if m.Truncated || len(m.Answer) != 40 {
		t.Fatalf("over TCP: TC %v, %d answers", m.Truncated, len(m.Answer))
	}
}

// serviceCase is a steered query and the handler that serves it.
type serviceCase struct {
	name string
	h    *Handler
	req  []byte
}

// serviceCases are the steered queries the allocation test and the
// benchmark serve; "table" cases read the geo tables the server compiles,
// the others look the client up.
func serviceCases(tb testing.TB) []serviceCase {
	h := steeringHandler(tb, steeringState(), HandlerConfig{})
	ht := tableHandler(tb, steeringState(), HandlerConfig{})
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("193.0.0.0")}
	geoECS := pack(tb, withEDNS(question("geo.example.org.", dns.TypeA), 1232, false, ecs))
	cnameECS := pack(tb, withEDNS(question("docs.example.org.", dns.TypeA), 1232, false, ecs))
	return []serviceCase{
		{"geo+ECS", h, geoECS},
		{"geo+ECS+table", ht, geoECS},
		{"weighted", h, pack(tb, question("lb.example.org.", dns.TypeA))},
		// The continent the answer is counted under, from the location
		// table: the cost of counting answers by continent.
		{"weighted+ECS+table", ht, pack(tb, withEDNS(question("lb.example.org.", dns.TypeA), 1232, false, ecs))},
		{"nodata", h, pack(tb, question("geo.example.org.", dns.TypeTXT))},
		{"cname+geo+ECS", h, cnameECS},
		{"cname+geo+ECS+table", ht, cnameECS},
	}
}

func TestServeServiceAllocs(t *testing.T) {
	for _, tc := range serviceCases(t) {
		buf := make([]byte, 0, 4096)
		tc.h.ServePacket(buf, tc.req, testClient, ProtoUDP)
		if allocs := testing.AllocsPerRun(200, func() { tc.h.ServePacket(buf, tc.req, testClient, ProtoUDP) }); allocs != 0 {
			t.Errorf("%s: %v allocations per query", tc.name, allocs)
		}
	}
}

// BenchmarkServeService serves steered names (see serviceCases).
func BenchmarkServeService(b *testing.B) {
	for _, c := range serviceCases(b) {
		buf := make([]byte, 0, 4096)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServePacket(buf, c.req, testClient, ProtoUDP)
			}
		})
	}
}

// TestServeServiceAnswerCounters: every reply to a service name is
// counted for its service (answers, NODATA, failing open), and every
// answer for its region under the client's continent, whether the
// decision located the client (geo) or not (weighted: the location
// table); the counts of the names that stay survive a new snapshot.
func TestServeServiceAnswerCounters(t *testing.T) {
	st := steeringState()
	h := tableHandler(t, st, HandlerConfig{})
	ask := func(name string, qtype uint16, client string, n int) {
		t.Helper()
		m := question(name, qtype)
		if client != "" {
			m = withEDNS(m, 1232, false, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP(client)})
		}
		for range n {
			serveRaw(t, h, pack(t, m), ProtoUDP, 1232)
		}
	}
	ask("geo.example.org.", dns.TypeA, "193.0.0.0", 3)   // NL, Europe: eu
	ask("geo.example.org.", dns.TypeA, "202.12.27.0", 2) // JP, Asia: as
	ask("geo.example.org.", dns.TypeA, "8.8.8.0", 4)     // US, North America: na
	ask("geo.example.org.", dns.TypeTXT, "", 5)          // NODATA
	ask("svc.deep.example.org.", dns.TypeA, "", 1)       // failover, the client 192.0.2.1 is nowhere: eu, unknown
	ask("svc.deep.example.org.", dns.TypeA, "202.12.27.0", 2)
	got := h.Metrics().Answers()
	want := map[string]RegionAnswerCounts{
		"eu": {Total: 6, ByContinent: continents(map[string]uint64{"EU": 3, "unknown": 1, "AS": 2})},
		"as": {Total: 2, ByContinent: continents(map[string]uint64{"AS": 2})},
		"na": {Total: 4, ByContinent: continents(map[string]uint64{"NA": 4})},
	}
	if !reflect.DeepEqual(got.Regions, want) {
		t.Errorf("answers by region and continent\n%+v\nwant\n%+v", got.Regions, want)
	}
	wantSvc := map[string]ServiceAnswerCounts{
		"geo.example.org.":      {Answers: 9, NoData: 5, ByRegion: map[string]uint64{"eu": 3, "as": 2, "na": 4}},
		"svc.deep.example.org.": {Answers: 3, ByRegion: map[string]uint64{"eu": 3}},
		"lb.example.org.":       {},
		"closed.example.org.":   {},
	}
	if !reflect.DeepEqual(got.Services, wantSvc) {
		t.Errorf("answers by service %+v, want %+v", got.Services, wantSvc)
	}
	// Weighted: the continent from the location table.
	for range 50 {
		ask("lb.example.org.", dns.TypeA, "8.8.8.0", 1)
	}
	var na uint64
	for _, rc := range h.Metrics().Answers().Regions {
		na += rc.ByContinent[5]
	}
	if ContinentLabels[5] != "NA" || na != 4+50 {
		t.Errorf("%d answers to North America, want 54", na)
	}
	// A new snapshot without a service keeps the others' counts.
	delete(st.Services, "lb.example.org.")
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{GeoIP: h.cfg.Locator.(*geo.DB)}))
	got = h.Metrics().Answers()
	if _, ok := got.Services["lb.example.org."]; ok || got.Services["geo.example.org."].NoData != 5 {
		t.Errorf("after the service went: %+v", got.Services)
	}
	// A service whose regions change keeps the counts of the regions it
	// still lists, under their names, wherever they now stand.
	st.Services["geo.example.org."].Regions = []regions.ServiceRegion{{Region: "as", Weight: 1}, {Region: "eu", Weight: 1}}
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{GeoIP: h.cfg.Locator.(*geo.DB)}))
	ask("geo.example.org.", dns.TypeA, "202.12.27.0", 1)
	ask("geo.example.org.", dns.TypeA, "193.0.0.0", 1)
	if got := h.Metrics().Answers().Services["geo.example.org."].ByRegion; !reflect.DeepEqual(got, map[string]uint64{"as": 3, "eu": 4}) {
		t.Errorf("geo.example.org.'s answers by region after its regions changed: %v, want as 3 and eu 4", got)
	}
}

// continents is a count by continent label as RegionAnswerCounts holds it.
func continents(m map[string]uint64) (out [regions.NumContinents + 1]uint64) {
	for i, l := range ContinentLabels {
		out[i] = m[l]
	}
	return out
}

func TestServeServiceRegionAnswers(t *testing.T) {
	st := steeringState()
	h := steeringHandler(t, st, HandlerConfig{})
	q := withEDNS(question("geo.example.org.", dns.TypeA), 1232, false,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("202.12.27.0")})
	for range 3 {
		serveRaw(t, h, pack(t, q), ProtoUDP, 1232)
	}
	serveRaw(t, h, pack(t, question("geo.example.org.", dns.TypeTXT)), ProtoUDP, 512) // NODATA: no region
	if got := h.Metrics().RegionAnswers(); got["as"] != 3 || got["eu"] != 0 || got["na"] != 0 {
		t.Fatalf("answers by region %v, want 3 from as", got)
	}
	// A new snapshot keeps the counts of the regions that stay.
	delete(st.Regions, "eu")
	st.Services = map[string]*regions.Service{}
	h.SetSnapshot(regions.BuildSnapshot(st, nil, regions.SnapshotOptions{}))
	if got := h.Metrics().RegionAnswers(); got["as"] != 3 || len(got) != 2 {
		t.Fatalf("after a new snapshot: %v", got)
	}
}

// TestSteeringServiceLengths: the length filter in front of the service
// index finds services whose names end on either side of its 64-bit words
// and turns away a name of a length no service has.
func TestSteeringServiceLengths(t *testing.T) {
	st := steeringState()
	var names []string
	for _, n := range []int{63, 64, 65, 127, 128, 191, 192, 255} {
		// n wire bytes: labels of up to 63 letters under "example.org."
		// (13 bytes), the first label making up the rest.
		rest := n - 13
		name := ""
		for rest > 0 {
			l := min(rest-1, 63)
			if rest-(l+1) == 1 { // a label of 0 letters cannot stand alone
				l--
			}
			name += strings.Repeat("a", l) + "."
			rest -= l + 1
		}
		name += "example.org."
		w, err := zones.WireName(name)
		if err != nil || len(w) != n {
			t.Fatalf("%d: made %q (%d bytes, %v)", n, name, len(w), err)
		}
		names = append(names, name)
		st.Services[name] = &regions.Service{Name: name, TTL: 30, Policy: regions.PolicyFailover, Regions: []regions.ServiceRegion{{Region: "eu", Weight: 1}}}
	}
	h := steeringHandler(t, st, HandlerConfig{})
	s := h.steer.Load()
	for _, name := range append(names, "geo.example.org.", "lb.example.org.") {
		w, _ := zones.WireName(name)
		if s.service([]byte(w)) == nil {
			t.Errorf("%d-byte service %q not found", len(w), name)
		}
	}
	for _, name := range []string{"x.example.org.", "www.example.org.", "nope.example.org."} {
		w, _ := zones.WireName(name)
		if v := s.service([]byte(w)); v != nil {
			t.Errorf("%q found as service %s", name, v.Name())
		}
	}
}
