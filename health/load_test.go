package health

// The load signal and passive health with real probers, a real etcd and
// stand-in load balancers that serve their statistics.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// statsLB is a stand-in load balancer: "/" answers its health check
// (200), "/stats;csv" its HAProxy CSV stats (the column layout of the
// real page in testdata) for the frontend "www", and "/metrics" the same
// figures in the Prometheus text format. Every read of its stats counts
// rate more requests, ratio of them 5xx, as traffic would between two
// reads.
type statsLB struct {
	srv     *httptest.Server
	header  []string
	scrapes atomic.Int64

	mu          sync.Mutex
	scur, slim  int
	reqs, errs  float64
	rate, ratio float64
	hang        bool
	hangC       chan struct{}
}

func newStatsLB(t testing.TB) *statsLB {
	raw, err := os.ReadFile("testdata/haproxy-2.6.csv")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	l := &statsLB{header: strings.Split(strings.TrimPrefix(first, "# "), ","), slim: 1000, rate: 100, hangC: make(chan struct{})}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(func() {
		close(l.hangC)
		l.srv.Close()
	})
	return l
}

func (l *statsLB) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		fmt.Fprint(w, "ok")
		return
	}
	l.mu.Lock()
	if l.hang {
		l.mu.Unlock()
		select {
		case <-l.hangC:
		case <-r.Context().Done():
		}
		return
	}
	l.reqs += l.rate
	l.errs += l.rate * l.ratio
	scur, slim, reqs, errs := l.scur, l.slim, l.reqs, l.errs
	l.mu.Unlock()
	l.scrapes.Add(1)
	switch r.URL.Path {
	case "/stats;csv":
		row := make([]string, len(l.header))
		for i, col := range l.header {
			switch col {
			case "pxname":
				row[i] = "www"
			case "svname":
				row[i] = "FRONTEND"
			case "scur":
				row[i] = fmt.Sprint(scur)
			case "slim":
				row[i] = fmt.Sprint(slim)
			case "req_tot":
				row[i] = fmt.Sprint(reqs)
			case "hrsp_5xx":
				row[i] = fmt.Sprint(errs)
			case "status":
				row[i] = "OPEN"
			}
		}
		fmt.Fprintf(w, "# %s\n%s\n", strings.Join(l.header, ","), strings.Join(row, ","))
	case "/metrics":
		fmt.Fprintf(w, "# TYPE lb_active_connections gauge\nlb_active_connections{pool=\"web\"} %d\n", scur)
		fmt.Fprintf(w, "# TYPE lb_requests_total counter\nlb_requests_total{pool=\"web\",code=\"200\"} %v\nlb_requests_total{pool=\"web\",code=\"503\"} %v\n", reqs-errs, errs)
	default:
		http.NotFound(w, r)
	}
}

func (l *statsLB) set(f func(l *statsLB)) {
	l.mu.Lock()
	f(l)
	l.mu.Unlock()
}

func (l *statsLB) addr() string { return l.srv.Listener.Addr().String() }

// haproxyCheck is a fast http check of the stand-in reading its CSV
// stats, with passive health when p is set.
func haproxyCheck(l *statsLB, p *regions.PassiveHealth) regions.HealthCheck {
	c := fast("http")
	c.Stats = &regions.StatsSource{Type: "haproxy", URL: "http://" + l.addr() + "/stats;csv", Proxy: "www"}
	c.Passive = p
	return c
}

// report is the report of prober in region as etcd holds it.
func (e *env) report(region, prober string) *regions.HealthReport {
	e.t.Helper()
	s := e.current()
	if s == nil {
		return nil
	}
	return s.State().Health[region][prober]
}

// waitVIP waits until prober's report on region has a VIP for which ok
// holds, and returns it.
func (e *env) waitVIP(what, region, prober string, ok func(v *regions.VIPHealth) bool) regions.VIPHealth {
	e.t.Helper()
	var got regions.VIPHealth
	e.waitSnap(what, func(s *regions.Snapshot) bool {
		rep := s.State().Health[region][prober]
		if rep == nil || len(rep.VIPs) == 0 || !ok(&rep.VIPs[0]) {
			return false
		}
		got = rep.VIPs[0]
		return true
	})
	return got
}

