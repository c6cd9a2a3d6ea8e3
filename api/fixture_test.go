package api

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Main(m)) }

// The test tokens.
const (
	adminSecret = "admin-secret-0123456789"
	readSecret  = "read-secret-0123456789"
)

// fixture is an API over a real store in etcd, with a watcher keeping
// its snapshot current, as in the server.
type fixture struct {
	t      testing.TB
	c      *clientv3.Client
	st     *store.Store
	prefix string
	live   *store.Live
	h      http.Handler
	// reg is what /metrics serves: a test counter and the request metrics.
	reg *prometheus.Registry
}

type fixtureOpts struct {
	client     *clientv3.Client // default: the shared etcd
	openReads  bool
	noAuth     bool
	maxBody    int64
	maxLatency int64
	timeout    time.Duration
	// requestTimeout and uploadTimeout: Options'; 0 for the defaults.
	requestTimeout, uploadTimeout time.Duration
	logs                          *testlog.Buffer // the API's log; nil: etcdtest's
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	c := o.client
	if c == nil {
		c = etcdtest.Shared(t)
	}
	f := &fixture{t: t, c: c, prefix: etcdtest.Prefix(t)}
	f.st = store.NewStore(c, f.prefix, etcdtest.Logger())
	ctx := etcdtest.Ctx(t)
	for _, r := range testRegions() {
		if _, err := f.st.PutRegion(ctx, r, store.IfAbsent(), store.By("seed")); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range testServices() {
		if _, err := f.st.PutService(ctx, s, store.IfAbsent(), store.By("seed")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.ImportLatency(ctx, strings.NewReader(testLatency), store.By("seed")); err != nil {
		t.Fatal(err)
	}
	f.live = store.NewLive("", regions.SnapshotOptions{}, etcdtest.Logger(), nil)
	w := store.NewWatcher(c, f.prefix, etcdtest.Logger())
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(wctx, f.live.Apply); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	etcdtest.WaitUntil(t, "the first snapshot", func() bool {
		s := f.live.Current()
		return s != nil && len(s.Services()) == len(testServices()) && s.Latency() != nil
	})
	reg := prometheus.NewRegistry()
	f.reg = reg
	reqMetrics := NewMetrics()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_test_total", Help: "A test counter."}), reqMetrics)
	logger := etcdtest.Logger()
	if o.logs != nil {
		logger = slogTo(o.logs)
	}
	opts := Options{
		Metrics:  reqMetrics,
		Logger:   logger,
		Gatherer: reg,
		Ready:    func() error { return nil },
		Details:  func() Details { return Details{Zones: []ZoneInfo{{Origin: "gslb.example.", Serial: 1, Records: 3}}} },
		Status: func() ServerStatus {
			return ServerStatus{Source: "etcd", Built: time.Now(), RegionAnswers: map[string]uint64{"eu-west": 7},
				EmptyRefused: f.live.Status().EmptyRefused}
		},
		AcceptEmpty:     f.live.AcceptEmpty,
		Snapshot:        f.live.Current,
		Store:           f.st,
		WriteTimeout:    o.timeout,
		MaxBodyBytes:    o.maxBody,
		MaxLatencyBytes: o.maxLatency,
		RequestTimeout:  o.requestTimeout,
		UploadTimeout:   o.uploadTimeout,
	}
	if !o.noAuth {
		opts.Auth = NewAuth(testTokens(t), o.openReads)
	}
	f.h = NewRouter(opts)
	return f
}

func testTokens(t testing.TB) []Token {
	t.Helper()
	path := t.TempDir() + "/tokens.yaml"
	body := "tokens:\n  - {name: alice, role: admin, token: " + adminSecret + "}\n  - {name: grafana, role: read, token: " + readSecret + "}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func testRegions() []*regions.Region {
	mk := func(name, v4, v6 string, lat, lon float64) *regions.Region {
		r := &regions.Region{Name: name, Location: regions.Location{Lat: lat, Lon: lon}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
		for _, a := range []string{v4, v6} {
			if a != "" {
				r.VIPs = append(r.VIPs, netip.MustParseAddr(a))
			}
		}
		return r
	}
	return []*regions.Region{
		mk("eu-west", "192.0.2.10", "2001:db8::10", 52.37, 4.9),
		mk("us-east", "192.0.2.20", "2001:db8::20", 39.04, -77.49),
		mk("ap-northeast", "192.0.2.30", "", 35.68, 139.69),
		mk("spare", "192.0.2.40", "", 0, 0),
	}
}

func testServices() []*regions.Service {
	all := []regions.ServiceRegion{{Region: "us-east", Weight: 50}, {Region: "eu-west", Weight: 30}, {Region: "ap-northeast", Weight: 20}}
	return []*regions.Service{
		{Name: "api.gslb.example.", TTL: 30, Policy: regions.PolicyWeighted, Regions: all},
		{Name: "www.gslb.example.", TTL: 60, Policy: regions.PolicyFailover, Regions: all[:2]},
	}
}

// testLatency is the latency table of the fixture: three entries on two
// networks.
const testLatency = "192.0.2.0/24,eu-west,10\n198.51.100.0/24,us-east,20\n198.51.100.0/24,eu-west,30\n"

// req is one request to the fixture's API.
type req struct {
	method, path, body string
	token              string
	hdr                map[string]string
}

func (f *fixture) do(r req) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	hr.RemoteAddr = "192.0.2.99:1234"
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, hr)
	return rec
}

// keys lists every key under the fixture's prefix with its mod revision.
func (f *fixture) keys() map[string]int64 {
	f.t.Helper()
	resp, err := f.c.Get(context.Background(), f.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.ModRevision
	}
	return out
}

// unchanged runs fn and fails if it changed anything in etcd.
func (f *fixture) unchanged(t *testing.T, fn func()) {
	t.Helper()
	before := f.keys()
	fn()
	if after := f.keys(); !maps.Equal(before, after) {
		t.Errorf("etcd changed:\nbefore %v\nafter  %v", before, after)
	}
}

// revOf is the mod revision of a region or service key.
func (f *fixture) revOf(kind, name string) int64 {
	f.t.Helper()
	var key string
	switch kind {
	case "region":
		key = f.st.Keys().Region(name)
	case "shift":
		key = f.st.Keys().Shift(name)
	default:
		key = f.st.Keys().Service(name)
	}
	resp, err := f.c.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) == 0 {
		f.t.Fatalf("%s %s: %v", kind, name, err)
	}
	return resp.Kvs[0].ModRevision
}

// problem decodes a problem document and checks its media type and status.
func problem(t *testing.T, rec *httptest.ResponseRecorder, status int) Problem {
	t.Helper()
	var p Problem
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d %s: %s, want a problem document with %d", rec.Code, ct, rec.Body, status)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != status || p.Status != status || p.Title == "" {
		t.Fatalf("%d %s (%v), want problem %d", rec.Code, rec.Body, err, status)
	}
	return p
}

