//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// Where the probers, the regions' load balancers and the canary live:
// each prober on a loopback address of its own, as if on a host of its
// own in its region (its checks leave from it: source_address); each
// region's load balancers on another, a port per VIP.
var (
	regionOrder = []string{"eu-west", "us-east", "ap-northeast"}
	proberHosts = map[string]string{"eu-west": "127.0.0.41", "us-east": "127.0.0.42", "ap-northeast": "127.0.0.43"}
	siteHosts   = map[string]string{"eu-west": "127.0.0.21", "us-east": "127.0.0.22", "ap-northeast": "127.0.0.23"}
)

const canaryHost = "127.0.0.50"

// site is one region's load balancers: a stand-in for each VIP, where
// the region's check `address` sends the probers.
type site struct {
	region string
	vips   []netip.Addr // the region's order
	lbs    map[netip.Addr]*loadBalancer
	check  regions.HealthCheck // as the probers run it (defaults filled in)
}

func (s *site) fail() {
	for _, lb := range s.lbs {
		lb.fail()
	}
}

func (s *site) restore(t testing.TB) {
	t.Helper()
	for _, lb := range s.lbs {
		if err := lb.restore(); err != nil {
			t.Fatal(err)
		}
	}
}

// layoutRegions starts a stand-in for every VIP of the regions of
// deploy/state.yaml (IPv4 VIPs on port4, IPv6 VIPs on port6 of the
// region's host) and writes the state the servers bootstrap: that file
// with each check's `address` pointing at the stand-ins and its interval
// and timeout at 1 s (so that failures take seconds), nothing else
// changed. It fails unless every VIP's check goes to its stand-in: the
// VIPs themselves (192.0.2.x, 2001:db8::) are never probed.
func layoutRegions(t testing.TB, port4, port6 int) (map[string]*site, string) {
	t.Helper()
	const file = "deploy/state.yaml"
	doc := readYAMLMap(t, file)
	sites := map[string]*site{}
	regs, _ := doc["regions"].([]any)
	for _, r := range regs {
		m, _ := r.(map[string]any)
		name, _ := m["name"].(string)
		check, _ := m["check"].(map[string]any)
		host, ok := siteHosts[name]
		if !ok || check == nil {
			t.Fatalf("%s: region %q: not one of %v, or without a check", file, name, regionOrder)
		}
		if _, ok := check["address"]; ok {
			t.Fatalf("%s: region %s's check has an address: production checks go to the VIPs", file, name)
		}
		for _, k := range []string{"interval", "timeout"} {
			if _, ok := check[k]; !ok {
				t.Fatalf("%s: region %s's check has no %s: the suite changes only what the file shows", file, name, k)
			}
			check[k] = "1s"
		}
		s := &site{region: name, lbs: map[netip.Addr]*loadBalancer{}}
		address := map[string]string{}
		vips, _ := m["vips"].([]any)
		for _, v := range vips {
			vip, err := netip.ParseAddr(fmt.Sprint(v))
			if err != nil {
				t.Fatalf("%s: region %s: %v", file, name, err)
			}
			port := port4
			if vip.Is6() {
				port = port6
			}
			lb := newLoadBalancer(t, fmt.Sprintf("%s:%d", host, port))
			s.vips = append(s.vips, vip)
			s.lbs[vip] = lb
			address[vip.String()] = lb.addr
		}
		check["address"] = address
		sites[name] = s
	}
	if len(sites) != len(regionOrder) {
		t.Fatalf("%s has regions %v, want %v", file, sites, regionOrder)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(runDir, "state.yaml")
	writeFile(t, path, string(out))

	desired, err := regions.LoadDesired(path)
	if err != nil {
		t.Fatalf("the suite's state: %v", err)
	}
	for _, r := range desired.Regions {
		s := sites[r.Name]
		for _, vip := range r.VIPs {
			if got, want := r.Check.Target(vip), s.lbs[vip].addr; got != want {
				t.Fatalf("region %s: the check of %v goes to %s, not to its stand-in %s", r.Name, vip, got, want)
			}
		}
		s.check = r.Check.WithDefaults()
	}
	return sites, path
}

// prober is one `meridian prober` process, run as docs/deploy.md shows:
// deploy/prober.yaml with this run's addresses and paths, the region and
// the etcd endpoints as flags, the probers' client certificate.
type prober struct {
	region string
	id     string     // HOSTNAME@REGION, the default
	source netip.Addr // its checks and canary leave from here
	http   string     // the base URL of its /metrics and /health
	config string
	args   []string
	p      *proc
}

// proberFlags are the flags the suite gives meridian prober: the guide's
// prober commands and its unit use these and no others (TestDeployGuide).
var proberFlags = []string{"--region", "--etcd", "--config", "--check-config"}

// proberConfig is deploy/prober.yaml with this run's etcd, certificates,
// source address, canary and HTTP listener (on the source address: each
// prober has its own).
func proberConfig(t testing.TB, c *etcdCluster, source netip.Addr, httpPort int, canaryURL string) []byte {
	t.Helper()
	const file = "deploy/prober.yaml"
	cfg := readYAMLMap(t, file)
	set := func(path []string, v any) { setYAMLKey(t, cfg, file, path, v) }
	ec := c.clientConfig("meridian-prober")
	set([]string{"etcd", "endpoints"}, ec.Endpoints)
	set([]string{"etcd", "ca_file"}, ec.CAFile)
	set([]string{"etcd", "cert_file"}, ec.CertFile)
	set([]string{"etcd", "key_file"}, ec.KeyFile)
	set([]string{"log", "format"}, "text")
	set([]string{"source_address"}, source.String())
	set([]string{"canary", "url"}, canaryURL)
	set([]string{"listen", "http"}, netip.AddrPortFrom(source, uint16(httpPort)).String())
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newProber writes the prober's configuration and checks it with
// --check-config, as the unit's ExecStartPre does; start runs it.
func newProber(t testing.TB, region string, c *etcdCluster, httpPort int, canaryURL string) *prober {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pr := &prober{region: region, id: host + "@" + region, source: netip.MustParseAddr(proberHosts[region])}
	dir := filepath.Join(runDir, "prober-"+region)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pr.config = filepath.Join(dir, "prober.yaml")
	pr.http = "http://" + netip.AddrPortFrom(pr.source, uint16(httpPort)).String()
	writeFile(t, pr.config, string(proberConfig(t, c, pr.source, httpPort, canaryURL)))
	pr.args = []string{binary, "prober", "--region", region, "--etcd", strings.Join(c.endpoints(), ","), "--config", pr.config}
	out, err := exec.Command(pr.args[0], append(pr.args[1:], "--check-config")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Fatalf("%s --check-config: %v\n%s", strings.Join(pr.args, " "), err, out)
	}
	return pr
}

func (pr *prober) start(t testing.TB) {
	t.Helper()
	if pr.p != nil && !pr.p.exited() {
		t.Fatalf("the prober of %s is already running", pr.region)
	}
	pr.p = startProc(t, "prober-"+pr.region, pr.args...)
}

// stop ends the prober gracefully (SIGTERM: it revokes its lease).
func (pr *prober) stop(t testing.TB) {
	t.Helper()
	if pr.p == nil {
		return
	}
	if err := pr.p.stop(10 * time.Second); err != nil {
		t.Error(err)
	}
}

func (d *deployment) site(region string) *site { return d.sites[region] }

func (d *deployment) prober(region string) *prober {
	for _, pr := range d.probers {
		if pr.region == region {
			return pr
		}
	}
	panic("no prober in " + region)
}

// voteCheck judges one prober's vote on one VIP (ok: the status has one).
type voteCheck func(vip netip.Addr, pr *prober, v regions.Vote, ok bool) error

// countedUp: every prober's vote is counted and says up.
func countedUp(_ netip.Addr, pr *prober, v regions.Vote, ok bool) error {
	switch {
	case !ok:
		return fmt.Errorf("no vote of %s", pr.id)
	case !v.Counted || !v.Up:
		return fmt.Errorf("%s's vote: %+v, want counted and up", pr.id, v)
	}
	return nil
}

// checkVotes applies check to every prober's vote on every VIP in a
// server's status, and counts the votes seen.
func checkVotes(d *deployment, st *apitypes.Status, check voteCheck) (int, error) {
	votes := map[netip.Addr]map[string]regions.Vote{}
	for _, r := range st.Regions {
		for _, v := range r.VIPs {
			vip := v.Addr
			votes[vip] = map[string]regions.Vote{}
			for _, vote := range v.Votes {
				if _, dup := votes[vip][vote.Prober]; dup {
					return 0, fmt.Errorf("%v: two votes of %s", vip, vote.Prober)
				}
				votes[vip][vote.Prober] = vote
			}
		}
	}
	n := 0
	for _, region := range regionOrder {
		for _, vip := range d.site(region).vips {
			got, ok := votes[vip]
			if !ok {
				return 0, fmt.Errorf("no VIP %v in the status", vip)
			}
			n += len(got)
			for _, pr := range d.probers {
				v, ok := got[pr.id]
				if err := check(vip, pr, v, ok); err != nil {
					if !ok && pr.p != nil && pr.p.exited() { // a vote missing for good
						return 0, fmt.Errorf("%s %v: %v: %w", region, vip, err, exitedErr(pr.p))
					}
					return 0, fmt.Errorf("%s %v: %w", region, vip, err)
				}
			}
		}
	}
	return n, nil
}

// waitVotes waits until check holds for every vote on both servers and
// returns how long each took from t0 (each server's /v1/status polled
// every 20 ms; the wait is bounded by waitLimit).
func waitVotes(t testing.TB, d *deployment, what string, t0 time.Time, check voteCheck) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(d.ns))
	for i, s := range d.ns {
		waitFor(t, s.name+": "+what, waitLimit, func() error {
			if s.p.exited() {
				return exitedErr(s.p)
			}
			st, err := s.status()
			if err != nil {
				return err
			}
			if _, err := checkVotes(d, st, check); err != nil {
				return err
			}
			took[i] = time.Since(t0)
			return nil
		})
	}
	return took
}