// TestLoadSignal: a VIP's load and capacity are read from its load
// balancer's statistics (HAProxy CSV, Prometheus) or from its JSON health
// answer, and published with when and where they were read; a load that
// moves is published again.
func TestLoadSignal(t *testing.T) {
	e := newEnv(t)
	hp, prom, js := newStatsLB(t), newStatsLB(t), newLB(t)
	hp.set(func(l *statsLB) { l.scur, l.slim = 120, 1000 })
	prom.set(func(l *statsLB) { l.scur = 7 })
	js.body.Store(`{"status":"ok","load":250,"capacity":1000}`)
	e.region("hp", haproxyCheck(hp, nil), map[string]string{"192.0.2.1": hp.addr()})
	pc := fast("http")
	pc.Stats = &regions.StatsSource{Type: "prometheus", URL: "http://" + prom.addr() + "/metrics",
		Load: &regions.MetricSelector{Metric: "lb_active_connections", Labels: map[string]string{"pool": "web"}}, Capacity: &regions.MetricSelector{Value: f(50)}}
	e.region("prom", pc, map[string]string{"192.0.2.2": prom.addr()})
	e.region("json", fast("http"), map[string]string{"192.0.2.3": js.addr()})
	start := time.Now()
	e.startProber(Config{ID: "p1"})
	e.allUp(1)
	for _, tc := range []struct {
		region, source string
		load, capacity float64
	}{{"hp", "haproxy", 120, 1000}, {"prom", "prometheus", 7, 50}, {"json", "health", 250, 1000}} {
		v := e.waitVIP(tc.region+" load published", tc.region, "p1", func(v *regions.VIPHealth) bool { return v.Load != nil })
		if *v.Load != tc.load || v.Capacity == nil || *v.Capacity != tc.capacity || v.LoadSource != tc.source || v.LoadError != "" ||
			v.LoadObserved.Before(start) || !v.Up || v.Passive {
			t.Errorf("%s: %+v", tc.region, v)
		}
	}
	hp.set(func(l *statsLB) { l.scur = 400 })
	e.waitVIP("the moved load published", "hp", "p1", func(v *regions.VIPHealth) bool { return v.Load != nil && *v.Load == 400 })
}

// TestLoadUnknown: a stats page that cannot be read, or lacks what was
// asked for, leaves the load unknown with the reason in the report, and
// never takes the VIP down.
func TestLoadUnknown(t *testing.T) {
	e := newEnv(t)
	closed := fmt.Sprintf("127.0.0.1:%d", testport.Free(t, 1)[0]) // nothing listens there
	slow, html := newStatsLB(t), newLB(t)
	slow.set(func(l *statsLB) { l.hang = true })
	html.body.Store("<html>stats</html>")
	prom := newStatsLB(t)
	cases := []struct {
		region string
		stats  *regions.StatsSource
		addr   string
		why    string
	}{
		{"unreachable", &regions.StatsSource{Type: "haproxy", URL: "http://" + closed + "/stats;csv", Proxy: "www"}, newLB(t).addr(), "connection refused"},
		{"slow", &regions.StatsSource{Type: "haproxy", URL: "http://" + slow.addr() + "/stats;csv", Proxy: "www"}, slow.addr(), "timeout after 80ms waiting for the stats page"},
		{"malformed", &regions.StatsSource{Type: "haproxy", URL: "http://" + html.addr() + "/stats;csv", Proxy: "www"}, html.addr(), "not an HAProxy CSV stats page"},
		{"no-metric", &regions.StatsSource{Type: "prometheus", URL: "http://" + prom.addr() + "/metrics",
			Load: &regions.MetricSelector{Metric: "envoy_http_downstream_rq_active"}}, prom.addr(), "no metric envoy_http_downstream_rq_active on the stats page"},
	}
	for i, tc := range cases {
		c := fast("http")
		c.Stats = tc.stats
		e.region(tc.region, c, map[string]string{fmt.Sprintf("192.0.2.%d", i+1): tc.addr})
	}
	e.startProber(Config{ID: "p1"})
	e.allUp(1)
	for _, tc := range cases {
		v := e.waitVIP(tc.region+": the reason published", tc.region, "p1", func(v *regions.VIPHealth) bool { return v.LoadError != "" })
		if !strings.Contains(v.LoadError, tc.why) || v.Load != nil || v.Capacity != nil || !v.LoadObserved.IsZero() || !v.Up || v.Reason != "" {
			t.Errorf("%s: %+v, want up with load error %q", tc.region, v, tc.why)
		}
	}
}

