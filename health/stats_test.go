package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
)

// readStats compiles src for testVIP, validates it as a region would be,
// and reads the page once.
func readStats(t *testing.T, src *regions.StatsSource, timeout time.Duration) reading {
	t.Helper()
	c := regions.HealthCheck{Type: "tcp", Port: 80, Stats: src, Timeout: regions.Duration(timeout)}
	if err := (&regions.Region{Name: "r", VIPs: []netip.Addr{testVIP}, Check: c}).Validate(); err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	r := newStatsReader(newStatsSpec(c.WithDefaults(), testVIP), d.DialContext, "meridian-prober/test")
	return within(t, func() reading { return r.read(context.Background()) })
}

// page serves body with status at every path.
func page(t *testing.T, status int, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func fixture(t *testing.T, name string) string {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func f(v float64) *float64 { return &v }

// want is what a reading should hold: load and capacity (nil: none),
// the counters, and fragments of the reasons.
type want struct {
	load, capacity   *float64
	requests, errors float64
	counted          bool
	loadErr          string
	countErr         string
}

func (w want) check(t *testing.T, rd reading) {
	t.Helper()
	if !sameNumber(rd.load, w.load) || !sameNumber(rd.capacity, w.capacity) {
		t.Errorf("load %v capacity %v, want %v %v", deref(rd.load), deref(rd.capacity), deref(w.load), deref(w.capacity))
	}
	if rd.counted != w.counted || rd.requests != w.requests || rd.errors != w.errors {
		t.Errorf("counters %v/%v counted %t, want %v/%v %t", rd.errors, rd.requests, rd.counted, w.errors, w.requests, w.counted)
	}
	if (w.loadErr == "") != (rd.loadErr == "") || !strings.Contains(rd.loadErr, w.loadErr) {
		t.Errorf("load error %q, want %q", rd.loadErr, w.loadErr)
	}
	if (w.countErr == "") != (rd.countErr == "") || !strings.Contains(rd.countErr, w.countErr) {
		t.Errorf("counter error %q, want %q", rd.countErr, w.countErr)
	}
	if w.load != nil && (rd.at.IsZero() || time.Since(rd.at) > time.Minute) {
		t.Errorf("reading time %v", rd.at)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestHAProxyStats: HAProxy's CSV stats as HAProxy 2.6 serves them, and
// pages that are not.
func TestHAProxyStats(t *testing.T) {
	real := page(t, 200, fixture(t, "haproxy-2.6.csv"))
	hp := func(url, proxy, side string) *regions.StatsSource {
		return &regions.StatsSource{Type: "haproxy", URL: url + "/stats;csv", Proxy: proxy, Side: side}
	}
	// Columns found by name: an older layout with fewer columns, in
	// another order, reads alike.
	old := page(t, 200, "# pxname,svname,qcur,qmax,scur,smax,slim,stot,req_tot,hrsp_5xx,\nwww,FRONTEND,,,17,40,2000,9000,8000,40,\n")
	cases := []struct {
		name string
		src  *regions.StatsSource
		want want
	}{
		{"frontend", hp(real, "www", ""), want{load: f(0), capacity: f(500), requests: 24, counted: true}},
		{"backend", hp(real, "app", ""), want{load: f(0), capacity: f(50), requests: 24, counted: true}},
		{"listen section: the frontend row first", hp(real, "api", ""), want{load: f(0), capacity: f(200), requests: 7, errors: 7, counted: true}},
		{"listen section: the backend row asked for", hp(real, "api", "backend"), want{load: f(0), capacity: f(20), requests: 7, errors: 7, counted: true}},
		{"a tcp frontend has no 5xx", hp(real, "db", ""), want{load: f(0), capacity: f(1000), countErr: "db FRONTEND has no hrsp_5xx (not an HTTP proxy?)"}},
		{"a constant capacity replaces slim", func() *regions.StatsSource {
			s := hp(real, "www", "")
			s.Capacity = &regions.MetricSelector{Value: f(350)}
			return s
		}(), want{load: f(0), capacity: f(350), requests: 24, counted: true}},
		{"an older layout", hp(old, "www", ""), want{load: f(17), capacity: f(2000), requests: 8000, errors: 40, counted: true}},
		{"no such proxy", hp(real, "nope", ""), want{loadErr: `no proxy "nope" on the HAProxy stats page (want a FRONTEND or BACKEND row)`, countErr: "no proxy"}},
		{"no such row", hp(real, "www", "backend"), want{loadErr: `no proxy "www" on the HAProxy stats page (want a BACKEND row)`, countErr: "no proxy"}},
		{"the HTML page", hp(page(t, 200, "<html><head><title>Statistics Report for HAProxy</title>"), "www", ""),
			want{loadErr: "not an HAProxy CSV stats page", countErr: "the URL ends in ;csv"}},
		{"empty", hp(page(t, 200, ""), "www", ""), want{loadErr: "empty stats page", countErr: "empty"}},
		{"scur not a number", hp(page(t, 200, "# pxname,svname,scur,slim,\nwww,FRONTEND,many,10,\n"), "www", ""), want{loadErr: `www FRONTEND: scur "many" is not a count`, countErr: "scur"}},
		{"no scur column", hp(page(t, 200, "# pxname,svname,slim,\nwww,FRONTEND,10,\n"), "www", ""), want{loadErr: "without a scur column", countErr: "scur"}},
		{"status 503", hp(page(t, 503, "no"), "www", ""), want{loadErr: "stats page: status 503, want 200", countErr: "status 503"}},
		{"larger than the limit", hp(page(t, 200, "# pxname,svname,scur,\n"+strings.Repeat("x,BACKEND,1,\n", regions.MaxStatsBody/12+1)), "www", ""),
			want{loadErr: "stats page larger than 4096 KiB", countErr: "larger"}},
		{"a line longer than the limit", hp(page(t, 200, "# pxname,svname,scur,\n"+strings.Repeat("x", maxStatsLine+1)+"\n"), "www", ""),
			want{loadErr: "a line longer than 64 KiB", countErr: "longer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.want.check(t, readStats(t, tc.src, 5*time.Second)) })
	}
}

// TestStatsUnreachable: a page that cannot be had leaves the load
// unknown with the reason, within the timeout.
func TestStatsUnreachable(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens there
	hang := newLB(t)
	hang.set(lbHang)
	cases := []struct {
		name, url, why string
	}{
		{"refused", "http://" + closed + "/stats;csv", "stats page: dial tcp " + closed + ": connect: connection refused"},
		{"never answers", "http://" + hang.addr() + "/stats;csv", "timeout after 150ms waiting for the stats page"},
		{"https to an http server", "https://" + hang.addr() + "/stats;csv", "stats page: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			rd := readStats(t, &regions.StatsSource{Type: "haproxy", URL: tc.url, Proxy: "www"}, 150*time.Millisecond)
			want{loadErr: tc.why, countErr: tc.why}.check(t, rd)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v with a 150ms timeout", took)
			}
		})
	}
}

// TestPrometheusStats: pages in the Prometheus text format as Envoy
// writes them, and as Traefik and the NGINX exporter serve them (through
// the Prometheus client library).
func TestPrometheusStats(t *testing.T) {
	envoy := page(t, 200, fixture(t, "envoy.prom"))

	traefikReg := prometheus.NewRegistry()
	open := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "traefik_entrypoint_open_connections", Help: "open connections"}, []string{"entrypoint", "method", "protocol"})
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_entrypoint_requests_total", Help: "requests"}, []string{"code", "entrypoint", "method", "protocol"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "traefik_entrypoint_request_duration_seconds", Help: "durations"}, []string{"code", "entrypoint", "method", "protocol"})
	traefikReg.MustRegister(open, reqs, dur)
	open.WithLabelValues("websecure", "GET", "http").Set(40)
	open.WithLabelValues("websecure", "POST", "http").Set(2)
	open.WithLabelValues("web", "GET", "http").Set(9)
	for code, n := range map[string]int{"200": 900, "404": 50, "502": 30, "503": 20} {
		reqs.WithLabelValues(code, "websecure", "GET", "http").Add(float64(n))
		for range n {
			dur.WithLabelValues(code, "websecure", "GET", "http").Observe(0.01)
		}
	}
	reqs.WithLabelValues("200", "web", "GET", "http").Add(77)
	traefik := httptest.NewServer(promhttp.HandlerFor(traefikReg, promhttp.HandlerOpts{}))
	t.Cleanup(traefik.Close)

	// A Traefik that has not answered a 5xx yet has no series for it.
	quietReg := prometheus.NewRegistry()
	quietOpen := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "traefik_entrypoint_open_connections", Help: "open"}, []string{"entrypoint"})
	quietReqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traefik_entrypoint_requests_total", Help: "requests"}, []string{"code", "entrypoint"})
	quietReg.MustRegister(quietOpen, quietReqs)
	quietOpen.WithLabelValues("websecure").Set(3)
	quietReqs.WithLabelValues("200", "websecure").Add(500)
	quiet := httptest.NewServer(promhttp.HandlerFor(quietReg, promhttp.HandlerOpts{}))
	t.Cleanup(quiet.Close)

	nginxReg := prometheus.NewRegistry()
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nginx_connections_active", Help: "active connections"}, nil)
	nreqs := prometheus.NewCounter(prometheus.CounterOpts{Name: "nginx_http_requests_total", Help: "requests"})
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "nginx_up", Help: "up"})
	nginxReg.MustRegister(conns, nreqs, up)
	conns.WithLabelValues().Set(128)
	nreqs.Add(31337)
	up.Set(1)
	nginx := httptest.NewServer(promhttp.HandlerFor(nginxReg, promhttp.HandlerOpts{}))
	t.Cleanup(nginx.Close)

	sel := func(metric string, labels ...string) *regions.MetricSelector {
		m := &regions.MetricSelector{Metric: metric}
		for i := 0; i+1 < len(labels); i += 2 {
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			m.Labels[labels[i]] = labels[i+1]
		}
		return m
	}
	match := func(m *regions.MetricSelector, label, re string) *regions.MetricSelector {
		m.Match = map[string]string{label: re}
		return m
	}
	envoySrc := func(url string) *regions.StatsSource {
		return &regions.StatsSource{Type: "prometheus", URL: url + "/stats/prometheus",
			Load:     sel("envoy_http_downstream_rq_active", "envoy_http_conn_manager_prefix", "ingress_http"),
			Capacity: &regions.MetricSelector{Value: f(1000)},
			Requests: sel("envoy_http_downstream_rq_total", "envoy_http_conn_manager_prefix", "ingress_http"),
			Errors:   sel("envoy_http_downstream_rq_xx", "envoy_http_conn_manager_prefix", "ingress_http", "envoy_response_code_class", "5")}
	}
	traefikSrc := func(url string) *regions.StatsSource {
		return &regions.StatsSource{Type: "prometheus", URL: url + "/metrics",
			Load:     sel("traefik_entrypoint_open_connections", "entrypoint", "websecure"),
			Capacity: &regions.MetricSelector{Value: f(2000)},
			Requests: sel("traefik_entrypoint_requests_total", "entrypoint", "websecure"),
			Errors:   match(sel("traefik_entrypoint_requests_total", "entrypoint", "websecure"), "code", "5..")}
	}
	cases := []struct {
		name string
		src  *regions.StatsSource
		want want
	}{
		{"envoy", envoySrc(envoy), want{load: f(7), capacity: f(1000), requests: 1204, errors: 445, counted: true}},
		{"envoy: a histogram's count as requests, a capacity metric", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Requests = sel("envoy_http_downstream_rq_time_count", "envoy_http_conn_manager_prefix", "ingress_http")
			s.Capacity = sel("envoy_http_downstream_cx_active", "envoy_http_conn_manager_prefix", "ingress_http")
			return s
		}(), want{load: f(7), capacity: f(31), requests: 1204, errors: 445, counted: true}},
		{"envoy: every series summed", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Load = sel("envoy_cluster_upstream_cx_active")
			return s
		}(), want{load: f(12), capacity: f(1000), requests: 1204, errors: 445, counted: true}},
		{"envoy: the load metric missing", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Load = sel("envoy_http_downstream_rq_activ")
			return s
		}(), want{loadErr: "no metric envoy_http_downstream_rq_activ on the stats page", countErr: "no metric"}},
		{"envoy: no series matches", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Load = sel("envoy_http_downstream_rq_active", "envoy_http_conn_manager_prefix", "egress")
			return s
		}(), want{loadErr: `no series of envoy_http_downstream_rq_active on the stats page matches envoy_http_downstream_rq_active{envoy_http_conn_manager_prefix="egress"}`, countErr: "no series"}},
		{"envoy: the capacity metric missing", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Capacity = sel("envoy_cluster_circuit_breakers_default_cx_open")
			return s
		}(), want{loadErr: "no metric envoy_cluster_circuit_breakers_default_cx_open on the stats page", countErr: "no metric"}},
		{"envoy: a histogram named whole", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Load = sel("envoy_http_downstream_rq_time")
			return s
		}(), want{loadErr: "envoy_http_downstream_rq_time is a histogram: name envoy_http_downstream_rq_time_count or envoy_http_downstream_rq_time_sum", countErr: "histogram"}},
		{"envoy: the errors metric missing", func() *regions.StatsSource {
			s := envoySrc(envoy)
			s.Errors = sel("envoy_http_downstream_rq_5xx")
			return s
		}(), want{load: f(7), capacity: f(1000), countErr: "no metric envoy_http_downstream_rq_5xx on the stats page"}},
		{"traefik: 5xx by a regular expression over codes and methods", traefikSrc(traefik.URL), want{load: f(42), capacity: f(2000), requests: 1000, errors: 50, counted: true}},
		{"traefik: the duration histogram's count", func() *regions.StatsSource {
			s := traefikSrc(traefik.URL)
			s.Requests = sel("traefik_entrypoint_request_duration_seconds_count", "entrypoint", "websecure")
			s.Errors = match(sel("traefik_entrypoint_request_duration_seconds_count", "entrypoint", "websecure"), "code", "5..")
			return s
		}(), want{load: f(42), capacity: f(2000), requests: 1000, errors: 50, counted: true}},
		{"traefik before its first 5xx: errors count 0", traefikSrc(quiet.URL), want{load: f(3), capacity: f(2000), requests: 500, counted: true}},
		{"nginx exporter: load and requests, no errors metric", &regions.StatsSource{Type: "prometheus", URL: nginx.URL + "/metrics",
			Load: sel("nginx_connections_active"), Capacity: &regions.MetricSelector{Value: f(4096)},
			Requests: sel("nginx_http_requests_total"), Errors: sel("nginx_http_responses_total", "status", "5xx")},
			want{load: f(128), capacity: f(4096), countErr: "no metric nginx_http_responses_total on the stats page"}},
		{"nginx exporter: load only", &regions.StatsSource{Type: "prometheus", URL: nginx.URL + "/metrics", Load: sel("nginx_connections_active")},
			want{load: f(128)}},
		{"malformed", &regions.StatsSource{Type: "prometheus", URL: page(t, 200, "# TYPE a gauge\na{x=\"1\" 3\n"), Load: sel("a")},
			want{loadErr: "malformed Prometheus page: text format parsing error in line 2", countErr: "malformed"}},
		{"a value that is not a number", &regions.StatsSource{Type: "prometheus", URL: page(t, 200, "a NaN\n"), Load: sel("a")},
			want{loadErr: "a is NaN", countErr: "NaN"}},
		{"the lines of other metrics are not parsed", &regions.StatsSource{Type: "prometheus", URL: page(t, 200, "garbage that is no metric at all\na 5\n"), Load: sel("a")},
			want{load: f(5)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.want.check(t, readStats(t, tc.src, 5*time.Second)) })
	}
}

