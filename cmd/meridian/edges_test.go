package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/miekg/dns"
)

// edgeZone is the test zone with CNAMEs to the steering services.
func edgeZone(serial int) string {
	return testZone(serial, "192.0.2.1") + `docs   CNAME geo
chain  CNAME docs
dangle CNAME nowhere
`
}

// otherZone is a second zone of the server, with a CNAME into the first.
const otherZone = `$ORIGIN example.net.
$TTL 300
@    SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 60
@    NS  ns1.example.org.
far  CNAME chain.example.org.
`

// edgeState adds a service below an empty non-terminal to steeringState.
const edgeState = steeringState + `  - name: svc.deep.example.org.
    ttl: 30
    policy: failover
    regions: [{region: na, weight: 1}, {region: eu, weight: 1}]
`

// edgeFiles are the files of a server with edgeZone and edgeState.
func edgeFiles(t testing.TB) map[string][]byte {
	files := steeringFiles(t)
	files["example.org.zone"] = []byte(edgeZone(1))
	files["state.yaml"] = []byte(edgeState)
	return files
}

// startEdgeServer runs a server with the services of edgeState, the
// CNAMEs of edgeZone and otherZone, once its bootstrap is through.
func startEdgeServer(t *testing.T) *testServer {
	t.Helper()
	ts := startServerWith(t, serverSetup{extra: steeringConfig, files: edgeFiles(t), zones: map[string]string{"example.net.": otherZone}})
	waitAnswer(t, ts.addr(), "svc.deep.example.org.", "192.0.2.20")
	return ts
}

func TestEdgesWithDig(t *testing.T) {
	dig := testtool.Need(t, "dig")
	ts := startEdgeServer(t)
	base := append(digArgs(t, ts.addr(), 0), "+norec", "+time=3", "+tries=1")
	cases := []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"CNAME to a service, Europe", []string{"+subnet=193.0.0.0/24", "docs.example.org", "A"},
			[]string{"status: NOERROR", "flags: qr aa;", "ANSWER: 2,", "docs.example.org.\t300\tIN\tCNAME\tgeo.example.org.", "geo.example.org.\t60\tIN\tA\t192.0.2.10", "CLIENT-SUBNET: 193.0.0.0/24/16"}, nil},
		{"the client's spelling", []string{"+subnet=202.12.27.0/24", "DoCs.ExAmPlE.oRg", "A"},
			[]string{";DoCs.ExAmPlE.oRg.\t\tIN\tA", "DoCs.ExAmPlE.oRg.\t300\tIN\tCNAME\tgeo.ExAmPlE.oRg.", "geo.ExAmPlE.oRg.\t60\tIN\tA\t192.0.2.30"}, nil},
		{"two CNAMEs to a service, North America, IPv6", []string{"+subnet=8.8.8.0/24", "chain.example.org", "AAAA"},
			[]string{"status: NOERROR", "flags: qr aa;", "chain.example.org.\t300\tIN\tCNAME\tdocs.example.org.", "docs.example.org.\t300\tIN\tCNAME\tgeo.example.org.", "geo.example.org.\t60\tIN\tAAAA\t2001:db8::20", "CLIENT-SUBNET: 8.8.8.0/24/24"}, nil},
		{"CNAME to a service, other type: NODATA", []string{"docs.example.org", "TXT"},
			[]string{"status: NOERROR", "ANSWER: 1,", "AUTHORITY: 1,", "SOA"}, nil},
		{"CNAME from another zone of ours: the CNAME", []string{"far.example.net", "A"},
			[]string{"status: NOERROR", "flags: qr aa;", "ANSWER: 1, AUTHORITY: 0,", "far.example.net.\t300\tIN\tCNAME\tchain.example.org."}, nil},
		{"CNAME to nothing: NXDOMAIN", []string{"dangle.example.org", "A"},
			[]string{"status: NXDOMAIN", "dangle.example.org.\t300\tIN\tCNAME\tnowhere.example.org."}, nil},
		{"loopback ECS: scope of the whole subnet", []string{"+subnet=127.0.0.0/24", "geo.example.org", "A"},
			[]string{"status: NOERROR", "CLIENT-SUBNET: 127.0.0.0/24/24"}, []string{"/24/0"}},
		{"transfer carries the services", []string{"example.org", "AXFR"},
			[]string{"geo.example.org.\t60\tIN\tA\t192.0.2.10", "geo.example.org.\t60\tIN\tA\t192.0.2.30", "geo.example.org.\t60\tIN\tAAAA\t2001:db8::20", "lb.example.org.\t\t30\tIN\tA\t192.0.2.20", "docs.example.org.\t300\tIN\tCNAME\tgeo.example.org."}, nil},
		{"TSIG with an unknown key: BADKEY", []string{"-y", "hmac-sha256:nokey.example.:c2VjcmV0c2VjcmV0", "www.example.org", "A"},
			[]string{"status: NOTAUTH", "nokey.example.", "BADKEY"}, []string{"ANSWER: 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runToolAnyExit(t, dig, append(base, tc.args...)...)
			if testing.Verbose() && strings.Contains(tc.name, "TSIG") {
				t.Log(out)
			}
			mustContain(t, out, tc.want...)
			mustLack(t, out, tc.not...)
		})
	}
	t.Run("a secondary accepts the transfer", func(t *testing.T) {
		check := testtool.Need(t, "named-checkzone")
		xfr := runTool(t, dig, append(base, "+onesoa", "example.org", "AXFR")...)
		file := filepath.Join(t.TempDir(), "example.org.zone")
		if err := os.WriteFile(file, []byte(xfr), 0o644); err != nil {
			t.Fatal(err)
		}
		out := runTool(t, check, "-i", "full", "example.org", file)
		mustContain(t, out, "OK")
		for _, name := range []string{"geo", "lb", "svc.deep"} {
			mustContain(t, xfr, name+".example.org.")
		}
	})
	t.Run("BADVERS in metrics", func(t *testing.T) {
		runTool(t, dig, append(base, "+noednsnegotiation", "+edns=1", "www.example.org", "A")...)
		mustContain(t, metricsText(t, ts), `meridian_dns_responses_total{proto="udp",rcode="BADVERS"}`, `meridian_dns_tsig_errors_total{error="BADKEY"} 1`)
		if strings.Contains(metricsText(t, ts), "BADSIG") {
			t.Error("BADSIG in the metrics")
		}
	})
	t.Run("kdig: CNAME to a service", func(t *testing.T) {
		kdig := testtool.Need(t, "kdig")
		host, port, _ := net.SplitHostPort(ts.addr())
		out := runTool(t, kdig, "@"+host, "-p", port, "+norec", "+time=3", "+retry=0", "+subnet=202.12.27.0/24", "docs.example.org", "A")
		mustContain(t, out, "status: NOERROR", "docs.example.org.", "CNAME", "geo.example.org.", "192.0.2.30", "CLIENT-SUBNET: 202.12.27.0/24/24")
	})
	_ = dns.TypeA
}

