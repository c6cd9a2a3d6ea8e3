package dnsserver

import (
	"slices"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the query handler does. Counters are plain atomics
// bumped on the query path and turned into Prometheus metrics only when
// scraped, so counting costs a few nanoseconds.
type Metrics struct {
	// responses by transport (0 unused, ProtoUDP, ProtoTCP) and rcode.
	responses  [3][maxRcode + 1]paddedCounter
	dropped    atomic.Uint64
	truncated  atomic.Uint64
	panics     atomic.Uint64
	slowPath   atomic.Uint64
	xfrRefused atomic.Uint64
	xfrServed  atomic.Uint64
	cookies    [cookieMalformed + 1]atomic.Uint64
	steered    paddedCounter
	failOpen   atomic.Uint64
	waiting    atomic.Uint64
	tsigErrors [tsigBadTrunc + 1]atomic.Uint64 // by TSIG error code
	// regions counts steered answers by the region chosen; the table is
	// replaced with every snapshot (off the query path), keeping the
	// counters of the regions that stay.
	regions atomic.Pointer[map[string]*paddedCounter]
}

const maxRcode = 31 // extended rcodes above this are counted as 31

// paddedCounter keeps hot counters on cache lines of their own, so two
// cores answering queries do not fight over one line.
type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

// NewMetrics returns zeroed counters.
func NewMetrics() *Metrics { return &Metrics{} }

func (m *Metrics) count(p Proto, rcode int) {
	if int(p) >= len(m.responses) {
		return
	}
	m.responses[p][min(rcode, maxRcode)].Add(1)
}

// setRegions makes the per-region counters those of names and returns
// them in the order of names.
func (m *Metrics) setRegions(names []string) []*paddedCounter {
	old := m.regions.Load()
	next := make(map[string]*paddedCounter, len(names))
	for _, n := range names {
		if old != nil && (*old)[n] != nil {
			next[n] = (*old)[n]
		} else {
			next[n] = new(paddedCounter)
		}
	}
	m.regions.Store(&next)
	byIndex := make([]*paddedCounter, len(names))
	for i, n := range names {
		byIndex[i] = next[n]
	}
	return byIndex
}

// RegionAnswers is how many steered answers each region of the current
// snapshot has given since the server started.
func (m *Metrics) RegionAnswers() map[string]uint64 {
	out := map[string]uint64{}
	if t := m.regions.Load(); t != nil {
		for n, c := range *t {
			out[n] = c.Load()
		}
	}
	return out
}

// Panics is how many queries hit a bug and got SERVFAIL.
func (m *Metrics) Panics() uint64 { return m.panics.Load() }

var (
	descResponses = prometheus.NewDesc("meridian_dns_responses_total",
		"DNS replies sent, by transport and response code.", []string{"proto", "rcode"}, nil)
	descDropped = prometheus.NewDesc("meridian_dns_requests_dropped_total",
		"Messages not answered: shorter than a header, or responses (QR set).", nil, nil)
	descTruncated = prometheus.NewDesc("meridian_dns_responses_truncated_total",
		"UDP replies sent with TC set because the answer did not fit.", nil, nil)
	descPanics = prometheus.NewDesc("meridian_dns_handler_panics_total",
		"Queries answered SERVFAIL because the handler panicked (a bug).", nil, nil)
	descSlow = prometheus.NewDesc("meridian_dns_slow_path_total",
		"Answers packed per query because they could not be precompiled.", nil, nil)
	descXfr = prometheus.NewDesc("meridian_dns_transfers_total",
		"Zone transfer requests, by result.", []string{"result"}, nil)
	descSteered = prometheus.NewDesc("meridian_dns_steered_total",
		"Queries for service names decided by steering.", nil, nil)
	descFailOpen = prometheus.NewDesc("meridian_dns_fail_open_total",
		"Steered answers given as if every region were up, because none was.", nil, nil)
	descRegionAnswers = prometheus.NewDesc("meridian_dns_region_answers_total",
		"Steered answers, by the region answered.", []string{"region"}, nil)
	descCookies = prometheus.NewDesc("meridian_dns_cookies_total",
		"Queries carrying a DNS cookie, by what the cookie was.", []string{"state"}, nil)
	descWaiting = prometheus.NewDesc("meridian_dns_servfail_no_snapshot_total",
		"Denials (NXDOMAIN, NODATA) answered SERVFAIL because no regions snapshot was loaded yet.", nil, nil)
	descTSIG = prometheus.NewDesc("meridian_dns_tsig_errors_total",
		"Signed requests answered with a TSIG error, by TSIG error.", []string{"error"}, nil)
)

// rcodeName labels a reply's rcode. Rcodes above 15 live partly in the
// OPT record, where 16 means BADVERS (RFC 6891); the TSIG meaning of 16,
// BADSIG, is a TSIG error and never a reply's rcode here (see tsigName).
func rcodeName(rc int) string {
	switch rc {
	case dns.RcodeBadVers:
		return "BADVERS"
	case dns.RcodeBadCookie:
		return "BADCOOKIE"
	}
	if rc < 16 {
		if name, ok := dns.RcodeToString[rc]; ok {
			return name
		}
	}
	return "OTHER"
}

// TSIG errors (RFC 8945 §3): carried in the TSIG record, not the header.
const (
	tsigBadSig   = 16
	tsigBadKey   = 17
	tsigBadTime  = 18
	tsigBadTrunc = 22
)

// tsigName labels a TSIG error.
func tsigName(e int) string {
	switch e {
	case tsigBadSig:
		return "BADSIG"
	case tsigBadKey:
		return "BADKEY"
	case tsigBadTime:
		return "BADTIME"
	case tsigBadTrunc:
		return "BADTRUNC"
	}
	return "OTHER"
}

var cookieStateNames = [...]string{
	cookieNone:      "none",
	cookieClient:    "client_only",
	cookieBad:       "invalid",
	cookieValid:     "valid",
	cookieValidOld:  "valid_renewed",
	cookieMalformed: "malformed",
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descResponses, descDropped, descTruncated, descPanics, descSlow, descXfr, descCookies, descSteered, descFailOpen, descWaiting, descTSIG, descRegionAnswers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, p := range []Proto{ProtoUDP, ProtoTCP} {
		// Several rcodes may share the label OTHER: one series for them.
		byName := map[string]uint64{rcodeName(dns.RcodeSuccess): 0}
		var names []string
		for rc := range m.responses[p] {
			if v := m.responses[p][rc].Load(); v > 0 {
				name := rcodeName(rc)
				if _, seen := byName[name]; !seen {
					names = append(names, name)
				}
				byName[name] += v
			}
		}
		if !slices.Contains(names, rcodeName(dns.RcodeSuccess)) {
			names = append(names, rcodeName(dns.RcodeSuccess))
		}
		for _, name := range names {
			ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(byName[name]), p.String(), name)
		}
	}
	for e := range m.tsigErrors {
		if v := m.tsigErrors[e].Load(); v > 0 {
			ch <- prometheus.MustNewConstMetric(descTSIG, prometheus.CounterValue, float64(v), tsigName(e))
		}
	}
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.CounterValue, float64(m.waiting.Load()))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(m.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(descTruncated, prometheus.CounterValue, float64(m.truncated.Load()))
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(m.panics.Load()))
	ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(m.slowPath.Load()))
	ch <- prometheus.MustNewConstMetric(descXfr, prometheus.CounterValue, float64(m.xfrServed.Load()), "served")
	ch <- prometheus.MustNewConstMetric(descXfr, prometheus.CounterValue, float64(m.xfrRefused.Load()), "refused")
	ch <- prometheus.MustNewConstMetric(descSteered, prometheus.CounterValue, float64(m.steered.Load()))
	ch <- prometheus.MustNewConstMetric(descFailOpen, prometheus.CounterValue, float64(m.failOpen.Load()))
	for region, n := range m.RegionAnswers() {
		ch <- prometheus.MustNewConstMetric(descRegionAnswers, prometheus.CounterValue, float64(n), region)
	}
	for st := cookieClient; st <= cookieMalformed; st++ {
		ch <- prometheus.MustNewConstMetric(descCookies, prometheus.CounterValue, float64(m.cookies[st].Load()), cookieStateNames[st])
	}
}

