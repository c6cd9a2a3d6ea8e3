package regions

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// StatsSource says where probers read a load balancer's own statistics
// for each VIP of a region: its load and capacity, and the requests and
// errors passive health judges (docs/health.md, The load signal).
type StatsSource struct {
	// Type is haproxy (HAProxy's CSV stats page) or prometheus (a page in
	// the Prometheus text format).
	Type string `json:"type" yaml:"type"`
	// URL is the page, http or https. "{host}" in it stands for the host
	// the VIP's check connects to (its check.address entry, or the VIP),
	// so one URL serves a region whose VIPs each have their own page.
	URL string `json:"url" yaml:"url"`
	// TLSSkipVerify accepts any certificate (https URLs).
	TLSSkipVerify bool `json:"tls_skip_verify,omitempty" yaml:"tls_skip_verify,omitempty"`
	// Proxy (haproxy) is the frontend or backend whose row is read; Side
	// picks the row when a listen section has both: "frontend" or
	// "backend" ("": the frontend row if there is one, else the backend).
	Proxy string `json:"proxy,omitempty" yaml:"proxy,omitempty"`
	Side  string `json:"side,omitempty" yaml:"side,omitempty"`
	// Load (prometheus, required) is what is in use now: active
	// connections, in-flight requests. Capacity is what the VIP can take,
	// a metric or a constant (for haproxy a constant replaces slim).
	Load     *MetricSelector `json:"load,omitempty" yaml:"load,omitempty"`
	Capacity *MetricSelector `json:"capacity,omitempty" yaml:"capacity,omitempty"`
	// Requests and Errors (prometheus) are counters of requests served
	// and of those that failed (5xx): what passive health reads. Set
	// both or neither.
	Requests *MetricSelector `json:"requests,omitempty" yaml:"requests,omitempty"`
	Errors   *MetricSelector `json:"errors,omitempty" yaml:"errors,omitempty"`
}

// MetricSelector picks series of one metric on a Prometheus page; the
// values of every series it matches are summed (a counter split by status
// code or method counts whole).
type MetricSelector struct {
	// Metric is the metric's name as the page writes it; a summary's or
	// histogram's NAME_count and NAME_sum are read too.
	Metric string `json:"metric,omitempty" yaml:"metric,omitempty"`
	// Labels must have exactly these values ("" matches a series without
	// the label); Match must match these regular expressions, whole (as
	// PromQL's =~ does).
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Match  map[string]string `json:"match,omitempty" yaml:"match,omitempty"`
	// Value is a constant instead of a metric (capacity only).
	Value *float64 `json:"value,omitempty" yaml:"value,omitempty"`
}

// PassiveHealth fails a VIP whose load balancer answers too many errors,
// as read from the region's stats: errors ÷ requests over Window, when at
// least MinRequests were served, above ErrorRatio. Such a failure counts
// like a failed check (rise and fall apply); on its own it never takes out
// more than a service's max_ejection.
type PassiveHealth struct {
	Window      Duration `json:"window,omitempty" yaml:"window,omitempty"`             // default 10s
	MinRequests int      `json:"min_requests,omitempty" yaml:"min_requests,omitempty"` // default 100
	// ErrorRatio is the share of errors above which the VIP fails, 0 to
	// below 1; nil means DefaultErrorRatio.
	ErrorRatio *float64 `json:"error_ratio,omitempty" yaml:"error_ratio,omitempty"`
}

// The stats and passive health defaults and limits (docs/health.md).
const (
	StatsHAProxy    = "haproxy"
	StatsPrometheus = "prometheus"
	// LoadSourceHealth marks a load read from the check's own JSON
	// answer; a load read from stats carries the stats type.
	LoadSourceHealth = "health"
	// MaxStatsBody is how much of a stats page a prober reads; a larger
	// page gives no load. Filter big pages at the source (HAProxy's
	// ;csv;scope=, Envoy's ?filter=).
	MaxStatsBody              = 4 << 20
	DefaultPassiveWindow      = 10 * time.Second
	MaxPassiveWindow          = time.Hour
	DefaultPassiveMinRequests = 100
	DefaultErrorRatio         = 0.5
	// DefaultMaxEjection is the share of a service's healthy capacity
	// that passive health alone may take out.
	DefaultMaxEjection = 0.5
	// StatsHostPlaceholder in a stats URL stands for the host the VIP's
	// check connects to.
	StatsHostPlaceholder = "{host}"
	maxStatsURL          = 2048
	maxSelectorEntries   = 32
)

