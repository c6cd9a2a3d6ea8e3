//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/internal/floodtest"
	"github.com/meridian-gslb/meridian/internal/testport"
)

// TestMakeRunRRL floods a server running `make run`'s configuration
// (examples/meridian.yaml, only its addresses and paths changed) with
// 50,000 queries in 2 s from 127.0.0.77, while 127.0.1.1 asks the same
// name 20 times a second and 127.0.0.1, which the configuration exempts,
// asks too. The flood gets at most its rate answered in full (plus the
// burst), the rest slipped or dropped, and fewer bytes back than it sent;
// the other two get every answer; the RRL counters in /metrics add up to
// every query the server answered.
func TestMakeRunRRL(t *testing.T) {
	const (
		floodN    = 50000
		floodRate = 25000 // a second: 50,000 in 2 s
		exemptN   = 500
		qname     = "www.gslb.example."
	)
	const file = "examples/meridian.yaml"
	cfg := readYAMLMap(t, file)
	rrl := cfg["dns"].(map[string]any)["rrl"].(map[string]any)
	rate := rrl["rate"].(int)
	window, err := time.ParseDuration(rrl["window"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ex := fmt.Sprint(rrl["exempt"]); ex != "[127.0.0.1]" {
		t.Fatalf("%s exempts %s; the test expects 127.0.0.1 only", file, ex)
	}

	pp := testport.NewPicker(t)
	s := &nameServer{name: "make-run", host: "127.0.0.1", dnsPort: pp.Pick("127.0.0.1"), httpPort: pp.Pick("127.0.0.1"), dir: filepath.Join(runDir, "make-run"), plainHTTP: true}
	etcdClient, etcdPeer := pp.Pick("127.0.0.1"), pp.Pick("127.0.0.1")
	pp.Release()
	geoip := geoipDB()
	set := func(path []string, v any) { setYAMLKey(t, cfg, file, path, v) }
	set([]string{"listen", "dns"}, []string{s.dnsAddr()})
	set([]string{"listen", "http"}, fmt.Sprintf("127.0.0.1:%d", s.httpPort))
	set([]string{"data_dir"}, s.dataDir())
	set([]string{"geoip", "database"}, geoip)
	set([]string{"etcd", "embedded_client"}, fmt.Sprintf("127.0.0.1:%d", etcdClient))
	set([]string{"etcd", "embedded_peer"}, fmt.Sprintf("127.0.0.1:%d", etcdPeer))
	set([]string{"bootstrap"}, filepath.Join(repoRoot, "examples", "state.yaml"))
	set([]string{"zone_dir"}, filepath.Join(repoRoot, "examples", "zones"))
	set([]string{"api", "tokens_file"}, filepath.Join(s.dir, "tokens.yaml"))
	set([]string{"api", "admin_token_file"}, filepath.Join(s.dir, "admin.token"))
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.dir, "meridian.yaml")
	writeFile(t, s.config, string(out))
	s.start(t)
	t.Cleanup(func() { s.stop(t) })
	s.waitReady(t)
	waitFor(t, "the example services bootstrapped", waitLimit, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		if st.Snapshot.Services != 3 {
			return fmt.Errorf("%d services", st.Snapshot.Services)
		}
		return nil
	})

	server := netip.MustParseAddrPort(s.dnsAddr())
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	m.SetEdns0(1232, false)
	req, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	query := func(int) []byte { return append([]byte(nil), req...) }
	before := rrlCounters(t, s)
	received0 := metricValue(t, s, "meridian_dns_udp_received_total")

	flood, err := floodtest.Open(server, []netip.Addr{netip.MustParseAddr("127.0.0.77")})
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	start := time.Now()
	sent := make(chan error, 1)
	go func() { sent <- flood.Send(context.Background(), floodN, floodRate, query) }()

	// Meanwhile a client of another /24, well within the rate.
	legitN := 0
	for done := false; !done; legitN++ {
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(50 * time.Millisecond):
		}
		q := append([]byte(nil), req...)
		q[0], q[1] = byte(legitN>>8), byte(legitN)
		r, err := floodtest.Ask(server, netip.MustParseAddr("127.0.1.1"), q, 2*time.Second)
		if err != nil || r.Truncated || len(r.Answer) != 1 {
			t.Fatalf("127.0.1.1, query %d during the flood: %v %v", legitN, r, err)
		}
	}
	// And the README's commands from 127.0.0.1, exempt.
	exempt, err := floodtest.Open(server, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer exempt.Close()
	if err := exempt.Send(context.Background(), exemptN, 10000, query); err != nil {
		t.Fatal(err)
	}
	if err := exempt.WaitReplies(exemptN, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	var delta map[string]int
	total := floodN + legitN + exemptN
	waitFor(t, "the RRL counters to account for every query", waitLimit, func() error {
		after := rrlCounters(t, s)
		delta = map[string]int{}
		sum := 0
		for a, v := range after {
			delta[a] = v - before[a]
			sum += delta[a]
		}
		if sum > total {
			return fmt.Errorf("%w: RRL counted %d answers (%v), want %d", errStop, sum, delta, total)
		}
		if sum != total {
			return fmt.Errorf("RRL counted %d answers (%v), want %d", sum, delta, total)
		}
		return nil
	})
	elapsed := time.Since(start)
	answered := delta["answered"] - legitN
	if err := flood.WaitReplies(answered+delta["slipped"], 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res := flood.Result()
	received := metricValue(t, s, "meridian_dns_udp_received_total") - received0

	report(t, "rrl", "make run's config: flood from 127.0.0.77", "%d queries in %v: %d answered, %d slipped, %d dropped",
		floodN, res.Sending.Round(time.Millisecond), answered, delta["slipped"], delta["dropped"])
	report(t, "rrl", "bytes out / bytes in (amplification)", "%d / %d = %.3f", res.ReplyBytes, res.QueryBytes, res.Amplification())
	report(t, "rrl", "127.0.1.1 (another /24) and 127.0.0.1 (exempt)", "%d of %d and %d of %d answered", legitN, legitN, exemptN, exemptN)

	burst := int(float64(rate) * window.Seconds())
	if most := burst + int(elapsed.Seconds()*float64(rate)) + 1; answered > most {
		t.Errorf("the flood got %d answers in %v: more than %d a second and a burst of %d", answered, elapsed, rate, burst)
	}
	if res.Answered != answered || res.Truncated != delta["slipped"] || answered+delta["slipped"]+delta["dropped"] != floodN {
		t.Errorf("the flood received %v; the counters say %v", res, delta)
	}
	if res.ReplyBytes > res.QueryBytes {
		t.Errorf("bytes out %d > bytes in %d", res.ReplyBytes, res.QueryBytes)
	}
	if delta["exempt_network"] != exemptN {
		t.Errorf("exempt_network %d, want %d", delta["exempt_network"], exemptN)
	}
	if received != total {
		t.Errorf("the server received %d datagrams, %d were sent", received, total)
	}
}

var rrlMetric = regexp.MustCompile(`(?m)^meridian_dns_rrl_responses_total\{action="(\w+)"\} ([0-9.e+]+)$`)

// rrlCounters reads the RRL counters by action from /metrics.
func rrlCounters(t testing.TB, s *nameServer) map[string]int {
	t.Helper()
	code, body, err := s.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", s.name, code, err)
	}
	out := map[string]int{}
	for _, m := range rrlMetric.FindAllSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		out[string(m[1])] = int(v)
	}
	if len(out) == 0 {
		t.Fatalf("%s /metrics has no meridian_dns_rrl_responses_total", s.name)
	}
	return out
}

