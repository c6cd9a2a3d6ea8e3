package regions

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestStatsValidate(t *testing.T) {
	vip4, vip6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	num := func(f float64) *float64 { return &f }
	haproxy := func(f func(*StatsSource)) *StatsSource {
		s := &StatsSource{Type: "haproxy", URL: "http://{host}:8404/stats;csv", Proxy: "www"}
		if f != nil {
			f(s)
		}
		return s
	}
	prom := func(f func(*StatsSource)) *StatsSource {
		s := &StatsSource{Type: "prometheus", URL: "https://lb.example:9901/stats/prometheus",
			Load:     &MetricSelector{Metric: "envoy_http_downstream_rq_active", Labels: map[string]string{"envoy_http_conn_manager_prefix": "ingress_http"}},
			Capacity: &MetricSelector{Value: num(1000)},
			Requests: &MetricSelector{Metric: "envoy_http_downstream_rq_total"},
			Errors:   &MetricSelector{Metric: "envoy_http_downstream_rq_xx", Labels: map[string]string{"envoy_response_code_class": "5"}}}
		if f != nil {
			f(s)
		}
		return s
	}
	passive := &PassiveHealth{Window: Duration(10 * time.Second), MinRequests: 50, ErrorRatio: num(0.25)}
	cases := []struct {
		name    string
		stats   *StatsSource
		passive *PassiveHealth
		want    []string // field: message fragments; none means valid
	}{
		{"haproxy", haproxy(nil), passive, nil},
		{"haproxy backend with a constant capacity", haproxy(func(s *StatsSource) { s.Side = "backend"; s.Capacity = &MetricSelector{Value: num(500)} }), nil, nil},
		{"prometheus", prom(nil), passive, nil},
		{"prometheus with a regular expression and a capacity metric", prom(func(s *StatsSource) {
			s.Errors = &MetricSelector{Metric: "traefik_service_requests_total", Match: map[string]string{"code": "5.."}}
			s.Capacity = &MetricSelector{Metric: "lb_capacity"}
		}), passive, nil},
		{"prometheus load only", prom(func(s *StatsSource) { s.Requests, s.Errors = nil, nil }), nil, nil},
		{"https with tls_skip_verify", haproxy(func(s *StatsSource) { s.URL = "https://[2001:db8::9]:8404/stats;csv"; s.TLSSkipVerify = true }), nil, nil},
		{"unknown type", haproxy(func(s *StatsSource) { s.Type = "nginx" }), nil, []string{"check.stats.type: \"nginx\": want haproxy or prometheus"}},
		{"no URL", haproxy(func(s *StatsSource) { s.URL = "" }), nil, []string{"check.stats.url: a stats source needs the URL"}},
		{"not http", haproxy(func(s *StatsSource) { s.URL = "ftp://lb/stats" }), nil, []string{"check.stats.url", "want an http:// or https:// URL"}},
		{"relative URL", haproxy(func(s *StatsSource) { s.URL = "/stats;csv" }), nil, []string{"check.stats.url"}},
		{"credentials", haproxy(func(s *StatsSource) { s.URL = "http://admin:secret@lb:8404/stats;csv" }), nil, []string{"check.stats.url", "no credentials"}},
		{"bad port", haproxy(func(s *StatsSource) { s.URL = "http://lb:99999/stats;csv" }), nil, []string{"check.stats.url", "port"}},
		{"unknown placeholder", haproxy(func(s *StatsSource) { s.URL = "http://{vip}:8404/" }), nil, []string{"check.stats.url", "the only placeholder is {host}"}},
		{"tls_skip_verify over http", haproxy(func(s *StatsSource) { s.TLSSkipVerify = true }), nil, []string{"check.stats.tls_skip_verify"}},
		{"haproxy without proxy", haproxy(func(s *StatsSource) { s.Proxy = "" }), nil, []string{"check.stats.proxy: haproxy stats need"}},
		{"haproxy proxy with a comma", haproxy(func(s *StatsSource) { s.Proxy = "a,b" }), nil, []string{"check.stats.proxy"}},
		{"haproxy side", haproxy(func(s *StatsSource) { s.Side = "server" }), nil, []string{"check.stats.side"}},
		{"haproxy with metrics", haproxy(func(s *StatsSource) { s.Load = &MetricSelector{Metric: "x"} }), nil, []string{"check.stats.load: haproxy stats read scur"}},
		{"haproxy capacity metric", haproxy(func(s *StatsSource) { s.Capacity = &MetricSelector{Metric: "x"} }), nil, []string{"check.stats.capacity"}},
		{"prometheus without load", prom(func(s *StatsSource) { s.Load = nil }), nil, []string{"check.stats.load: prometheus stats need the load metric"}},
		{"metric name missing", prom(func(s *StatsSource) { s.Load.Metric = "" }), nil, []string{"check.stats.load.metric: the metric's name is missing"}},
		{"bad metric name", prom(func(s *StatsSource) { s.Requests.Metric = "rq-total" }), passive, []string{"check.stats.requests.metric: \"rq-total\" is not a metric name"}},
		{"bad label name", prom(func(s *StatsSource) { s.Errors.Labels = map[string]string{"class-5": "5"} }), nil, []string{"check.stats.errors.labels.class-5"}},
		{"bad regular expression", prom(func(s *StatsSource) { s.Errors.Match = map[string]string{"code": "5[0-9"} }), nil, []string{"check.stats.errors.match.code", "not a regular expression"}},
		{"label and regular expression on one label", prom(func(s *StatsSource) { s.Errors.Match = map[string]string{"envoy_response_code_class": "5"} }), nil,
			[]string{"check.stats.errors.match.envoy_response_code_class: label envoy_response_code_class is also in labels"}},
		{"requests without errors", prom(func(s *StatsSource) { s.Errors = nil }), nil, []string{"check.stats.requests: set requests and errors together"}},
		{"load as a constant", prom(func(s *StatsSource) { s.Load = &MetricSelector{Value: num(5)} }), nil, []string{"check.stats.load.value: only a capacity"}},
		{"capacity zero", prom(func(s *StatsSource) { s.Capacity = &MetricSelector{Value: num(0)} }), nil, []string{"check.stats.capacity.value: 0: want a number above 0"}},
		{"capacity metric and value", prom(func(s *StatsSource) { s.Capacity = &MetricSelector{Metric: "x", Value: num(5)} }), nil, []string{"check.stats.capacity: a metric or a constant"}},
		{"prometheus with proxy", prom(func(s *StatsSource) { s.Proxy = "www" }), nil, []string{"check.stats.proxy: proxy and side are for haproxy"}},
		{"passive without stats", nil, passive, []string{"check.passive: passive health reads the load balancer's statistics"}},
		{"passive without the counters", prom(func(s *StatsSource) { s.Requests, s.Errors = nil, nil }), passive, []string{"check.passive: passive health needs the requests and errors"}},
		{"error ratio above 1", haproxy(nil), &PassiveHealth{ErrorRatio: num(1.5)}, []string{"check.passive.error_ratio: 1.5: want a ratio from 0 to below 1"}},
		{"error ratio negative", haproxy(nil), &PassiveHealth{ErrorRatio: num(-0.1)}, []string{"check.passive.error_ratio"}},
		{"error ratio 1", haproxy(nil), &PassiveHealth{ErrorRatio: num(1)}, []string{"check.passive.error_ratio"}},
		{"window shorter than the interval", haproxy(nil), &PassiveHealth{Window: Duration(time.Second)}, []string{"check.passive.window: 1s: want from the check's interval (5s)"}},
		{"window too long", haproxy(nil), &PassiveHealth{Window: Duration(2 * time.Hour)}, []string{"check.passive.window"}},
		{"min_requests negative", haproxy(nil), &PassiveHealth{MinRequests: -1}, []string{"check.passive.min_requests"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Region{Name: "r", VIPs: []netip.Addr{vip4, vip6}, Check: HealthCheck{Type: "tcp", Port: 443, Stats: tc.stats, Passive: tc.passive}}
			wantProblems(t, r.Validate(), tc.want)
		})
	}
}

