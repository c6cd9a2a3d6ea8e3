package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// metricsState: three regions checked at stand-ins (eu with two VIPs),
// a geo and a weighted service over them, and fo, a service of as
// alone that fails open when as goes down.
const metricsState = `regions:
  - name: eu
    vips: [192.0.2.10, "2001:db8::10"]
    location: {lat: 52.37, lon: 4.9}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.10: "%s", "2001:db8::10": "%s"}}
  - name: na
    vips: [192.0.2.20]
    location: {lat: 38.9, lon: -77.0}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.20: "%s"}}
  - name: as
    vips: [192.0.2.30]
    location: {lat: 35.7, lon: 139.7}
    check: {type: http, port: 80, path: /healthz, interval: 200ms, timeout: 150ms, address: {192.0.2.30: "%s"}}
services:
  - name: geo.example.org.
    ttl: 60
    policy: geo
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}, {region: as, weight: 1}]
    geo:
      continents: {EU: [eu, na], NA: [na, eu], AS: [as, na]}
      default: [na, eu, as]
  - name: lb.example.org.
    ttl: 30
    policy: weighted
    regions: [{region: eu, weight: 3}, {region: na, weight: 1}]
  - name: fo.example.org.
    ttl: 30
    policy: failover
    regions: [{region: as, weight: 1}]
`

// metricsRig is a server and a prober with real traffic behind them:
// what TestMetricsPages scrapes.
type metricsRig struct {
	ts     *testServer
	prober string           // the prober's HTTP base URL
	etcd   store.EtcdConfig // the prober's: its CA and client certificate
	asLB   *standIn
}

// startMetricsRig runs a server (GeoIP, tokens, the example zone signed,
// metricsState bootstrapped) and, in this process, a prober of eu with
// a canary, its etcd TLS files and its HTTP listener, and waits until
// the prober's votes count.
func startMetricsRig(t *testing.T) *metricsRig {
	t.Helper()
	eu4, eu6, na, as, canary := newStandIn(t), newStandIn(t), newStandIn(t), newStandIn(t), newStandIn(t)
	files := steeringFiles(t)
	files["state.yaml"] = []byte(fmt.Sprintf(metricsState, eu4.srv.Listener.Addr(), eu6.srv.Listener.Addr(), na.srv.Listener.Addr(), as.srv.Listener.Addr()))
	ts := startServerWith(t, serverSetup{extra: apiConfig + steeringConfig, files: files, zoneExtra: dnssecZoneConfig})

	// The prober reaches the embedded etcd as make run's do, with the
	// probers' certificate the server made; its expiry is on the page.
	ec := ts.etcdConfig(true)
	cfg := writeFile(t, filepath.Join(t.TempDir(), "prober.yaml"), fmt.Sprintf(`etcd:
  ca_file: %s
  cert_file: %s
  key_file: %s
canary:
  url: %s/ping
  interval: 200ms
listen:
  http: 127.0.0.1:0
`, ec.CAFile, ec.CertFile, ec.KeyFile, canary.srv.URL))
	started := make(chan Started, 1)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), startedKey{}, func(s Started) { started <- s }))
	logs := &testlog.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"prober", "--region", "eu", "--id", "p1", "--etcd", ec.Endpoints[0], "--config", cfg}, io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("prober exited %d:\n%s", code, logs)
		}
	})
	rig := &metricsRig{ts: ts, etcd: ec, asLB: as}
	select {
	case s := <-started:
		rig.prober = "http://" + s.HTTP.String()
	case code := <-done:
		t.Fatalf("prober exited %d:\n%s", code, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("prober did not start:\n%s", logs)
	}
	waitVotes(t, ts, "p1's up votes on every VIP", func(v map[string][]string) bool {
		for _, addr := range []string{"192.0.2.10", "2001:db8::10", "192.0.2.20", "192.0.2.30"} {
			if !slices.Equal(v[addr], []string{"p1=true"}) {
				return false
			}
		}
		return true
	})
	return rig
}

// scrape reads a /metrics page: its text, and its families parsed with
// the Prometheus text parser.
func scrape(t *testing.T, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return string(b), fams
}

// sample is the value of the sample of family name with exactly the
// labels given ("k=v" each); NaN when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = v
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		ok := true
		for _, l := range m.GetLabel() {
			ok = ok && want[l.GetName()] == l.GetValue()
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

// checkMetricsLint runs promtool check metrics on a page: its lint is
// part of what a page must pass.
func checkMetricsLint(t *testing.T, promtool, name, page string) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the %s's page: %v\n%s", name, err, out)
	}
}