// TestPassiveHealth: a VIP whose load balancer answers too many 5xx goes
// down by passive health after fall checks, with Passive set and the
// ratio in the reason; it comes back after rise checks once the window
// holds a low ratio. With too few requests passive health has no say.
func TestPassiveHealth(t *testing.T) {
	e := newEnv(t)
	l := newStatsLB(t)
	window := 300 * time.Millisecond
	e.region("a", haproxyCheck(l, &regions.PassiveHealth{Window: regions.Duration(window), MinRequests: 50, ErrorRatio: f(0.5)}),
		map[string]string{"192.0.2.1": l.addr()})
	e.region("b", fast("http"), map[string]string{"192.0.2.2": newLB(t).addr()})
	e.service("www.example.", "a", "b")
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)
	e.waitAnswers("www.example.", "192.0.2.1")

	t.Run("too few requests", func(t *testing.T) {
		l.set(func(l *statsLB) { l.rate, l.ratio = 1, 1 })
		n := l.scrapes.Load()
		etcdtest.WaitUntil(t, "10 reads of the stats", func() bool { return l.scrapes.Load() >= n+10 })
		if ts := p.Status().Targets[0]; !ts.Up || ts.Passive || !strings.Contains(ts.PassiveSeen, "fewer than 50, no verdict") {
			t.Fatalf("target %+v", ts)
		}
	})
	t.Run("errors take it down", func(t *testing.T) {
		l.set(func(l *statsLB) { l.rate, l.ratio = 100, 0.6 })
		v := e.waitVIP("a down by passive health", "a", "p1", func(v *regions.VIPHealth) bool { return !v.Up })
		if !v.Passive || v.Failures < 3 || !strings.HasPrefix(v.Reason, "passive: 5xx 60% of ") || !strings.Contains(v.Reason, " requests in ") {
			t.Fatalf("VIP %+v, want down by passive health after fall (3) failures", v)
		}
		e.waitAnswers("www.example.", "192.0.2.2")
		s := e.current()
		if vs := vip(s, "a", "192.0.2.1"); vs.Status != regions.HealthDown || !vs.Passive || !vs.Votes[0].Passive {
			t.Fatalf("status %+v", vs)
		}
	})
	t.Run("comes back after rise", func(t *testing.T) {
		l.set(func(l *statsLB) { l.ratio = 0 })
		v := e.waitVIP("a up again", "a", "p1", func(v *regions.VIPHealth) bool { return v.Up })
		if v.Passive || v.Successes < 2 {
			t.Fatalf("VIP %+v, want up after rise (2) successes", v)
		}
		e.waitAnswers("www.example.", "192.0.2.1")
	})
	t.Run("an active failure is not passive", func(t *testing.T) {
		l.set(func(l *statsLB) { l.ratio = 1 })
		e.waitVIP("a down by passive health", "a", "p1", func(v *regions.VIPHealth) bool { return !v.Up && v.Passive })
		// The stand-in's health check fails too: down, no longer by
		// passive health alone.
		blocked := haproxyCheck(l, &regions.PassiveHealth{Window: regions.Duration(window), MinRequests: 50, ErrorRatio: f(0.5)})
		blocked.Path, blocked.Expect = "/nope", regions.StatusRanges{{Lo: 200, Hi: 200}}
		e.region("a", blocked, map[string]string{"192.0.2.1": l.addr()})
		v := e.waitVIP("a down by its check", "a", "p1", func(v *regions.VIPHealth) bool { return !v.Up && !v.Passive })
		if !strings.Contains(v.Reason, "status 404") {
			t.Fatalf("VIP %+v", v)
		}
	})
}

