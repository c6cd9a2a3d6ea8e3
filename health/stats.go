package health

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meridian-gslb/meridian/regions"
)

// statsSpec is one VIP's stats source, compiled: what its target reads
// at every check, besides the check itself.
type statsSpec struct {
	kind       string // haproxy, prometheus
	url        string
	skipVerify bool
	timeout    time.Duration
	proxy      string // haproxy
	side       string // haproxy: frontend, backend or "" (frontend first)
	// prometheus: the selectors; capacity may be a constant (capValue,
	// haproxy too).
	load, capacity, requests, errors *selector
	capValue                         *float64
	// raw is the source as configured, for the target's key.
	raw string
}

// selector is a regions.MetricSelector compiled.
type selector struct {
	metric string
	labels map[string]string
	match  map[string]*regexp.Regexp
	// text is the selector as PromQL would write it, for messages.
	text string
}

// newStatsSpec compiles c's stats source for vip (nil without one); c
// has its defaults and is valid.
func newStatsSpec(c regions.HealthCheck, vip netip.Addr) *statsSpec {
	src := c.Stats
	if src == nil {
		return nil
	}
	raw, _ := json.Marshal(src) // maps are written sorted: the same source, the same key
	s := &statsSpec{kind: src.Type, url: c.StatsURL(vip), skipVerify: src.TLSSkipVerify, timeout: time.Duration(c.Timeout),
		proxy: src.Proxy, side: src.Side, raw: string(raw)}
	if src.Capacity != nil && src.Capacity.Value != nil {
		v := *src.Capacity.Value
		s.capValue = &v
	}
	if src.Type == regions.StatsPrometheus {
		s.load = newSelector(src.Load)
		if s.capValue == nil {
			s.capacity = newSelector(src.Capacity)
		}
		s.requests = newSelector(src.Requests)
		s.errors = newSelector(src.Errors)
	}
	return s
}

func newSelector(m *regions.MetricSelector) *selector {
	if m == nil || m.Metric == "" {
		return nil
	}
	s := &selector{metric: m.Metric, labels: m.Labels, match: map[string]*regexp.Regexp{}}
	var parts []string
	for k, v := range m.Labels {
		parts = append(parts, k+"="+strconv.Quote(v))
	}
	for k, expr := range m.Match {
		// Validated when the region was written; should it not compile,
		// the nil expression matches no series rather than every one.
		re, _ := regions.CompileLabelMatch(expr)
		s.match[k] = re
		parts = append(parts, k+"=~"+strconv.Quote(expr))
	}
	slices.Sort(parts)
	s.text = m.Metric
	if len(parts) > 0 {
		s.text += "{" + strings.Join(parts, ",") + "}"
	}
	return s
}

func (s *statsSpec) key() string {
	if s == nil {
		return ""
	}
	return s.url + "|" + s.timeout.String() + "|" + s.raw
}

// reading is what one read of a stats page gave.
type reading struct {
	at time.Time
	// load and capacity (capacity may be nil: no limit known); loadErr
	// says why load is nil.
	load, capacity *float64
	loadErr        string
	// requests and errors are counters; counted says they were read, and
	// countErr why not.
	requests, errors float64
	counted          bool
	countErr         string
}

// failed is a reading that read nothing, for the reason why.
func failedReading(at time.Time, why string) reading {
	return reading{at: at, loadErr: why, countErr: why}
}

// statsReader reads one statsSpec; safe for one goroutine at a time.
type statsReader struct {
	spec   *statsSpec
	client *http.Client
	agent  string
}

func newStatsReader(s *statsSpec, dial Dialer, agent string) *statsReader {
	if s == nil {
		return nil
	}
	return &statsReader{spec: s, client: newHTTPClient(dial, "", s.skipVerify), agent: agent}
}

