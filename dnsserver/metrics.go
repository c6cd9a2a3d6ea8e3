package dnsserver

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-gslb/meridian/internal/labelshare"
	"github.com/meridian-gslb/meridian/regions"
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
	waiting    atomic.Uint64
	tsigErrors [tsigBadTrunc + 1]atomic.Uint64 // by TSIG error code
	// regions counts steered answers by the region chosen and the
	// client's continent, services the answers of each service. The
	// tables are replaced with the snapshots that change their names (off
	// the query path), keeping the counters of the names that stay; a
	// snapshot's steering holds its counters by region and service index,
	// so that the query path looks nothing up.
	setMu    sync.Mutex // serializes the replacements
	regions  atomic.Pointer[map[string]*regionCounters]
	services atomic.Pointer[map[string]*serviceCounters]
	// pairs counts each service's answers by the region answered, for
	// the dashboard's traffic by service (no Prometheus family: a series
	// per service and region would be too many).
	pairs atomic.Pointer[map[string]*pairCounters]
}

// ContinentLabels label the answer counters by the client's continent:
// index 0 is a client whose continent is not known, index i+1 is
// regions.Continents[i] (see regions.Snapshot.ClientContinent).
var ContinentLabels = func() (l [regions.NumContinents + 1]string) {
	l[0] = "unknown"
	copy(l[1:], regions.Continents[:])
	return l
}()

// regionCounters count one region's answers by the client's continent
// (ContinentLabels' order); each counter has its cache line, as many
// cores add to them.
type regionCounters struct {
	byContinent [regions.NumContinents + 1]paddedCounter
}

// serviceCounters count one service's replies: answers with addresses,
// NODATA (a type other than A and AAAA, or no address to give), and
// answers given failing open. One cache line per service.
type serviceCounters struct {
	answers, nodata, failOpen atomic.Uint64
	_                         [40]byte
}

// pairCounters count one service's answers by the region answered, by
// the region's position in the service (regions.ServiceView.RegionPos),
// so that the query path looks nothing up. A counter stays with its
// region's name across snapshots.
type pairCounters struct {
	service string
	names   []string // the service's regions, in its order
	byPos   []*atomic.Uint64
	byName  map[string]*atomic.Uint64 // read-only once made
}