// TestMaxEjectionLive: when every load balancer of a service answers 5xx,
// passive health takes out at most max_ejection (half) of its capacity:
// the first region down goes, the other keeps answering; answers never
// fail open. When the first recovers, the other may go.
func TestMaxEjectionLive(t *testing.T) {
	e := newEnv(t)
	a, b := newStatsLB(t), newStatsLB(t)
	ph := &regions.PassiveHealth{Window: regions.Duration(300 * time.Millisecond), MinRequests: 50, ErrorRatio: f(0.5)}
	e.region("a", haproxyCheck(a, ph), map[string]string{"192.0.2.1": a.addr()})
	e.region("b", haproxyCheck(b, ph), map[string]string{"192.0.2.2": b.addr()})
	e.service("www.example.", "a", "b")
	e.startProber(Config{ID: "p1"})
	e.startProber(Config{ID: "p2"})
	e.allUp(2)
	var bad atomic.Value
	e.onSnapshot(func(s *regions.Snapshot) {
		v := s.ServiceByName("www.example.")
		if v == nil {
			return
		}
		if d := s.Decide(v, nil, regions.QTypeA, 1); d.FailOpen || d.Count == 0 {
			bad.Store(fmt.Sprintf("answer %+v: %s", d, describe(s)))
		}
	})
	defer e.onSnapshot(nil)

	a.set(func(l *statsLB) { l.ratio = 1 })
	e.waitSnap("a down by passive health", func(s *regions.Snapshot) bool { return vip(s, "a", "192.0.2.1").Passive })
	b.set(func(l *statsLB) { l.ratio = 1 })
	e.waitSnap("b down by passive health too", func(s *regions.Snapshot) bool { return vip(s, "b", "192.0.2.2").Passive })
	e.waitAnswers("www.example.", "192.0.2.2")

	// b, still failing, is the one ejected once a is back: the health
	// step keeps a alone.
	a.set(func(l *statsLB) { l.ratio = 0 })
	e.waitSnap("a up and b ejected", func(s *regions.Snapshot) bool {
		v := s.ServiceByName("www.example.")
		_, ex := s.Explain(v, nil, regions.QTypeA, 1)
		for _, st := range ex.Steps {
			if st.Step == "health" {
				return len(st.Result) == 1 && st.Result[0] == "a"
			}
		}
		return false
	})
	e.waitAnswers("www.example.", "192.0.2.1")
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}