// namesField says whether a problem names field among its errors.
func namesField(p Problem, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

var (
	styleKey  = regexp.MustCompile(`^([a-z0-9][a-z0-9_.\-]*|[A-Z]{2})$`)
	nullables = map[string]bool{"before": true, "after": true}
)

// checkStyle fails on a JSON document that is not in the API's one
// style: keys in snake_case (or names and codes used as map keys), no
// null except for an object that does not exist.
func checkStyle(t *testing.T, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !styleKey.MatchString(k) {
					t.Errorf("%s: key %q is not snake_case", path, k)
				}
				if e == nil && !nullables[k] {
					t.Errorf("%s.%s is null", path, k)
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				if e == nil {
					t.Errorf("%s[%d] is null", path, i)
				}
				walk(path, e)
			}
		}
	}
	walk("", v)
}

// refuseEmpty makes the fixture's Live refuse an empty listing, as a
// server does when etcd comes back empty under a state with services.
func (f *fixture) refuseEmpty(t testing.TB) {
	t.Helper()
	empty := regions.NewState()
	empty.Revision = f.live.Current().Revision() + 1
	f.live.ApplyListing(empty)
	if f.live.Status().EmptyRefused == nil {
		t.Fatal("the empty listing was not refused")
	}
}

// counts reads the fixture's request counter: by "METHOD route code".
func (f *fixture) counts() map[string]float64 {
	f.t.Helper()
	fams, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range fams {
		if fam.GetName() != "meridian_http_requests_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			out[labelValue(m, "method")+" "+labelValue(m, "route")+" "+labelValue(m, "code")] = m.GetCounter().GetValue()
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