// withDefaults fills the zero fields of a passive check.
func (ph PassiveHealth) withDefaults() PassiveHealth {
	if ph.Window == 0 {
		ph.Window = Duration(DefaultPassiveWindow)
	}
	if ph.MinRequests == 0 {
		ph.MinRequests = DefaultPassiveMinRequests
	}
	if ph.ErrorRatio == nil {
		r := DefaultErrorRatio
		ph.ErrorRatio = &r
	}
	return ph
}

// StatsURL is the stats page of vip: URL with {host} replaced by the
// host vip's check connects to ("" without stats).
func (c *HealthCheck) StatsURL(vip netip.Addr) string {
	if c.Stats == nil {
		return ""
	}
	if !strings.Contains(c.Stats.URL, StatsHostPlaceholder) {
		return c.Stats.URL
	}
	host, _, err := net.SplitHostPort(c.Target(vip))
	if err != nil {
		return c.Stats.URL
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return strings.ReplaceAll(c.Stats.URL, StatsHostPlaceholder, host)
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// validateStats checks the stats source and the passive check; interval
// is the check's interval with its default.
func (c *HealthCheck) validateStats(p *problems, interval time.Duration) {
	if c.Passive != nil {
		c.Passive.validate(p, c.Stats, interval)
	}
	s := c.Stats
	if s == nil {
		return
	}
	switch s.Type {
	case StatsHAProxy:
		if s.Proxy == "" {
			p.add("check.stats.proxy", "haproxy stats need the name of a frontend or backend")
		} else if len(s.Proxy) > 128 || strings.ContainsAny(s.Proxy, ",\r\n\"") {
			p.add("check.stats.proxy", "%q: want a proxy name (no commas, quotes or line breaks, at most 128)", s.Proxy)
		}
		switch s.Side {
		case "", "frontend", "backend":
		default:
			p.add("check.stats.side", "%q: want frontend or backend", s.Side)
		}
		for _, f := range []struct {
			name string
			set  bool
		}{{"load", s.Load != nil}, {"requests", s.Requests != nil}, {"errors", s.Errors != nil}} {
			if f.set {
				p.add("check.stats."+f.name, "haproxy stats read scur, slim, req_tot and hrsp_5xx; metrics are for prometheus")
			}
		}
		if s.Capacity != nil {
			if s.Capacity.Value == nil || s.Capacity.Metric != "" || len(s.Capacity.Labels) > 0 || len(s.Capacity.Match) > 0 {
				p.add("check.stats.capacity", "haproxy stats take a constant capacity (value) or read slim")
			} else {
				s.Capacity.validate(p, "check.stats.capacity", true)
			}
		}
	case StatsPrometheus:
		if s.Proxy != "" || s.Side != "" {
			p.add("check.stats.proxy", "proxy and side are for haproxy stats")
		}
		if s.Load == nil {
			p.add("check.stats.load", "prometheus stats need the load metric (active connections, in-flight requests)")
		} else {
			s.Load.validate(p, "check.stats.load", false)
		}
		if s.Capacity != nil {
			s.Capacity.validate(p, "check.stats.capacity", true)
		}
		if (s.Requests == nil) != (s.Errors == nil) {
			p.add("check.stats.requests", "set requests and errors together: passive health reads their ratio")
		}
		if s.Requests != nil {
			s.Requests.validate(p, "check.stats.requests", false)
		}
		if s.Errors != nil {
			s.Errors.validate(p, "check.stats.errors", false)
		}
	default:
		p.add("check.stats.type", "%q: want haproxy or prometheus", s.Type)
	}
	u, err := checkStatsURL(s.URL)
	if err != nil {
		p.add("check.stats.url", "%v", err)
	} else if s.TLSSkipVerify && u.Scheme != "https" {
		p.add("check.stats.tls_skip_verify", "only an https URL uses TLS")
	}
}

// checkStatsURL parses a stats URL, {host} standing for an address.
func checkStatsURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("a stats source needs the URL of its page")
	}
	if len(raw) > maxStatsURL {
		return nil, fmt.Errorf("%d characters, at most %d", len(raw), maxStatsURL)
	}
	probe := strings.ReplaceAll(raw, StatsHostPlaceholder, "192.0.2.1")
	if strings.ContainsAny(probe, "{}") {
		return nil, fmt.Errorf("%q: the only placeholder is %s", raw, StatsHostPlaceholder)
	}
	u, err := url.Parse(probe)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", raw)
	case u.User != nil:
		return nil, fmt.Errorf("%q: no credentials in the URL (the API shows regions to its readers); let the page answer the probers' addresses", raw)
	case u.Fragment != "":
		return nil, fmt.Errorf("%q: no fragment", raw)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port: want 1 to 65535", raw)
		}
	}
	if h := u.Hostname(); !(h == "192.0.2.1" && strings.Contains(raw, StatsHostPlaceholder)) && !validCheckHost(h) {
		return nil, fmt.Errorf("%q: the host is not an IP address or a host name", raw)
	}
	return u, nil
}