// runToolAnyExit runs a tool whose exit status does not matter (dig exits
// non-zero when it cannot verify a TSIG reply) and returns its output.
func runToolAnyExit(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out)
}

// metricsText is the server's /metrics page.
func metricsText(t *testing.T, ts *testServer) string {
	t.Helper()
	page, _ := scrape(t, "http://"+ts.HTTP.String()+"/metrics")
	return page
}

func TestEdgesThroughUnbound(t *testing.T) {
	ts := startEdgeServer(t)
	ub := startUnbound(t, ts, unboundSetup{stubs: []string{"example.org", "example.net"}})
	cases := []struct {
		name, qname string
		qtype       uint16
		rcode       int
		want        []string // records, "owner type data", in order
	}{
		{"CNAME to a service", "docs.example.org.", dns.TypeA, dns.RcodeSuccess,
			[]string{"docs.example.org. CNAME geo.example.org.", "geo.example.org. A 192.0.2.20"}},
		{"two CNAMEs to a service", "chain.example.org.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"chain.example.org. CNAME docs.example.org.", "docs.example.org. CNAME geo.example.org.", "geo.example.org. AAAA 2001:db8::20"}},
		{"from another zone of ours", "far.example.net.", dns.TypeA, dns.RcodeSuccess,
			[]string{"far.example.net. CNAME chain.example.org.", "chain.example.org. CNAME docs.example.org.", "docs.example.org. CNAME geo.example.org.", "geo.example.org. A 192.0.2.20"}},
		{"the service itself afterwards", "geo.example.org.", dns.TypeA, dns.RcodeSuccess,
			[]string{"geo.example.org. A 192.0.2.20"}},
		{"other type", "docs.example.org.", dns.TypeTXT, dns.RcodeSuccess,
			[]string{"docs.example.org. CNAME geo.example.org."}},
		{"CNAME to nothing", "dangle.example.org.", dns.TypeA, dns.RcodeNameError,
			[]string{"dangle.example.org. CNAME nowhere.example.org."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ub.ask("udp", tc.qname, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rr := range r.Answer {
				f := strings.Fields(strings.ToLower(rr.String()))
				got = append(got, f[0]+" "+strings.ToUpper(f[3])+" "+strings.Join(f[4:], " "))
			}
			if r.Rcode != tc.rcode || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("rcode %s, want %s; answer\n%s\nwant\n%s\nunbound log:\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode],
					strings.Join(got, "\n"), strings.Join(tc.want, "\n"), ub.log())
			}
		})
	}
}

// TestECSCacheThroughUnbound: an ECS-caching resolver (unbound's
// subnetcache) keeps answering each continent its own region after a
// client whose subnet says nothing of where it is (loopback) asked first:
// that answer is scoped to the subnet, not to everyone.
func TestECSCacheThroughUnbound(t *testing.T) {
	ts := startEdgeServer(t)
	ub := startUnbound(t, ts, unboundSetup{
		modules: "subnetcache iterator",
		extra: `  send-client-subnet: 127.0.0.1
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
  max-client-subnet-ipv6: 56
`,
		stubs: []string{"example.org"},
	})
	subnet := func(cidr string) func(*dns.Msg) {
		return func(m *dns.Msg) {
			ip, n, _ := net.ParseCIDR(cidr)
			bits, _ := n.Mask.Size()
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(bits), Address: ip})
		}
	}
	// Decided on unbound's own address (127.0.0.1, in no network of the
	// database): the default list, North America.
	clients := []struct{ name, subnet, want string }{
		{"loopback subnet first", "127.0.0.0/24", "192.0.2.20"},
		{"Europe", "193.0.0.0/24", "192.0.2.10"},
		{"North America", "8.8.8.0/24", "192.0.2.20"},
		{"Asia", "202.12.27.0/24", "192.0.2.30"},
	}
	for _, qname := range []string{"geo.example.org.", "docs.example.org."} {
		for round := range 2 { // the second round comes from unbound's cache
			for _, c := range clients {
				r, err := ub.ask("udp", qname, dns.TypeA, subnet(c.subnet))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, rr := range r.Answer {
					if a, ok := rr.(*dns.A); ok {
						got = append(got, a.A.String())
					}
				}
				if len(got) != 1 || got[0] != c.want {
					t.Fatalf("%s, round %d, %s (%s): %v, want %s\n%s\nunbound log:\n%s", qname, round+1, c.name, c.subnet, got, c.want, r, ub.log())
				}
			}
		}
	}
}