// read fetches and parses the page once, within the spec's timeout. It
// never fails: what could not be read is said in the reading.
func (r *statsReader) read(ctx context.Context) reading {
	ctx, cancel := context.WithTimeout(ctx, r.spec.timeout)
	defer cancel()
	at := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.spec.url, nil)
	if err != nil {
		return failedReading(at, "bad stats URL: "+err.Error())
	}
	req.Header.Set("User-Agent", r.agent)
	if r.spec.kind == regions.StatsPrometheus {
		// The classic text format, not OpenMetrics or protobuf.
		req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	} else {
		req.Header.Set("Accept", "text/csv, text/plain;q=0.9, */*;q=0.1")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return failedReading(at, r.why(ctx, "waiting for the stats page", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failedReading(at, fmt.Sprintf("stats page: status %d, want 200", resp.StatusCode))
	}
	body := &limitedBody{r: resp.Body, left: regions.MaxStatsBody}
	var rd reading
	if r.spec.kind == regions.StatsHAProxy {
		rd, err = r.haproxy(body)
	} else {
		rd, err = r.prometheus(body)
	}
	switch {
	case body.over:
		return failedReading(at, fmt.Sprintf("stats page larger than %d KiB: filter it at the source", regions.MaxStatsBody>>10))
	case body.err != nil:
		return failedReading(at, r.why(ctx, "reading the stats page", body.err))
	case err != nil:
		return failedReading(at, truncate(err.Error(), 200))
	}
	rd.at = at
	return rd
}

// why is the reason of a failed fetch.
func (r *statsReader) why(ctx context.Context, stage string, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timeout after %s %s", r.spec.timeout, stage)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "stats page: " + truncate(err.Error(), 200)
}

// limitedBody reads at most left bytes and notes a body that has more,
// and the first error of the connection (not EOF).
type limitedBody struct {
	r    io.Reader
	left int64
	over bool
	err  error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a page of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := b.r.Read(one[:]); n > 0 {
			b.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// maxStatsLine bounds one line of a stats page.
const maxStatsLine = 64 << 10

// haproxy reads the proxy's row of HAProxy's CSV stats (the ";csv"
// page): its columns are named by the first line, "# pxname,svname,...",
// and found by name, so every HAProxy version reads alike.
func (r *statsReader) haproxy(body io.Reader) (reading, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 4096), maxStatsLine)
	col := map[string]int{}
	var front, back []string
	header := false
	prefix := []byte(r.spec.proxy + ",")
	for sc.Scan() {
		if header && !bytes.HasPrefix(sc.Bytes(), prefix) {
			continue // another proxy's row: not even made a string
		}
		line := sc.Text()
		if !header {
			if strings.TrimSpace(line) == "" {
				continue
			}
			rest, ok := strings.CutPrefix(line, "# ")
			if !ok || !strings.HasPrefix(rest, "pxname,svname,") {
				return reading{}, fmt.Errorf("not an HAProxy CSV stats page (the first line is %q); the URL ends in ;csv", truncate(line, 40))
			}
			for i, name := range strings.Split(rest, ",") {
				if name != "" {
					col[name] = i
				}
			}
			if _, ok := col["scur"]; !ok {
				return reading{}, errors.New("HAProxy CSV stats without a scur column")
			}
			header = true
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		switch {
		case f[1] == "FRONTEND" && front == nil:
			front = f
		case f[1] == "BACKEND" && back == nil:
			back = f
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return reading{}, fmt.Errorf("HAProxy CSV stats with a line longer than %d KiB", maxStatsLine>>10)
		}
		return reading{}, err
	}
	if !header {
		return reading{}, errors.New("empty stats page")
	}
	row, what := front, "FRONTEND"
	switch {
	case r.spec.side == "backend" || r.spec.side == "" && front == nil:
		row, what = back, "BACKEND"
	}
	if row == nil {
		want := "a FRONTEND or BACKEND row"
		if r.spec.side != "" {
			want = "a " + strings.ToUpper(r.spec.side) + " row"
		}
		return reading{}, fmt.Errorf("no proxy %q on the HAProxy stats page (want %s)", r.spec.proxy, want)
	}
	field := func(name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	var rd reading
	scur, err := strconv.ParseUint(field("scur"), 10, 64)
	if err != nil {
		return reading{}, fmt.Errorf("%s %s: scur %q is not a count", r.spec.proxy, what, field("scur"))
	}
	load := float64(scur)
	rd.load = &load
	if r.spec.capValue != nil {
		rd.capacity = r.spec.capValue
	} else if slim, err := strconv.ParseUint(field("slim"), 10, 64); err == nil && slim > 0 {
		c := float64(slim)
		rd.capacity = &c
	}
	reqs, err1 := strconv.ParseUint(field("req_tot"), 10, 64)
	errs, err2 := strconv.ParseUint(field("hrsp_5xx"), 10, 64)
	switch {
	case err1 != nil:
		rd.countErr = fmt.Sprintf("%s %s has no req_tot (not an HTTP proxy?)", r.spec.proxy, what)
	case err2 != nil:
		rd.countErr = fmt.Sprintf("%s %s has no hrsp_5xx (not an HTTP proxy?)", r.spec.proxy, what)
	default:
		rd.requests, rd.errors, rd.counted = float64(reqs), float64(errs), true
	}
	return rd, nil
}

// prometheus reads the selectors' metrics from a page in the Prometheus
// text format. Only the lines of the metrics asked for are parsed; the
// others are passed to the parser as empty lines, so that its line
// numbers stay the page's.
func (r *statsReader) prometheus(body io.Reader) (reading, error) {
	sels := []*selector{r.spec.load, r.spec.capacity, r.spec.requests, r.spec.errors}
	want := map[string]bool{}
	for _, s := range sels {
		if s == nil {
			continue
		}
		// A histogram's or summary's lines: NAME_count and NAME_sum may
		// be asked for by those names, and NAME by mistake.
		base := s.metric
		for _, suffix := range []string{"_count", "_sum"} {
			if b, ok := strings.CutSuffix(s.metric, suffix); ok {
				base = b
			}
		}
		for _, n := range []string{s.metric, base, base + "_count", base + "_sum", base + "_bucket"} {
			want[n] = true
		}
	}
	var kept bytes.Buffer
	br := bufio.NewReaderSize(body, maxStatsLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return reading{}, fmt.Errorf("a line longer than %d KiB on the Prometheus page", maxStatsLine>>10)
		}
		if len(line) > 0 {
			if promLineWanted(line, want) {
				kept.Write(line)
				if line[len(line)-1] != '\n' {
					kept.WriteByte('\n')
				}
			} else {
				kept.WriteByte('\n')
			}
		}
		if err != nil {
			break
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&kept)
	if err != nil {
		return reading{}, fmt.Errorf("malformed Prometheus page: %v", err)
	}
	var rd reading
	load, found, why := r.spec.load.sum(fams)
	if !found {
		return reading{}, errors.New(why)
	}
	rd.load = &load
	switch {
	case r.spec.capValue != nil:
		rd.capacity = r.spec.capValue
	case r.spec.capacity != nil:
		c, found, why := r.spec.capacity.sum(fams)
		if !found {
			return reading{}, errors.New(why)
		}
		rd.capacity = &c
	}
	if r.spec.requests != nil && r.spec.errors != nil {
		reqs, rf, rwhy := r.spec.requests.sum(fams)
		errs, ef, ewhy := r.spec.errors.sum(fams)
		// A counter series that has not counted yet may not exist (the
		// code="503" series of a proxy that never answered 503): with
		// its metric on the page, no matching series counts 0.
		switch {
		case !rf && fams[r.spec.requests.metric] == nil:
			rd.countErr = rwhy
		case !ef && fams[r.spec.errors.metric] == nil:
			rd.countErr = ewhy
		default:
			rd.requests, rd.errors, rd.counted = reqs, errs, true
		}
	}
	return rd, nil
}

// promLineWanted says whether a line of a Prometheus page is about one
// of the wanted metrics: its samples, or its HELP or TYPE comment.
func promLineWanted(line []byte, want map[string]bool) bool {
	line = bytes.TrimLeft(line, " \t")
	if len(line) == 0 {
		return false
	}
	if line[0] == '#' {
		f := bytes.Fields(line[1:])
		return len(f) >= 2 && (string(f[0]) == "HELP" || string(f[0]) == "TYPE") && want[string(f[1])]
	}
	if line[0] == '{' {
		return true // a quoted UTF-8 name inside the braces: the parser judges it
	}
	end := bytes.IndexAny(line, "{ \t\n")
	if end < 0 {
		end = len(line)
	}
	return want[string(line[:end])]
}

// sum adds the values of the series s matches. found is false when none
// does, and why then says whether the metric is missing or only the
// series.
func (s *selector) sum(fams map[string]*dto.MetricFamily) (total float64, found bool, why string) {
	fam, value := fams[s.metric], metricValue
	if fam == nil {
		for _, suffix := range []string{"_count", "_sum"} {
			base, ok := strings.CutSuffix(s.metric, suffix)
			if f := fams[base]; ok && f != nil && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY) {
				fam, value = f, func(m *dto.Metric) float64 { return histogramPart(m, suffix) }
			}
		}
	}
	if fam == nil {
		return 0, false, fmt.Sprintf("no metric %s on the stats page", s.metric)
	}
	if t := fam.GetType(); (t == dto.MetricType_HISTOGRAM || t == dto.MetricType_SUMMARY) && fam.GetName() == s.metric {
		return 0, false, fmt.Sprintf("%s is a %s: name %s_count or %s_sum", s.metric, strings.ToLower(t.String()), s.metric, s.metric)
	}
	n := 0
	for _, m := range fam.GetMetric() {
		if !s.matches(m) {
			continue
		}
		v := value(m)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false, fmt.Sprintf("%s is %v", s.text, v)
		}
		total += v
		n++
	}
	if n == 0 {
		return 0, false, fmt.Sprintf("no series of %s on the stats page matches %s", s.metric, s.text)
	}
	if total < 0 {
		return 0, false, fmt.Sprintf("%s is negative (%v)", s.text, total)
	}
	return total, true, ""
}

func (s *selector) matches(m *dto.Metric) bool {
	for name, want := range s.labels {
		if labelValue(m, name) != want {
			return false
		}
	}
	for name, re := range s.match {
		if re == nil || !re.MatchString(labelValue(m, name)) {
			return false
		}
	}
	return true
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

func histogramPart(m *dto.Metric, suffix string) float64 {
	switch {
	case m.Histogram != nil && suffix == "_count":
		return float64(m.GetHistogram().GetSampleCount())
	case m.Histogram != nil:
		return m.GetHistogram().GetSampleSum()
	case m.Summary != nil && suffix == "_count":
		return float64(m.GetSummary().GetSampleCount())
	case m.Summary != nil:
		return m.GetSummary().GetSampleSum()
	}
	return math.NaN()
}