// TransportCollector exposes a transport's counters to Prometheus.
func TransportCollector(t *Transport) prometheus.Collector { return transportCollector{t} }

type transportCollector struct{ t *Transport }

var descTransport = struct {
	udpIn, udpOut, udpDropped, udpTrunc, udpSendErr, udpRecvErr                  *prometheus.Desc
	tcpAccepted, tcpRejected, tcpActive, tcpQueries, tcpIdle, tcpTimeout, tcpErr *prometheus.Desc
	panics                                                                       *prometheus.Desc
}{
	udpIn:       prometheus.NewDesc("meridian_dns_udp_received_total", "UDP datagrams received.", nil, nil),
	udpOut:      prometheus.NewDesc("meridian_dns_udp_sent_total", "UDP replies sent.", nil, nil),
	udpDropped:  prometheus.NewDesc("meridian_dns_udp_unanswered_total", "UDP datagrams the handler did not answer.", nil, nil),
	udpTrunc:    prometheus.NewDesc("meridian_dns_udp_oversized_total", "UDP datagrams larger than the receive buffer, dropped.", nil, nil),
	udpSendErr:  prometheus.NewDesc("meridian_dns_udp_send_errors_total", "UDP replies the kernel refused.", nil, nil),
	udpRecvErr:  prometheus.NewDesc("meridian_dns_udp_receive_errors_total", "Transient UDP receive errors.", nil, nil),
	tcpAccepted: prometheus.NewDesc("meridian_dns_tcp_connections_accepted_total", "TCP connections accepted.", nil, nil),
	tcpRejected: prometheus.NewDesc("meridian_dns_tcp_connections_rejected_total", "TCP connections closed at once: too many open.", nil, nil),
	tcpActive:   prometheus.NewDesc("meridian_dns_tcp_connections_open", "TCP connections open now.", nil, nil),
	tcpQueries:  prometheus.NewDesc("meridian_dns_tcp_queries_total", "Messages received over TCP.", nil, nil),
	tcpIdle:     prometheus.NewDesc("meridian_dns_tcp_idle_closed_total", "TCP connections closed after the idle timeout.", nil, nil),
	tcpTimeout:  prometheus.NewDesc("meridian_dns_tcp_read_timeouts_total", "TCP connections closed with a partly received message.", nil, nil),
	tcpErr:      prometheus.NewDesc("meridian_dns_tcp_errors_total", "TCP connections closed on a write error or oversized reply.", nil, nil),
	panics:      prometheus.NewDesc("meridian_dns_transport_panics_total", "Handler panics caught by the transport.", nil, nil),
}