// validate checks a selector; constOK allows a constant value.
func (m *MetricSelector) validate(p *problems, field string, constOK bool) {
	if m.Value != nil {
		switch {
		case !constOK:
			p.add(field+".value", "only a capacity can be a constant")
		case m.Metric != "" || len(m.Labels) > 0 || len(m.Match) > 0:
			p.add(field, "a metric or a constant value, not both")
		case math.IsNaN(*m.Value) || math.IsInf(*m.Value, 0) || *m.Value <= 0:
			p.add(field+".value", "%v: want a number above 0", *m.Value)
		}
		return
	}
	if m.Metric == "" {
		p.add(field+".metric", "the metric's name is missing")
	} else if !metricNameRE.MatchString(m.Metric) {
		p.add(field+".metric", "%q is not a metric name", m.Metric)
	}
	if len(m.Labels)+len(m.Match) > maxSelectorEntries {
		p.add(field, "%d label matchers, at most %d", len(m.Labels)+len(m.Match), maxSelectorEntries)
	}
	for _, k := range sortedKeys(m.Labels) {
		if !labelNameRE.MatchString(k) {
			p.add(field+".labels."+k, "%q is not a label name", k)
		}
	}
	for _, k := range sortedKeys(m.Match) {
		if !labelNameRE.MatchString(k) {
			p.add(field+".match."+k, "%q is not a label name", k)
			continue
		}
		if _, ok := m.Labels[k]; ok {
			p.add(field+".match."+k, "label %s is also in labels", k)
		}
		if _, err := CompileLabelMatch(m.Match[k]); err != nil {
			p.add(field+".match."+k, "%q: %v", m.Match[k], err)
		}
	}
}

// CompileLabelMatch compiles a label's regular expression, anchored at
// both ends as PromQL anchors =~.
func CompileLabelMatch(expr string) (*regexp.Regexp, error) {
	if len(expr) > 512 {
		return nil, fmt.Errorf("%d characters, at most 512", len(expr))
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("not a regular expression: %w", err)
	}
	return re, nil
}

func (ph *PassiveHealth) validate(p *problems, s *StatsSource, interval time.Duration) {
	switch {
	case s == nil:
		p.add("check.passive", "passive health reads the load balancer's statistics: set check.stats")
	case s.Type == StatsPrometheus && (s.Requests == nil || s.Errors == nil):
		p.add("check.passive", "passive health needs the requests and errors metrics in check.stats")
	}
	if w := time.Duration(ph.Window); w < 0 || (w > 0 && (w < interval || w > MaxPassiveWindow)) {
		p.add("check.passive.window", "%s: want from the check's interval (%s) to %s", w, interval, MaxPassiveWindow)
	}
	if ph.MinRequests < 0 || ph.MinRequests > 1_000_000_000 {
		p.add("check.passive.min_requests", "%d: want 1 to 1000000000 (0 for %d)", ph.MinRequests, DefaultPassiveMinRequests)
	}
	if r := ph.ErrorRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r >= 1) {
		p.add("check.passive.error_ratio", "%v: want a ratio from 0 to below 1 (0.25 is 25%%)", *r)
	}
}

// validMaxEjection checks a service's max_ejection.
func validMaxEjection(p *problems, v *float64) {
	if v != nil && (math.IsNaN(*v) || *v < 0 || *v > 1) {
		p.add("max_ejection", "%v: want a ratio from 0 to 1 (0.5 is 50%%)", *v)
	}
}

// EffectiveMaxEjection is the share of the service's healthy capacity
// passive health alone may take out.
func (s *Service) EffectiveMaxEjection() float64 {
	if s.MaxEjection == nil {
		return DefaultMaxEjection
	}
	return *s.MaxEjection
}