// TestMetricsPages drives a server and a prober with DNS queries from
// three continents, a failing region, API requests with and without a
// token and a latency table, then reads both /metrics pages: promtool
// finds nothing to lint, every family is in docs/metrics.md and every
// family docs/metrics.md names is there, the samples say what happened,
// every query of the Grafana dashboard names a metric and every metric
// it and the rules name is one the pages export (deploy/grafana,
// deploy/prometheus).
func TestMetricsPages(t *testing.T) {
	promtool := testtool.Need(t, "promtool")
	rig := startMetricsRig(t)
	ts := rig.ts

	// DNS: a client per continent asks the geo service, then the others.
	const perContinent = 20
	ecs := func(cidr string) func(*dns.Msg) {
		return func(m *dns.Msg) {
			_, p, _ := net.ParseCIDR(cidr)
			ones, _ := p.Mask.Size()
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ones), Address: p.IP})
		}
	}
	for _, c := range []struct{ cidr, want string }{{"193.0.0.0/24", "192.0.2.10"}, {"8.8.8.0/25", "192.0.2.20"}, {"202.12.27.0/24", "192.0.2.30"}} {
		for range perContinent {
			r := query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeA, ecs(c.cidr))
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != c.want {
				t.Fatalf("geo from %s: %v", c.cidr, r.Answer)
			}
		}
	}
	for range 10 {
		query(t, "udp", ts.addr(), "lb.example.org.", dns.TypeA)
	}
	query(t, "tcp", ts.addr(), "lb.example.org.", dns.TypeA)
	for range 3 {
		query(t, "udp", ts.addr(), "geo.example.org.", dns.TypeTXT) // NODATA
	}
	query(t, "udp", ts.addr(), "nowhere.example.org.", dns.TypeA) // NXDOMAIN
	query(t, "udp", ts.addr(), "example.com.", dns.TypeA)         // REFUSED

	// as fails: down by p1's vote, and fo, which has no other region,
	// fails open.
	rig.asLB.down.Store(true)
	waitVotes(t, ts, "p1's down vote on as", func(v map[string][]string) bool { return slices.Equal(v["192.0.2.30"], []string{"p1=false"}) })
	for range 4 {
		if r := query(t, "udp", ts.addr(), "fo.example.org.", dns.TypeA); len(r.Answer) != 1 {
			t.Fatalf("fo failing open: %v", r.Answer)
		}
	}

	// The API: reads, a write without a token (401), a path nobody
	// serves, a latency table imported with the admin token.
	admin := "Bearer " + strings.TrimSpace(mustReadFile(t, filepath.Join(ts.dir, "admin.token")))
	for _, r := range []struct {
		method, path, auth, body string
		code                     int
	}{
		{"GET", "/v1/status", "", "", 200},
		{"HEAD", "/v1/status", "", "", 200},
		{"PATCH", "/v1/services/lb.example.org/weights", "", `{"weights":{"eu":2}}`, 401},
		{"GET", "/v1/nothing", "", "", 404},
		{"PUT", "/v1/latency", admin, "193.0.0.0/24,eu,10\n8.8.8.0/24,na,20\n8.8.8.0/24,eu,90\n", 201},
	} {
		req, _ := http.NewRequest(r.method, ts.url()+r.path, strings.NewReader(r.body))
		if r.auth != "" {
			req.Header.Set("Authorization", r.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.code {
			t.Fatalf("%s %s: %d, want %d", r.method, r.path, resp.StatusCode, r.code)
		}
	}
	waitFor(t, "the latency table served", func() bool {
		_, fams := scrape(t, ts.url()+"/metrics")
		return sample(fams, "meridian_latency_table_entries") == 3
	})

	serverPage, server := scrape(t, ts.url()+"/metrics")
	proberPage, prober := scrape(t, rig.prober+"/metrics")
	checkMetricsLint(t, promtool, "server", serverPage)
	checkMetricsLint(t, promtool, "prober", proberPage)

	t.Run("server samples", func(t *testing.T) {
		type want struct {
			name   string
			labels []string
			ok     func(float64) bool
			what   string
		}
		eq := func(x float64) func(float64) bool { return func(v float64) bool { return v == x } }
		atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
		cases := []want{
			{"meridian_region_health", []string{"region=eu", "status=up"}, eq(1), "eu up"},
			{"meridian_region_health", []string{"region=eu", "status=down"}, eq(0), "every status of eu, 0 but its own"},
			{"meridian_region_health", []string{"region=eu", "status=unknown"}, eq(0), "every status of eu, 0 but its own"},
			{"meridian_region_health", []string{"region=as", "status=down"}, eq(1), "as down"},
			{"meridian_region_drained", []string{"region=eu"}, eq(0), "eu not drained"},
			{"meridian_region_vips", []string{"region=eu", "status=up"}, eq(2), "eu's two VIPs up"},
			{"meridian_vip_health", []string{"region=as", "vip=192.0.2.30", "status=down"}, eq(1), "as's VIP down"},
			{"meridian_vip_counted_votes", []string{"region=as", "vip=192.0.2.30", "vote=down"}, eq(1), "one counted down vote"},
			{"meridian_vip_vote", []string{"region=eu", "vip=2001:db8::10", "prober=p1"}, eq(1), "p1 votes eu's IPv6 VIP up"},
			{"meridian_vip_vote_counted", []string{"region=eu", "vip=2001:db8::10", "prober=p1"}, eq(1), "and it counts"},
			{"meridian_probers_registered", nil, eq(1), "p1 registered"},
			{"meridian_probers_counted", nil, eq(1), "p1 counted"},
			{"meridian_prober_trusted", []string{"prober=p1", "prober_region=eu"}, eq(1), "p1 trusts itself"},
			{"meridian_service_weight", []string{"service=lb.example.org.", "region=eu"}, eq(3), "lb's weight of eu"},
			{"meridian_service_effective_weight", []string{"service=lb.example.org.", "region=eu"}, eq(3), "lb's effective weight of eu"},
			{"meridian_service_weight_factor", []string{"service=lb.example.org.", "region=eu", "factor=shift"}, eq(1), "no shift"},
			{"meridian_dns_region_continent_answers_total", []string{"region=eu", "continent=EU"}, eq(perContinent), "Europe's answers went to eu"},
			{"meridian_dns_region_continent_answers_total", []string{"region=na", "continent=NA"}, eq(perContinent), "North America's to na"},
			{"meridian_dns_region_continent_answers_total", []string{"region=as", "continent=AS"}, eq(perContinent), "Asia's to as"},
			{"meridian_dns_region_continent_answers_total", []string{"region=as", "continent=unknown"}, eq(4), "fo's, from the loopback client, which is nowhere"},
			{"meridian_dns_service_answers_total", []string{"service=geo.example.org."}, eq(3 * perContinent), "geo's answers"},
			{"meridian_dns_service_answers_total", []string{"service=lb.example.org."}, eq(11), "lb's answers"},
			{"meridian_dns_service_nodata_total", []string{"service=geo.example.org."}, eq(3), "geo's NODATA"},
			{"meridian_dns_fail_open_total", []string{"service=fo.example.org."}, eq(4), "fo failing open"},
			{"meridian_dns_fail_open_total", []string{"service=geo.example.org."}, eq(0), "geo not"},
			{"meridian_dns_responses_total", []string{"proto=udp", "rcode=NXDOMAIN"}, eq(1), "one NXDOMAIN"},
			{"meridian_dns_answer_duration_seconds", []string{"proto=udp"}, atLeast(3*perContinent + 10 + 3 + 2 + 4), "every UDP reply timed"},
			{"meridian_dns_answer_duration_seconds", []string{"proto=tcp"}, eq(1), "the TCP reply timed"},
			{"meridian_http_requests_total", []string{"method=PATCH", "route=/v1/services/{name}/weights", "code=401"}, eq(1), "the write without a token"},
			{"meridian_http_requests_total", []string{"method=HEAD", "route=/v1/status", "code=200"}, eq(1), "HEAD answered"},
			{"meridian_http_requests_total", []string{"method=GET", "route=unmatched", "code=404"}, eq(1), "the path nobody serves"},
			{"meridian_http_request_duration_seconds", []string{"method=PUT", "route=/v1/latency"}, eq(1), "the upload timed"},
			{"meridian_latency_table_bytes", nil, eq(float64(len("193.0.0.0/24,eu,10\n8.8.8.0/24,na,20\n8.8.8.0/24,eu,90\n"))), "the table's size"},
			{"meridian_latency_table_age_seconds", nil, func(v float64) bool { return v >= 0 && v < 60 }, "the table just imported"},
			{"meridian_snapshot_build_duration_seconds", nil, atLeast(2), "snapshots built"},
			{"meridian_geo_table_build_duration_seconds", []string{"table=location"}, eq(1), "the location table built once"},
			{"meridian_snapshot_services", nil, eq(3), "three services"},
			{"meridian_etcd_connected", nil, eq(1), "etcd in sync"},
			{"meridian_dnssec_refresh_due_seconds", nil, func(v float64) bool { return v > 0 }, "the signatures fresh"},
		}
		for _, c := range cases {
			if v := sample(server, c.name, c.labels...); !c.ok(v) {
				t.Errorf("%s%v = %v: %s", c.name, c.labels, v, c.what)
			}
		}
		bi := server["meridian_build_info"]
		if bi == nil || len(bi.GetMetric()) != 1 || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Errorf("meridian_build_info: %v", bi)
		}
	})

	t.Run("prober samples", func(t *testing.T) {
		ca, client := certNotAfter(t, rig.etcd.CAFile), certNotAfter(t, rig.etcd.CertFile)
		cases := []struct {
			name   string
			labels []string
			ok     func(float64) bool
			what   string
		}{
			{"meridian_prober_checks_total", []string{"region=eu", "vip=192.0.2.10", "result=success"}, func(v float64) bool { return v >= 2 }, "eu checked"},
			{"meridian_prober_checks_total", []string{"region=as", "vip=192.0.2.30", "result=failure"}, func(v float64) bool { return v >= 2 }, "as failing"},
			{"meridian_prober_vip_state", []string{"region=as", "vip=192.0.2.30", "state=down"}, eq1, "as down"},
			{"meridian_prober_vip_state", []string{"region=eu", "vip=192.0.2.10", "state=up"}, eq1, "eu up"},
			{"meridian_prober_vip_state", []string{"region=eu", "vip=192.0.2.10", "state=unknown"}, eq0, "every state, 0 but its own"},
			{"meridian_prober_rtt_seconds", []string{"region=eu", "vip=192.0.2.10"}, func(v float64) bool { return v > 0 && v < 0.15 }, "an RTT within the timeout"},
			{"meridian_prober_load", []string{"region=na", "vip=192.0.2.20"}, func(v float64) bool { return v == 5 }, "the stand-in's load"},
			{"meridian_prober_capacity", []string{"region=na", "vip=192.0.2.20"}, func(v float64) bool { return v == 100 }, "and capacity"},
			{"meridian_prober_load_unreadable", []string{"region=na", "vip=192.0.2.20"}, eq0, "read"},
			{"meridian_prober_check_duration_seconds", []string{"result=failure"}, func(v float64) bool { return v >= 2 }, "failed checks timed"},
			{"meridian_prober_canary_up", nil, eq1, "the canary answers"},
			{"meridian_prober_self_trusted", nil, eq1, "trusted"},
			{"meridian_prober_lease_held", nil, eq1, "registered"},
			{"meridian_prober_registrations_total", nil, eq1, "once"},
			{"meridian_prober_report_writes_total", nil, func(v float64) bool { return v >= 2 }, "reports written"},
			{"meridian_prober_report_write_errors_total", nil, eq0, "without an error"},
			{"meridian_prober_etcd_connected", nil, eq1, "in sync"},
			{"meridian_prober_regions", nil, func(v float64) bool { return v == 3 }, "three regions"},
			{"meridian_prober_vips", nil, func(v float64) bool { return v == 4 }, "four VIPs"},
			{"meridian_tls_certificate_expiry_timestamp_seconds", []string{"cert=etcd_ca"}, func(v float64) bool { return v == float64(ca.Unix()) }, "the CA's end"},
			{"meridian_tls_certificate_expiry_timestamp_seconds", []string{"cert=etcd_client"}, func(v float64) bool { return v == float64(client.Unix()) }, "the client certificate's end"},
		}
		for _, c := range cases {
			if v := sample(prober, c.name, c.labels...); !c.ok(v) {
				t.Errorf("%s%v = %v: %s", c.name, c.labels, v, c.what)
			}
		}
	})

	t.Run("prober health and HEAD", func(t *testing.T) {
		for _, c := range []struct {
			method, url string
			body        string
		}{
			{"GET", rig.prober + "/health/live", `"live"`},
			{"GET", rig.prober + "/health/ready", `"ready"`},
			{"HEAD", rig.prober + "/health/ready", ""},
			{"HEAD", rig.prober + "/metrics", ""},
			{"HEAD", ts.url() + "/metrics", ""},
		} {
			req, _ := http.NewRequest(c.method, c.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || (c.body == "") != (len(b) == 0) || !strings.Contains(string(b), c.body) {
				t.Errorf("%s %s: %d %q", c.method, c.url, resp.StatusCode, b)
			}
		}
	})

	exported := map[string]bool{}
	for _, fams := range []map[string]*dto.MetricFamily{server, prober} {
		for name := range fams {
			exported[name] = true
		}
	}
	t.Run("docs/metrics.md lists every family", func(t *testing.T) {
		documented := documentedFamilies(t)
		for name := range exported {
			if strings.HasPrefix(name, "meridian_") && !documented[name] {
				t.Errorf("%s is exported but not in docs/metrics.md", name)
			}
		}
		for name := range documented {
			if !exported[name] {
				t.Errorf("docs/metrics.md lists %s, which neither page exports", name)
			}
		}
	})
	t.Run("every dashboard query names an exported metric", func(t *testing.T) {
		for _, q := range dashboardQueries(t) {
			names := metricNameRE.FindAllString(q.expr, -1)
			if len(names) == 0 {
				t.Errorf("deploy/grafana/meridian.json, %s: %q names no Meridian metric", q.where, q.expr)
			}
			for _, n := range names {
				if !exportedName(exported, n) {
					t.Errorf("deploy/grafana/meridian.json, %s: %s is exported by neither the server nor the prober", q.where, n)
				}
			}
		}
	})
	t.Run("the rules name exported metrics", func(t *testing.T) {
		const file = "../../deploy/prometheus/meridian-rules.yml"
		recorded := recordedSeries(t)
		names := queriedNames(t, file)
		if len(names) < 10 {
			t.Fatalf("%s: only %v", file, names)
		}
		for _, n := range names {
			switch {
			case strings.Contains(n, ":"):
				if !recorded[n] {
					t.Errorf("%s: %s is recorded by no rule", file, n)
				}
			case !exportedName(exported, n):
				t.Errorf("%s: %s is exported by neither the server nor the prober", file, n)
			}
		}
	})
}

func eq0(v float64) bool { return v == 0 }
func eq1(v float64) bool { return v == 1 }

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// certNotAfter is the end of the validity of the first certificate in a
// PEM file.
func certNotAfter(t *testing.T, path string) time.Time {
	t.Helper()
	blk, _ := pem.Decode([]byte(mustReadFile(t, path)))
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter
}

// exportedName says whether a metric name a query uses is exported: a
// family, or a histogram's _bucket, _sum or _count series.
func exportedName(exported map[string]bool, name string) bool {
	if exported[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return true
		}
	}
	return false
}