func (c transportCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c transportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	d := descTransport
	for _, m := range []struct {
		desc *prometheus.Desc
		v    uint64
		kind prometheus.ValueType
	}{
		{d.udpIn, s.UDPPacketsIn, prometheus.CounterValue},
		{d.udpOut, s.UDPPacketsOut, prometheus.CounterValue},
		{d.udpDropped, s.UDPDropped, prometheus.CounterValue},
		{d.udpTrunc, s.UDPTruncated, prometheus.CounterValue},
		{d.udpSendErr, s.UDPSendErrors, prometheus.CounterValue},
		{d.udpRecvErr, s.UDPRecvErrors, prometheus.CounterValue},
		{d.tcpAccepted, s.TCPAccepted, prometheus.CounterValue},
		{d.tcpRejected, s.TCPRejected, prometheus.CounterValue},
		{d.tcpActive, s.TCPActive, prometheus.GaugeValue},
		{d.tcpQueries, s.TCPQueries, prometheus.CounterValue},
		{d.tcpIdle, s.TCPIdleClosed, prometheus.CounterValue},
		{d.tcpTimeout, s.TCPReadTimeout, prometheus.CounterValue},
		{d.tcpErr, s.TCPErrors, prometheus.CounterValue},
		{d.panics, s.HandlerPanics, prometheus.CounterValue},
	} {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.v))
	}
}