func TestMaxEjectionValidate(t *testing.T) {
	regions := map[string]*Region{"a": {Name: "a"}}
	for _, tc := range []struct {
		v    *float64
		want string
	}{{nil, ""}, {ratio(0), ""}, {ratio(0.3), ""}, {ratio(1), ""}, {ratio(1.01), "max_ejection: 1.01: want a ratio from 0 to 1"}, {ratio(-1), "max_ejection"}} {
		s := &Service{Name: "www.example.", TTL: 60, Policy: PolicyWeighted, Regions: []ServiceRegion{{Region: "a", Weight: 1}}, MaxEjection: tc.v}
		err := s.Validate(regions, nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.v, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want %q", *tc.v, err, tc.want)
		}
	}
	if got := (&Service{}).EffectiveMaxEjection(); got != DefaultMaxEjection {
		t.Errorf("default %v", got)
	}
}

// TestStatsURLAndDefaults: {host} is the host the VIP's check connects
// to; a passive check gets its defaults without the region's own
// changing.
func TestStatsURLAndDefaults(t *testing.T) {
	vip4, vip6, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.2")
	c := HealthCheck{Type: "http", Port: 80, Address: map[netip.Addr]string{vip4: "10.0.0.5:8080", vip6: "lb6.example"},
		Stats: &StatsSource{Type: "haproxy", URL: "http://{host}:8404/stats;csv", Proxy: "www"}, Passive: &PassiveHealth{}}
	for vip, want := range map[netip.Addr]string{
		vip4: "http://10.0.0.5:8404/stats;csv", vip6: "http://lb6.example:8404/stats;csv", other: "http://192.0.2.2:8404/stats;csv",
		netip.MustParseAddr("2001:db8::9"): "http://[2001:db8::9]:8404/stats;csv",
	} {
		if got := c.StatsURL(vip); got != want {
			t.Errorf("%s: %s, want %s", vip, got, want)
		}
	}
	d := c.WithDefaults()
	if p := d.Passive; p.Window != Duration(DefaultPassiveWindow) || p.MinRequests != DefaultPassiveMinRequests || *p.ErrorRatio != DefaultErrorRatio {
		t.Errorf("passive defaults %+v", p)
	}
	if c.Passive.ErrorRatio != nil || c.Passive.Window != 0 {
		t.Errorf("WithDefaults changed the region's own check: %+v", c.Passive)
	}
	if (&HealthCheck{}).StatsURL(vip4) != "" {
		t.Error("a stats URL without stats")
	}
}