// metricNameRE finds metric and recorded series names: every Meridian
// name starts with meridian_, recorded ones have a level before it
// (instance:meridian_...:rate5m). Label names never do.
var metricNameRE = regexp.MustCompile(`[a-zA-Z_:]*meridian_[a-zA-Z0-9_:]*`)

// queriedNames are the metric names a file's text mentions, in its
// expressions and its annotations alike.
func queriedNames(t *testing.T, file string) []string {
	t.Helper()
	names := metricNameRE.FindAllString(mustReadFile(t, file), -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// recordedSeries are the names the rules file records.
func recordedSeries(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*-?\s*record:\s*(\S+)`).FindAllStringSubmatch(mustReadFile(t, "../../deploy/prometheus/meridian-rules.yml"), -1) {
		out[m[1]] = true
	}
	return out
}

// documentedFamilies are the families docs/metrics.md lists: the first
// column of its tables, in backquotes.
func documentedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(meridian_[a-z0-9_]+)`").FindAllStringSubmatch(mustReadFile(t, "../../docs/metrics.md"), -1) {
		out[m[1]] = true
	}
	if len(out) < 50 {
		t.Fatalf("docs/metrics.md lists %d families", len(out))
	}
	return out
}

// TestPrometheusRules checks the rules file with promtool and runs its
// unit tests (deploy/prometheus/meridian-rules_test.yml).
func TestPrometheusRules(t *testing.T) {
	promtool := testtool.Need(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "meridian-rules.yml"},
		{"test", "rules", "meridian-rules_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashQuery is a PromQL expression of the Grafana dashboard and where
// it is.
type dashQuery struct{ where, expr string }

// grafanaPanel is what the test reads of a dashboard's panel: a row
// holds panels of its own when collapsed.
type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// labelValuesRE is a variable's query label_values(selector, label):
// Grafana's, not PromQL; the selector is.
var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)

// dashboardQueries are every query of deploy/grafana/meridian.json: its
// panels' targets, its variables' selectors, its annotations.
func dashboardQueries(t *testing.T) []dashQuery {
	t.Helper()
	var d struct {
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(mustReadFile(t, "../../deploy/grafana/meridian.json")), &d); err != nil {
		t.Fatalf("deploy/grafana/meridian.json: %v", err)
	}
	var out []dashQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, dashQuery{fmt.Sprintf("panel %q, query %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		m := labelValuesRE.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
		}
		out = append(out, dashQuery{"variable " + v.Name, m[1]})
	}
	for _, a := range d.Annotations.List {
		out = append(out, dashQuery{"annotation " + a.Name, a.Expr})
	}
	if len(out) < 30 {
		t.Fatalf("deploy/grafana/meridian.json: only %d queries", len(out))
	}
	return out
}

// grafanaVarRE is a Grafana variable in a query ($job, ${job}).
var grafanaVarRE = regexp.MustCompile(`\$\{?\w+\}?`)

// TestGrafanaDashboard parses every query of the Grafana dashboard with
// promtool, the dashboard's variables replaced by what Grafana puts in
// their place: a rate interval, or a regular expression that matches
// everything. TestMetricsPages checks the metrics they name are exported.
func TestGrafanaDashboard(t *testing.T) {
	promtool := testtool.Need(t, "promtool")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	queries := dashboardQueries(t)
	for i, q := range queries {
		expr := strings.ReplaceAll(q.expr, "$__rate_interval", "5m")
		expr = grafanaVarRE.ReplaceAllString(expr, ".*")
		rules = append(rules, rule{fmt.Sprintf("dashboard_query_%d", i), expr})
	}
	// JSON is YAML: promtool reads the rules as a rules file.
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, filepath.Join(t.TempDir(), "dashboard-rules.yml"), string(b))
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		// promtool names a rule by its index: say which query it is.
		msg := string(out)
		for i, q := range queries {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("%q", rules[i].Record), fmt.Sprintf("%q (%s)", rules[i].Record, q.where))
		}
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, msg)
	}
}