// metricValue reads one series without labels from /metrics.
func metricValue(t testing.TB, s *nameServer, name string) int {
	t.Helper()
	code, body, err := s.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", s.name, code, err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s /metrics has no %s", s.name, name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(v)
}

// scenarioResolversRRL: what the two resolvers see when they send the
// name servers many queries for one account, 300 a second for 3 s, as a
// large resolver does: unbound (ECS, no DNS cookies) asking for `near`
// for 900 client /24s spread over IPv4 (its scope is the GeoIP
// database's network, so most are cache misses); BIND (cookies, no ECS)
// asking for 900 names below the *.edge wildcard, which share one
// account. Both name servers run
// the guide's limits (50 a second, slip 2). BIND is never limited: it
// holds a server cookie. unbound is, and asks again over TCP when an
// answer is truncated and another server when one is dropped.
func scenarioResolversRRL(t *testing.T, d *deployment) {
	const (
		sc       = "9 resolvers under rrl"
		n        = 900
		workers  = 15
		interval = 50 * time.Millisecond // per worker: 300 queries a second
	)
	for _, tc := range []struct {
		r     *resolver
		what  string
		query func(i int) (name, ecs string)
	}{
		{d.unbound, "unbound (ECS, no cookies): near A for 900 client /24s", func(i int) (string, string) {
			return "near.gslb.example", fmt.Sprintf("%d.%d.%d.0/24", 20+i%80, i*31%256, i*17%256)
		}},
		{d.named, "named (cookies): 900 names below *.edge", func(i int) (string, string) {
			return fmt.Sprintf("rrl-%d.edge.gslb.example", i), ""
		}},
	} {
		before := map[string]int{}
		for _, s := range d.ns {
			for a, v := range rrlCounters(t, s) {
				before[a] += v
			}
		}
		took := make([]time.Duration, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					name, ecs := tc.query(i)
					start := time.Now()
					_, took[i], errs[i] = ask(tc.r.addr, name, dns.TypeA, ecs, true, 5*time.Second)
					if rest := interval - time.Since(start); rest > 0 {
						time.Sleep(rest)
					}
				}
			})
		}
		wg.Wait()
		delta := map[string]int{}
		for _, s := range d.ns {
			for a, v := range rrlCounters(t, s) {
				delta[a] += v
			}
		}
		for a := range delta {
			delta[a] -= before[a]
		}
		failed := 0
		var lastErr error
		for _, err := range errs {
			if err != nil {
				failed++
				lastErr = err
			}
		}
		sorted := slices.Clone(took)
		slices.Sort(sorted)
		report(t, sc, tc.what, "%d/%d failed; p50 %v, p99 %v, slowest %v; the name servers answered %d, slipped %d, dropped %d, exempt by cookie %d",
			failed, n, sorted[n/2].Round(time.Millisecond), sorted[n*99/100].Round(time.Millisecond), sorted[n-1].Round(time.Millisecond),
			delta["answered"], delta["slipped"], delta["dropped"], delta["exempt_cookie"])
		if tc.r == d.named {
			if failed > 0 || delta["slipped"]+delta["dropped"] > 0 {
				t.Errorf("BIND, which sends cookies, was limited: %d failed (last: %v), %d slipped, %d dropped", failed, lastErr, delta["slipped"], delta["dropped"])
			}
			continue
		}
		if delta["slipped"] == 0 {
			t.Errorf("unbound was not limited (%v): the scenario measures nothing", delta)
		}
	}
}