// sameRegions says whether pc counts the regions v answers with, in
// the same order.
func (pc *pairCounters) sameRegions(v *regions.ServiceView) bool {
	if pc == nil || pc.service != v.Name() || len(pc.names) != v.NumRegions() {
		return false
	}
	for i, n := range pc.names {
		if v.RegionName(i) != n {
			return false
		}
	}
	return true
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

// renameCounters makes the counters of table those of names, keeping
// the ones of the names that stay, and returns them in the order of names.
func renameCounters[C any](table *atomic.Pointer[map[string]*C], names []string) []*C {
	old := table.Load()
	next := make(map[string]*C, len(names))
	for _, n := range names {
		if old != nil && (*old)[n] != nil {
			next[n] = (*old)[n]
		} else {
			next[n] = new(C)
		}
	}
	table.Store(&next)
	byIndex := make([]*C, len(names))
	for i, n := range names {
		byIndex[i] = next[n]
	}
	return byIndex
}

// setRegions makes the per-region counters those of names and returns
// them in the order of names.
func (m *Metrics) setRegions(names []string) []*regionCounters {
	m.setMu.Lock()
	defer m.setMu.Unlock()
	return renameCounters(&m.regions, names)
}

// setServices makes the per-service counters those of names and returns
// them in the order of names.
func (m *Metrics) setServices(names []string) []*serviceCounters {
	m.setMu.Lock()
	defer m.setMu.Unlock()
	return renameCounters(&m.services, names)
}

// setPairs makes the counters by service and region those of s's
// services and returns them by service index. prev are the ones of the
// snapshot served before: when every service of s answers with the same
// regions in the same order (the usual case: health or weights changed),
// they serve as they are and nothing is allocated.
func (m *Metrics) setPairs(s *regions.Snapshot, prev []*pairCounters) []*pairCounters {
	m.setMu.Lock()
	defer m.setMu.Unlock()
	n := s.NumServices()
	if len(prev) == n && m.pairs.Load() != nil {
		same := true
		for i := range n {
			if !prev[i].sameRegions(s.ServiceAt(i)) {
				same = false
				break
			}
		}
		if same {
			return prev
		}
	}
	var old map[string]*pairCounters
	if t := m.pairs.Load(); t != nil {
		old = *t
	}
	next := make(map[string]*pairCounters, n)
	byIndex := make([]*pairCounters, n)
	for i := range n {
		v := s.ServiceAt(i)
		pc := old[v.Name()]
		if !pc.sameRegions(v) {
			made := &pairCounters{service: v.Name(), names: make([]string, v.NumRegions()),
				byPos: make([]*atomic.Uint64, v.NumRegions()), byName: make(map[string]*atomic.Uint64, v.NumRegions())}
			for j := range made.names {
				name := v.RegionName(j)
				var c *atomic.Uint64
				if pc != nil {
					c = pc.byName[name]
				}
				if c == nil {
					c = new(atomic.Uint64)
				}
				made.names[j], made.byPos[j], made.byName[name] = name, c, c
			}
			pc = made
		}
		next[v.Name()] = pc
		byIndex[i] = pc
	}
	m.pairs.Store(&next)
	return byIndex
}

// count counts an answer of pc's service from the region at index
// region of v's snapshot.
func (pc *pairCounters) count(v *regions.ServiceView, region int) {
	if pos := v.RegionPos(region); pc != nil && pos >= 0 && pos < len(pc.byPos) {
		pc.byPos[pos].Add(1)
	}
}

// RegionAnswerCounts are a region's steered answers since the server
// started: all of them, and by the client's continent (ContinentLabels'
// order).
type RegionAnswerCounts struct {
	Total       uint64
	ByContinent [regions.NumContinents + 1]uint64
}

// ServiceAnswerCounts are a service's replies since the server started.
type ServiceAnswerCounts struct {
	// Answers counts the replies with addresses, FailOpen those of them
	// given failing open, NoData the replies without (NODATA).
	Answers, NoData, FailOpen uint64
	// ByRegion counts the steered answers by the region answered, for
	// the regions with at least one (nil when none has).
	ByRegion map[string]uint64
}

// AnswerCounts are the answer counters of the regions and services of
// the current snapshot, read at one moment, for metrics and for the
// server's own views of where answers go (which poll them: a read costs
// a map per table and no lock the query path takes).
type AnswerCounts struct {
	Regions  map[string]RegionAnswerCounts
	Services map[string]ServiceAnswerCounts
}

// Answers reads the answer counters.
func (m *Metrics) Answers() AnswerCounts {
	out := AnswerCounts{Regions: map[string]RegionAnswerCounts{}, Services: map[string]ServiceAnswerCounts{}}
	if t := m.regions.Load(); t != nil {
		for n, c := range *t {
			var rc RegionAnswerCounts
			for i := range c.byContinent {
				rc.ByContinent[i] = c.byContinent[i].Load()
				rc.Total += rc.ByContinent[i]
			}
			out.Regions[n] = rc
		}
	}
	if t := m.services.Load(); t != nil {
		for n, c := range *t {
			out.Services[n] = ServiceAnswerCounts{Answers: c.answers.Load(), NoData: c.nodata.Load(), FailOpen: c.failOpen.Load()}
		}
	}
	if t := m.pairs.Load(); t != nil {
		for n, pc := range *t {
			sc, ok := out.Services[n]
			if !ok {
				continue
			}
			for region, c := range pc.byName {
				if v := c.Load(); v > 0 {
					if sc.ByRegion == nil {
						sc.ByRegion = map[string]uint64{}
					}
					sc.ByRegion[region] = v
				}
			}
			out.Services[n] = sc
		}
	}
	return out
}

// RegionAnswers is how many steered answers each region of the current
// snapshot has given since the server started.
func (m *Metrics) RegionAnswers() map[string]uint64 {
	out := map[string]uint64{}
	if t := m.regions.Load(); t != nil {
		for n, c := range *t {
			var sum uint64
			for i := range c.byContinent {
				sum += c.byContinent[i].Load()
			}
			out[n] = sum
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
		"Steered answers of a service given as if every region were up, because none was, by service.", []string{"service"}, nil)
	descRegionAnswers = prometheus.NewDesc("meridian_dns_region_answers_total",
		"Steered answers, by the region answered.", []string{"region"}, nil)
	descContinentAnswers = prometheus.NewDesc("meridian_dns_region_continent_answers_total",
		"Steered answers, by the region answered and the client's continent (unknown: not located).", []string{"region", "continent"}, nil)
	descServiceAnswers = prometheus.NewDesc("meridian_dns_service_answers_total",
		"Replies with addresses to queries for a service name, by service.", []string{"service"}, nil)
	descServiceNoData = prometheus.NewDesc("meridian_dns_service_nodata_total",
		"NODATA replies to queries for a service name (a type other than A and AAAA, or no address of the type to give), by service.", []string{"service"}, nil)
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
	for _, d := range []*prometheus.Desc{descResponses, descDropped, descTruncated, descPanics, descSlow, descXfr, descCookies, descSteered, descFailOpen, descWaiting, descTSIG,
		descRegionAnswers, descContinentAnswers, descServiceAnswers, descServiceNoData} {
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
	// BADKEY, the error of every signed request (no TSIG key is
	// configured), shows from the start, so that its rate is defined
	// before the first one; others only once counted.
	for e := range m.tsigErrors {
		if v := m.tsigErrors[e].Load(); v > 0 || e == tsigBadKey {
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
	ac := m.Answers()
	for region, rc := range ac.Regions {
		ch <- prometheus.MustNewConstMetric(descRegionAnswers, prometheus.CounterValue, float64(rc.Total), region)
		for i, n := range rc.ByContinent {
			ch <- prometheus.MustNewConstMetric(descContinentAnswers, prometheus.CounterValue, float64(n), region, ContinentLabels[i])
		}
	}
	// Three series per service, sharing their label (a scrape holds all
	// of them at once; see internal/labelshare).
	for svc, sc := range ac.Services {
		labels := []*dto.LabelPair{labelshare.Pair("service", svc)}
		ch <- labelshare.New(descServiceAnswers, prometheus.CounterValue, float64(sc.Answers), labels)
		ch <- labelshare.New(descServiceNoData, prometheus.CounterValue, float64(sc.NoData), labels)
		ch <- labelshare.New(descFailOpen, prometheus.CounterValue, float64(sc.FailOpen), labels)
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
	panics, answerTime                                                           *prometheus.Desc
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
	answerTime: prometheus.NewDesc("meridian_dns_answer_duration_seconds",
		"Time a reply took in the server, by transport: over UDP from the receipt of its batch of datagrams to the batch's sending, over TCP from the whole message read to the reply written.", []string{"proto"}, nil),
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
	udp, tcp := c.t.AnswerTimes()
	ch <- udp.Metric(d.answerTime, ProtoUDP.String())
	ch <- tcp.Metric(d.answerTime, ProtoTCP.String())
}