// startProbers starts one prober per region and waits until both servers
// count every prober's up vote on every VIP.
func startProbers(t testing.TB, d *deployment) {
	t.Helper()
	canaryURL := "http://" + d.canary.addr + "/healthz"
	for _, region := range regionOrder {
		d.probers = append(d.probers, newProber(t, region, d.etcd, d.proberHTTPPort, canaryURL))
	}
	start := time.Now()
	for _, pr := range d.probers {
		pr.start(t)
	}
	took := waitVotes(t, d, "every prober's up vote counted on every VIP", start, countedUp)
	report(t, "0 setup", "3 probers (TLS client certificate): every VIP has their 3 counted up votes on ns1 / ns2 after", "%v / %v",
		took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))

	// Every stand-in and the canary were reached from the three probers'
	// source addresses, and from nowhere else.
	var want []netip.Addr
	for _, pr := range d.probers {
		want = append(want, pr.source)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	for _, region := range regionOrder {
		for _, vip := range d.site(region).vips {
			if got := d.site(region).lbs[vip].sources(); !slices.Equal(got, want) {
				t.Errorf("the stand-in of %s %v was checked from %v, want the probers' %v", region, vip, got, want)
			}
		}
	}
	waitFor(t, "the canary checked by every prober", waitLimit, func() error {
		if got := d.canary.sources(); !slices.Equal(got, want) {
			return fmt.Errorf("the canary was reached from %v, want %v", got, want)
		}
		return nil
	})
	// Each prober says on its own listener that it is ready, holds its
	// lease and reaches its canary.
	for _, pr := range d.probers {
		waitFor(t, "prober "+pr.region+" ready on its HTTP listener", waitLimit, func() error {
			if _, err := httpBody(pr.http + "/health/ready"); err != nil {
				return err
			}
			body, err := httpBody(pr.http + "/metrics")
			if err != nil {
				return err
			}
			for _, line := range []string{"meridian_prober_lease_held 1", "meridian_prober_canary_up 1", "meridian_prober_self_trusted 1"} {
				if !strings.Contains(body, "\n"+line+"\n") {
					return fmt.Errorf("%s/metrics lacks %q", pr.http, line)
				}
			}
			return nil
		})
	}
}