// TestPassiveWindow: errors ÷ requests since the newest reading at least
// a window old, with at least min_requests; counters that go back start
// again.
func TestPassiveWindow(t *testing.T) {
	spec := &passiveSpec{window: 10 * time.Second, minRequests: 100, errorRatio: 0.25, errWord: "5xx"}
	type step struct {
		after      time.Duration // since the start
		reqs, errs float64
		counted    bool
		known      bool
		fail       bool
		summary    string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"no verdict before a whole window", []step{
			{0, 0, 0, true, false, false, "counting: 0s of the 10s window seen"},
			{5 * time.Second, 500, 400, true, false, false, "counting: 5s of the 10s window seen"},
			{10 * time.Second, 1204, 445, true, true, true, "5xx 37% of 1,204 requests in 10s"},
		}},
		{"the window slides", []step{
			{0, 0, 0, true, false, false, ""},
			{5 * time.Second, 1000, 900, true, false, false, ""},
			{10 * time.Second, 2000, 900, true, true, true, "5xx 45% of 2,000 requests in 10s"},
			{15 * time.Second, 3000, 900, true, true, false, "5xx 0% of 2,000 requests in 10s"},
		}},
		{"too few requests", []step{
			{0, 0, 0, true, false, false, ""},
			{10 * time.Second, 99, 99, true, false, false, "99 of 99 requests in 10s: fewer than 100, no verdict"},
		}},
		{"a small ratio", []step{
			{0, 0, 0, true, false, false, ""},
			{11 * time.Second, 4000, 100, true, true, false, "5xx 2.5% of 4,000 requests in 11s"},
		}},
		{"counters that went back start the window again", []step{
			{0, 5000, 0, true, false, false, ""},
			{10 * time.Second, 6000, 0, true, true, false, ""},
			{20 * time.Second, 10, 10, true, false, false, "counting: 0s of the 10s window seen"},
			{30 * time.Second, 1010, 1010, true, true, true, "5xx 100% of 1,000 requests in 10s"},
		}},
		{"a failed read keeps the window", []step{
			{0, 0, 0, true, false, false, ""},
			{5 * time.Second, 0, 0, false, false, false, "timeout"},
			{10 * time.Second, 300, 100, true, true, true, "5xx 33% of 300 requests in 10s"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w passiveWindow
			for i, st := range tc.steps {
				rd := reading{at: t0.Add(st.after), requests: st.reqs, errors: st.errs, counted: st.counted}
				if !st.counted {
					rd.countErr = "timeout after 2s waiting for the stats page"
				}
				v := w.observe(spec, &rd)
				if v.known != st.known || v.fail != st.fail || !strings.Contains(v.summary, st.summary) {
					t.Fatalf("step %d: %+v, want known %t fail %t %q", i, v, st.known, st.fail, st.summary)
				}
			}
		})
	}
	t.Run("a long window over a short interval keeps few samples", func(t *testing.T) {
		var w passiveWindow
		s := &passiveSpec{window: time.Hour, minRequests: 1, errorRatio: 0.5}
		for i := range 20000 {
			rd := reading{at: t0.Add(time.Duration(i) * 100 * time.Millisecond), requests: float64(i), counted: true}
			w.observe(s, &rd)
		}
		if n := len(w.samples); n > maxWindowSamples+2 {
			t.Fatalf("%d samples kept", n)
		}
	})
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 12: "12", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(in); got != want {
			t.Errorf("%v: %q, want %q", in, got, want)
		}
	}
}