// TestBeforeFirstSnapshot: started with an empty data directory and etcd
// out of reach, the server answers static records and SERVFAIL where a
// service might be, instead of a denial resolvers would cache.
func TestBeforeFirstSnapshot(t *testing.T) {
	files := edgeFiles(t)
	dead := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens there
	ts := startServerWith(t, serverSetup{extra: steeringConfig, files: files, etcdEndpoints: []string{dead}, notReady: true})
	cases := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
	}{
		{"static record", "www.example.org.", dns.TypeA, dns.RcodeSuccess},
		{"static CNAME chain", "alias.example.org.", dns.TypeA, dns.RcodeSuccess},
		{"referral", "www.sub.example.org.", dns.TypeA, dns.RcodeSuccess},
		{"service", "geo.example.org.", dns.TypeA, dns.RcodeServerFailure},
		{"CNAME to a service", "docs.example.org.", dns.TypeA, dns.RcodeServerFailure},
		{"no such name", "nope.example.org.", dns.TypeA, dns.RcodeServerFailure},
		{"no such type", "www.example.org.", dns.TypeTXT, dns.RcodeServerFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []string{"udp", "tcp"} {
				if r := query(t, n, ts.addr(), tc.qname, tc.qtype); r.Rcode != tc.rcode {
					t.Fatalf("%s: %s, want %s\n%s", n, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
				}
			}
		})
	}
	t.Run("transfer", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetAxfr("example.org.")
		env, err := (&dns.Transfer{}).In(m, ts.addr())
		if err != nil {
			t.Fatal(err)
		}
		for e := range env {
			if e.Error == nil {
				t.Fatalf("transfer before the first snapshot: %v", e.RR)
			}
		}
	})
	resp, err := http.Get("http://" + ts.HTTP.String() + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready: %d", resp.StatusCode)
	}
	mustContain(t, metricsText(t, ts), "meridian_dns_servfail_no_snapshot_total")
}

// TestZoneReloadRefusesShadowing: a new version of a zone that would hide
// a service (records at its name, a delegation at or above it) is refused
// on SIGHUP with a log line naming zone and service; the old version keeps
// serving, and a good version afterwards is taken.
func TestZoneReloadRefusesShadowing(t *testing.T) {
	ts := startEdgeServer(t)
	zoneFile := filepath.Join(ts.dir, "example.org.zone")
	serial := func() uint32 {
		r := query(t, "udp", ts.addr(), "example.org.", dns.TypeSOA)
		if len(r.Answer) != 1 {
			t.Fatalf("SOA: %v", r)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	reload := func(t *testing.T, text, wantLog string) {
		t.Helper()
		if err := os.WriteFile(zoneFile, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		ts.hup(t, wantLog)
	}
	for _, tc := range []struct {
		name, add, why string
	}{
		{"records at a service", "geo A 192.0.2.99\n", "service geo.example.org.: it has records in zone example.org."},
		{"delegation at a service", "lb NS ns1.example.net.\n", "service lb.example.org.: it is at or below the delegation lb.example.org."},
		{"delegation above a service", "deep NS ns1.example.net.\n", "service svc.deep.example.org.: it is at or below the delegation deep.example.org."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reload(t, edgeZone(2)+tc.add, "zone reload refused")
			if !strings.Contains(ts.stderr.String(), tc.why) {
				t.Fatalf("the log does not say %q:\n%s", tc.why, ts.stderr)
			}
			if s := serial(); s != 1 {
				t.Fatalf("serial %d served; the refused version has 2", s)
			}
			waitAnswer(t, ts.addr(), "geo.example.org.", "192.0.2.20")
		})
	}
	t.Run("a good version is taken", func(t *testing.T) {
		reload(t, edgeZone(3), "zones reloaded")
		if s := serial(); s != 3 {
			t.Fatalf("serial %d, want 3", s)
		}
	})
}