// TestStatsEncoding: the stats and passive settings read from YAML (the
// desired state, ctl apply) as the docs write them and survive JSON.
func TestStatsEncoding(t *testing.T) {
	const doc = `
type: http
port: 80
stats:
  type: prometheus
  url: http://{host}:8082/metrics
  load: {metric: traefik_entrypoint_open_connections, labels: {entrypoint: websecure}}
  capacity: {value: 2000}
  requests: {metric: traefik_entrypoint_requests_total, labels: {entrypoint: websecure}}
  errors: {metric: traefik_entrypoint_requests_total, labels: {entrypoint: websecure}, match: {code: "5.."}}
passive: {window: 30s, min_requests: 200, error_ratio: 0.2}
`
	var c HealthCheck
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Stats == nil || c.Stats.Errors.Match["code"] != "5.." || *c.Stats.Capacity.Value != 2000 || c.Passive.Window != Duration(30*time.Second) || *c.Passive.ErrorRatio != 0.2 {
		t.Fatalf("read %+v %+v", c.Stats, c.Passive)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back HealthCheck
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Stats.Load.Labels["entrypoint"] != "websecure" || back.Passive.MinRequests != 200 || !strings.Contains(string(b), `"window":"30s"`) {
		t.Fatalf("JSON %s", b)
	}
}