// httpBody is the body of GET url, which must answer 200.
func httpBody(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// registeredLive checks that the prober's registration in etcd is bound
// to a lease that is alive.
func registeredLive(d *deployment, pr *prober) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := d.cli.Get(ctx, store.NewKeys(store.DefaultPrefix).Prober(pr.id))
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return fmt.Errorf("%s is not registered under a lease", pr.id)
	}
	ttl, err := d.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		return err
	}
	if ttl.TTL <= 0 {
		return fmt.Errorf("%s's lease %x has expired", pr.id, resp.Kvs[0].Lease)
	}
	return nil
}

// etcdRevision is the cluster's current revision.
func etcdRevision(t testing.TB, d *deployment) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	resp, err := d.cli.Get(ctx, "/meridian/none")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// secs formats a duration in seconds with two decimals.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// scenarioRegionFails: a region's health endpoints fail; both servers
// stop answering with it within fall × interval (plus the jitter of the
// checks and the propagation), and answer with it again after rise ×
// interval once they recover. /v1/status on each server holds every
// prober's vote on every VIP.
func scenarioRegionFails(t *testing.T, d *deployment) {
	const sc = "3 region health fails"
	const www = "www.gslb.example" // waitAnswer asks as a European client
	eu := d.site("eu-west")
	chk := eu.check
	interval := time.Duration(chk.Interval)
	report(t, sc, "checks (deploy/state.yaml, address mapped to the stand-ins)", "%s every %v, timeout %v, fall %d, rise %d, from 3 probers",
		chk.Type, interval, time.Duration(chk.Timeout), chk.Fall, chk.Rise)

	// Steady state: every vote counted and up on both servers; no
	// prober writes to etcd.
	rev0 := etcdRevision(t, d)
	const steady = 3 * time.Second
	time.Sleep(steady)
	rev1 := etcdRevision(t, d)
	report(t, sc, "etcd writes in a steady state (3 probers checking 6 VIPs every second)", "%d in %v", rev1-rev0, steady)
	for _, s := range d.ns {
		n, err := checkVotes(d, s.mustStatus(t), countedUp)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		report(t, sc, s.name+": /v1/status votes", "%d: each of the 3 probers' on each of the 6 VIPs, counted, up", n)
	}

	// With fall failures in a row at intervals of at most interval + 10%
	// (the jitter), the first of them within one such interval of the
	// failure: the bound, plus the propagation goal.
	jittered := interval + interval/10
	downBound := time.Duration(chk.Fall)*jittered + propagationGoal
	upBound := time.Duration(chk.Rise)*jittered + propagationGoal
	if got := serviceAnswer(d.ns[0], www, "193.0.0.0/24"); got != regionV4["eu-west"] {
		t.Fatalf("www for Europe before the failure: %q, want %s", got, regionV4["eu-west"])
	}
	revFail := etcdRevision(t, d)
	t0 := time.Now()
	eu.fail()
	took := waitAnswer(t, d.ns, www, regionV4["us-east"], t0)
	report(t, sc, "eu-west's endpoints answer 503 → www for Europe leaves it, on ns1 / ns2", "%s / %s (bound fall × interval × 1.1 + %v = %s: %s)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(downBound), bounded(t, "eu-west failed → www for Europe on us-east", downBound, took...))
	down := func(vip netip.Addr, pr *prober, v regions.Vote, ok bool) error {
		if !slices.Contains(eu.vips, vip) {
			return countedUp(vip, pr, v, ok)
		}
		if !ok || !v.Counted || v.Up || v.Reason == "" {
			return fmt.Errorf("%s's vote: %+v, want counted, down, with the reason", pr.id, v)
		}
		return nil
	}
	waitVotes(t, d, "every prober's vote on eu-west down", t0, down)
	for _, s := range d.ns {
		st := s.mustStatus(t)
		for _, r := range st.Regions {
			if r.Name == "eu-west" {
				report(t, sc, s.name+": eu-west in /v1/status", "%s, VIP %s: %s with %d down votes (%q)",
					r.Status, r.VIPs[0].Addr, r.VIPs[0].Status, r.VIPs[0].Down, r.VIPs[0].Votes[0].Reason)
				if r.Status != "down" {
					t.Errorf("%s: eu-west is %s with every VIP down", s.name, r.Status)
				}
			}
		}
	}

	t1 := time.Now()
	eu.restore(t)
	took = waitAnswer(t, d.ns, www, regionV4["eu-west"], t1)
	report(t, sc, "eu-west's endpoints answer 200 again → www for Europe back on ns1 / ns2", "%s / %s (bound rise × interval × 1.1 + %v = %s: %s)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(upBound), bounded(t, "eu-west recovered → www for Europe on eu-west", upBound, took...))
	waitVotes(t, d, "every vote counted and up again", t1, countedUp)
	report(t, sc, "etcd writes for eu-west's failure and recovery", "%d (3 probers; 2 VIPs, each down then up)", etcdRevision(t, d)-revFail)
}

// watchAnswers asks both servers for www as a client of each continent
// every 50 ms and counts the answers that are not the continent's
// region: with every region up, none may change.
func watchAnswers(d *deployment) *tickChecks {
	return everyTick(func(w *tickChecks) {
		for _, s := range d.ns {
			for _, c := range continents {
				w.asking()
				if got := serviceAnswer(s, "www.gslb.example", c.ecs); got != c.v4 {
					w.fail(fmt.Sprintf("%s answered %q to %s, want %s (%s)", s.name, got, c.name, c.v4, c.region))
				}
			}
		}
	})
}

// logSize is the length of the process's log now: logHas looks at what
// comes after it.
func logSize(t testing.TB, p *proc) int {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// logHas waits until the process's log holds s after offset from.
func logHas(t testing.TB, p *proc, from int, s string) time.Duration {
	t.Helper()
	return waitFor(t, p.name+" logging "+s, waitLimit, func() error {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		if len(b) < from || !strings.Contains(string(b[from:]), s) {
			return errors.New("not yet")
		}
		return nil
	})
}

// scenarioProberCutOff: one prober's own network is cut. Every load
// balancer blackholes its source address (its connections are accepted
// and never answered, as on a path that drops its packets): all its
// checks fail while the other probers see every region up. It must
// drain nothing: its self-check marks it untrusted, and /v1/status shows
// its votes with counted false and the reason. Then its canary is cut
// too, the load balancers come back (its votes turn up but stay
// uncounted while the canary is unreachable), and the canary comes back.
// Last, a killed prober's votes go with its lease, and a stopped one's at
// once.
func scenarioProberCutOff(t *testing.T, d *deployment) {
	const sc = "4 prober cut off"
	cut := d.prober("eu-west")
	watch := watchAnswers(d)
	defer func() {
		if watch != nil {
			watch.finish()
		}
	}()

	// Cut beyond the canary: the path to every region drops its packets,
	// the canary (nearer, on its side of the cut) answers.
	logFrom := logSize(t, cut.p)
	t0 := time.Now()
	for _, region := range regionOrder {
		for _, lb := range d.site(region).lbs {
			lb.blackhole(cut.source)
		}
	}
	untrusted := func(down bool) voteCheck {
		return func(vip netip.Addr, pr *prober, v regions.Vote, ok bool) error {
			if pr != cut {
				return countedUp(vip, pr, v, ok)
			}
			switch {
			case !ok:
				return fmt.Errorf("no vote of %s", pr.id)
			case v.Counted || !strings.Contains(v.Ignored, "self-check"):
				return fmt.Errorf("%s's vote: %+v, want not counted: failed its self-check", pr.id, v)
			case down && (v.Up || v.Reason == ""):
				return fmt.Errorf("%s's vote: %+v, want down, with the reason", pr.id, v)
			}
			return nil
		}
	}
	// The bounds of docs/deploy.md and docs/health.md: a cut-off prober
	// distrusts itself within about one interval and one timeout (its
	// checks hang until their timeout); its votes turn down after fall
	// such failures, up after rise successes; the canary is checked
	// every canary interval, one failure distrusts and two successes
	// trust again; every change reaches the servers within the
	// propagation goal. The example regions' checks are alike: the
	// slowest is used.
	ck := slowestCheck(d)
	canaryEvery, canaryTimeout := canaryTiming(t)
	jittered := ck.interval + ck.interval/10
	took := waitVotes(t, d, cut.id+"'s votes not counted", t0, untrusted(false))
	bound := jittered + ck.timeout + propagationGoal
	report(t, sc, "eu-west's prober blackholed by every load balancer (its canary answers): its votes uncounted on ns1 / ns2 after", "%s / %s (bound interval × 1.1 + timeout + %v = %s: %s)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(bound), bounded(t, "cut-off prober uncounted", bound, took...))
	logHas(t, cut.p, logFrom, "self-check failed; reports marked untrusted\" reason=\"the last check of every VIP failed")
	took = waitVotes(t, d, cut.id+"'s votes down and not counted", t0, untrusted(true))
	var sample regions.Vote
	for _, r := range d.ns[0].mustStatus(t).Regions {
		for _, v := range r.VIPs[0].Votes {
			if v.Prober == cut.id {
				sample = v
			}
		}
	}
	bound = time.Duration(ck.fall)*jittered + ck.timeout + propagationGoal
	report(t, sc, "its 6 votes turned down after (fall × interval, as for a region), on ns1 / ns2", "%s / %s (bound fall × interval × 1.1 + timeout + %v = %s: %s), counted %v: %q; reason %q",
		secs(took[0]), secs(took[1]), propagationGoal, secs(bound), bounded(t, "cut-off prober's votes down", bound, took...), sample.Counted, sample.Ignored, sample.Reason)
	for _, s := range d.ns {
		for _, r := range s.mustStatus(t).Regions {
			if r.Status != "up" {
				t.Errorf("%s: %s is %s with one prober cut off", s.name, r.Name, r.Status)
			}
		}
	}

	// The whole of its network cut: the canary too.
	logFrom = logSize(t, cut.p)
	d.canary.blackhole(cut.source)
	canaryCut := logHas(t, cut.p, logFrom, "canary unreachable")
	bound = canaryEvery + canaryTimeout
	report(t, sc, "its canary blackholed too: it logs the canary unreachable after", "%s (bound canary interval + timeout = %s: %s)",
		secs(canaryCut), secs(bound), bounded(t, "canary cut → logged unreachable", bound, canaryCut))

	// The load balancers answer it again, the canary does not: its checks
	// succeed, its votes turn up, and still do not count.
	t2 := time.Now()
	for _, region := range regionOrder {
		for _, lb := range d.site(region).lbs {
			lb.unblock(cut.source)
		}
	}
	upUncounted := func(vip netip.Addr, pr *prober, v regions.Vote, ok bool) error {
		if err := untrusted(false)(vip, pr, v, ok); err != nil || pr != cut {
			return err
		}
		if !v.Up {
			return fmt.Errorf("%s's vote: %+v, want up", pr.id, v)
		}
		return nil
	}
	took = waitVotes(t, d, cut.id+"'s votes up, not counted", t2, upUncounted)
	// A check in flight at the unblocking still hangs until its timeout.
	bound = ck.timeout + time.Duration(ck.rise)*jittered + propagationGoal
	report(t, sc, "load balancers reachable again, canary not: its votes up and still uncounted on ns1 / ns2 after", "%s / %s (bound timeout + rise × interval × 1.1 + %v = %s: %s)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(bound), bounded(t, "cut-off prober's votes up again", bound, took...))

	t3 := time.Now()
	d.canary.unblock(cut.source)
	took = waitVotes(t, d, "every vote counted again", t3, countedUp)
	bound = canaryTimeout + 2*canaryEvery + propagationGoal
	report(t, sc, "canary reachable again: its votes counted on ns1 / ns2 after", "%s / %s (bound canary timeout + 2 × interval + %v = %s: %s; cut off %s in all)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(bound), bounded(t, "canary back → votes counted", bound, took...), secs(time.Since(t0)))

	asked, wrong, last := watch.finish()
	watch = nil
	report(t, sc, "www for Europe, North America and Asia on ns1 and ns2 every 50 ms throughout", "%d/%d answers changed region", wrong, asked)
	if wrong > 0 || asked == 0 {
		t.Errorf("answers changed with one prober cut off: %d of %d; last: %s", wrong, asked, last)
	}

	// A prober killed: nothing withdraws its votes; they count until
	// its lease expires (3 × the shortest check interval, at least 2 s).
	killed := d.prober("us-east")
	ttl := max(3*time.Duration(d.site("us-east").check.Interval), 2*time.Second)
	gone := func(who *prober) voteCheck {
		return func(vip netip.Addr, pr *prober, v regions.Vote, ok bool) error {
			if pr != who {
				return countedUp(vip, pr, v, ok)
			}
			if ok {
				return fmt.Errorf("%s still votes: %+v", pr.id, v)
			}
			return nil
		}
	}
	t4 := time.Now()
	if err := killed.p.kill(); err != nil {
		t.Fatal(err)
	}
	took = waitVotes(t, d, "the killed prober's votes gone", t4, gone(killed))
	bound = ttl + propagationGoal
	report(t, sc, "us-east's prober killed (SIGKILL): its votes gone from ns1 / ns2 after", "%s / %s (bound lease TTL + %v = %s: %s)",
		secs(took[0]), secs(took[1]), propagationGoal, secs(bound), bounded(t, "killed prober's votes gone", bound, took...))
	t5 := time.Now()
	killed.start(t)
	took = waitVotes(t, d, "the restarted prober's votes counted", t5, countedUp)
	report(t, sc, "us-east's prober restarted: its up votes counted on ns1 / ns2 after", "%s / %s", secs(took[0]), secs(took[1]))

	// A prober stopped: it revokes its lease on the way out.
	stopped := d.prober("ap-northeast")
	t6 := time.Now()
	stopped.stop(t)
	exited := time.Since(t6)
	took = waitVotes(t, d, "the stopped prober's votes gone", t6, gone(stopped))
	// At once: its exit, then the propagation goal.
	bound = exited + propagationGoal
	report(t, sc, "ap-northeast's prober stopped (SIGTERM): exited after, its votes gone from ns1 / ns2 after", "%s; %s / %s (bound exit + %v: %s)",
		ms(exited), ms(took[0]), ms(took[1]), propagationGoal, bounded(t, "stopped prober's votes gone", bound, took...))
	t7 := time.Now()
	stopped.start(t)
	waitVotes(t, d, "the restarted prober's votes counted", t7, countedUp)
}

// checkTiming is the slowest health check of the example regions.
type checkTiming struct {
	interval, timeout time.Duration
	fall, rise        int
}

func slowestCheck(d *deployment) checkTiming {
	var c checkTiming
	for _, s := range d.sites {
		c.interval = max(c.interval, time.Duration(s.check.Interval))
		c.timeout = max(c.timeout, time.Duration(s.check.Timeout))
		c.fall = max(c.fall, s.check.Fall)
		c.rise = max(c.rise, s.check.Rise)
	}
	return c
}

// canaryTiming is the canary's interval and timeout in deploy/prober.yaml,
// which the probers run.
func canaryTiming(t testing.TB) (interval, timeout time.Duration) {
	t.Helper()
	canary, _ := readYAMLMap(t, "deploy/prober.yaml")["canary"].(map[string]any)
	parse := func(key string) time.Duration {
		s, _ := canary[key].(string)
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("deploy/prober.yaml: canary.%s %q: %v", key, s, err)
		}
		return d
	}
	return parse("interval"), parse("timeout")
}

// restartProbers restarts the probers one at a time, each counted again
// on both servers before the next goes, as docs/deploy.md says after a
// restore (and for an upgrade).
func restartProbers(t testing.TB, d *deployment) time.Duration {
	t.Helper()
	start := time.Now()
	for _, pr := range d.probers {
		pr.stop(t)
		pr.start(t)
		waitVotes(t, d, pr.id+" restarted, every vote counted", time.Now(), countedUp)
	}
	return since(start)
}