// TestLoadWrites: a stable load is written again before it ages out, in
// one transaction for all of a prober's reports, far less often than
// it is read; a load that moves is written as it moves, at most once per
// check interval per report.
func TestLoadWrites(t *testing.T) {
	e := newEnv(t)
	lbs := make([]*statsLB, 10)
	for i := range lbs {
		lbs[i] = newStatsLB(t)
		lbs[i].set(func(l *statsLB) { l.scur = 100 })
		e.region(fmt.Sprintf("r%d", i), haproxyCheck(lbs[i], nil), map[string]string{fmt.Sprintf("192.0.2.%d", i+1): lbs[i].addr()})
	}
	p := e.startProber(Config{ID: "p1"})
	e.allUp(1)
	keys := store.NewKeys(e.prefix)
	healthRevs := func() map[int64]int {
		resp, err := e.cli.Get(etcdtest.Ctx(t), keys.HealthAll(), clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		revs := map[int64]int{}
		for _, kv := range resp.Kvs {
			revs[kv.ModRevision]++
		}
		return revs
	}
	observed := func(region string) time.Time {
		rep := e.report(region, "p1")
		if rep == nil || len(rep.VIPs) == 0 {
			return time.Time{}
		}
		return rep.VIPs[0].LoadObserved
	}

	// txns counts the transactions that wrote health reports: the
	// distinct revisions of their events.
	txns := func(t *testing.T, from int64, until func() bool) int {
		ctx, cancel := context.WithCancel(etcdtest.Ctx(t))
		defer cancel()
		wc := e.cli.Watch(ctx, keys.HealthAll(), clientv3.WithPrefix(), clientv3.WithRev(from))
		revs := map[int64]bool{}
		etcdtest.WaitUntil(t, "the refreshes", func() bool {
			for {
				select {
				case wr := <-wc:
					for _, ev := range wr.Events {
						revs[ev.Kv.ModRevision] = true
					}
					continue
				default:
				}
				return until()
			}
		})
		return len(revs)
	}
	t.Run("stable", func(t *testing.T) {
		// The reports were first written as their VIPs came up, at
		// different times; the refreshes bring them together, into one
		// transaction.
		etcdtest.WaitUntil(t, "the 10 reports written in one transaction", func() bool {
			revs := healthRevs()
			return len(revs) == 1
		})
		prev := observed("r0")
		st0 := p.Status().Stats
		resp, err := e.cli.Get(etcdtest.Ctx(t), keys.HealthAll(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		rev0 := resp.Header.Revision
		refreshes := 0
		n := txns(t, rev0+1, func() bool {
			// Three refreshes of r0's reading, each newer than the last.
			if o := observed("r0"); o.After(prev) {
				prev, refreshes = o, refreshes+1
			}
			return refreshes >= 3
		})
		st1 := p.Status().Stats
		writes := st1.Writes - st0.Writes
		// Reports stay together: the refreshes of the 10 go in a few
		// transactions, not one each.
		if n == 0 || float64(writes)/float64(n) < 2 {
			t.Errorf("%d report writes in %d transactions: not written together (revisions now %v)", writes, n, healthRevs())
		}
		// At most one transaction per round of reads (one read of each
		// of the 10 targets), and one write per report per read.
		rounds := int(st1.Checks-st0.Checks) / len(lbs)
		if n > rounds+2 || writes > st1.Checks-st0.Checks+uint64(len(lbs)) {
			t.Errorf("%d transactions, %d report writes over %d rounds of reads", n, writes, rounds)
		}
		t.Logf("stable load: %d transactions, %d report writes, %d reads", n, writes, st1.Checks-st0.Checks)
	})
	t.Run("moving", func(t *testing.T) {
		for _, l := range lbs {
			l.set(func(l *statsLB) { l.scur = 500 })
		}
		e.waitSnap("every moved load published", func(s *regions.Snapshot) bool {
			for i := range lbs {
				rep := s.State().Health[fmt.Sprintf("r%d", i)]["p1"]
				if rep == nil || rep.VIPs[0].Load == nil || *rep.VIPs[0].Load != 500 {
					return false
				}
			}
			return true
		})
	})
}

// TestLoadWrite: which load changes are worth a write.
func TestLoadWrite(t *testing.T) {
	now := t0.Add(time.Minute)
	iv := time.Second
	vh := func(load, capacity *float64, age time.Duration, mod func(*regions.VIPHealth)) *regions.HealthReport {
		v := regions.VIPHealth{Addr: netip.MustParseAddr("192.0.2.1"), Up: true, Load: load, Capacity: capacity, LoadSource: "haproxy"}
		if load != nil {
			v.LoadObserved = now.Add(-age)
		}
		if mod != nil {
			mod(&v)
		}
		return &regions.HealthReport{VIPs: []regions.VIPHealth{v}}
	}
	cases := []struct {
		name       string
		pub, fresh *regions.HealthReport
		want       loadUrgency
	}{
		{"the same", vh(f(100), f(1000), 0, nil), vh(f(100), f(1000), 0, nil), loadNo},
		{"moved by 4% of capacity", vh(f(100), f(1000), 0, nil), vh(f(140), f(1000), 0, nil), loadNo},
		{"moved by 6% of capacity", vh(f(100), f(1000), 0, nil), vh(f(160), f(1000), 0, nil), loadNow},
		{"no capacity: 4% of the load", vh(f(100), nil, 0, nil), vh(f(104), nil, 0, nil), loadNo},
		{"no capacity: 6% of the load", vh(f(100), nil, 0, nil), vh(f(106), nil, 0, nil), loadNow},
		{"capacity moved", vh(f(100), f(1000), 0, nil), vh(f(100), f(900), 0, nil), loadNow},
		{"a reading appears", vh(nil, nil, 0, nil), vh(f(100), f(1000), 0, nil), loadNow},
		{"the reading fails", vh(f(100), f(1000), 0, nil), vh(nil, nil, 0, func(v *regions.VIPHealth) { v.LoadError = "timeout" }), loadNow},
		{"another failure", vh(nil, nil, 0, func(v *regions.VIPHealth) { v.LoadError = "timeout" }), vh(nil, nil, 0, func(v *regions.VIPHealth) { v.LoadError = "refused" }), loadNow},
		{"the same failure", vh(nil, nil, 0, func(v *regions.VIPHealth) { v.LoadError = "timeout" }), vh(nil, nil, 0, func(v *regions.VIPHealth) { v.LoadError = "timeout" }), loadNo},
		{"another source", vh(f(100), f(1000), 0, nil), vh(f(100), f(1000), 0, func(v *regions.VIPHealth) { v.LoadSource = "health" }), loadNow},
		{"published an interval ago, newer reading", vh(f(100), f(1000), iv, nil), vh(f(100), f(1000), 0, nil), loadSoon},
		{"published two intervals ago, newer reading", vh(f(100), f(1000), 2*iv, nil), vh(f(100), f(1000), 0, nil), loadNow},
		{"published long ago, no newer reading", vh(f(100), f(1000), 5*iv, nil), vh(f(100), f(1000), 5*iv, nil), loadNo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadWrite(tc.pub, tc.fresh, now, iv); got != tc.want {
				t.Fatalf("%v, want %v", got, tc.want)
			}
		})
	}
}