// snapshotSeries collects collectSnapshot's series of one snapshot.
type snapshotSeries struct{ snap *regions.Snapshot }

func (c snapshotSeries) Describe(ch chan<- *prometheus.Desc) { stateCollector{}.Describe(ch) }
func (c snapshotSeries) Collect(ch chan<- prometheus.Metric) {
	collectSnapshot(ch, c.snap, time.Unix(1_000_000, 0))
}

// TestSnapshotSeriesShared: the per-service series, which share their
// label pairs and values, pass a pedantic registry's checks against
// their descriptors, one series per service, region and factor, each
// with its own labels and value.
func TestSnapshotSeriesShared(t *testing.T) {
	st := regions.NewState()
	for i, name := range []string{"eu", "na", "ap"} {
		st.Regions[name] = &regions.Region{Name: name, VIPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
	}
	for i, name := range []string{"a.example.", "b.example.", "c.example."} {
		svc := &regions.Service{Name: name, TTL: 60, Policy: regions.PolicyWeighted}
		for j, r := range []string{"eu", "na", "ap"}[:i+1] {
			svc.Regions = append(svc.Regions, regions.ServiceRegion{Region: r, Weight: uint32(10*i + j + 1)})
		}
		st.Services[name] = svc
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(snapshotSeries{regions.BuildSnapshot(st, nil, regions.SnapshotOptions{})})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[mf.GetName()] = append(got[mf.GetName()], fmt.Sprintf("%s %g", strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	weights := []string{"region=eu,service=a.example. 1", "region=eu,service=b.example. 11", "region=na,service=b.example. 12",
		"region=ap,service=c.example. 23", "region=eu,service=c.example. 21", "region=na,service=c.example. 22"}
	slices.Sort(weights)
	slices.Sort(got["meridian_service_weight"])
	if !slices.Equal(got["meridian_service_weight"], weights) {
		t.Errorf("weights %q, want %q", got["meridian_service_weight"], weights)
	}
	if n := len(got["meridian_service_weight_factor"]); n != 3*len(weights) {
		t.Errorf("%d factor series, want %d: %q", n, 3*len(weights), got["meridian_service_weight_factor"])
	}
	for _, want := range []string{"factor=ramp,region=ap,service=c.example. 1", "factor=shift,region=eu,service=a.example. 1"} {
		if !slices.Contains(got["meridian_service_weight_factor"], want) {
			t.Errorf("no factor series %q among %q", want, got["meridian_service_weight_factor"])
		}
	}
}
