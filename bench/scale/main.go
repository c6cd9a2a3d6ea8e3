// Command scale measures how the control path of one `meridian server`
// (with its embedded etcd) grows with the number of services
// (docs/architecture.md, The incremental snapshot): for each size it
// starts a server, applies the services with `meridian ctl apply`, waits
// until every service answers over DNS, then times drains, health
// changes (real health reports, bound to probers' leases, written to its
// etcd) and weight changes until a DNS answer moves, restarts the server
// and waits until every service answers again. One line per size:
//
//	services=<N> apply_s=<s> all_answering_s=<s> drain_p99_ms=<ms> health_p99_ms=<ms> weight_p99_ms=<ms> restart_s=<s> rss_mb=<MB> rebuild_one_ms=<ms>
//
//	scale -bin bin/meridian -mmdb data/country.mmdb [-sizes 100,1000,10000] [-country 10000] [-reps 20]
//
// The services are 50% weighted, 30% geo with continent maps drawn at
// random (or, for the -country size, each with a country map of its own)
// and 20% nearest, over three regions. all_answering_s counts from the
// start of the apply; restart_s from the start of the new process;
// rss_mb is the largest resident set of the two server processes, each
// with its embedded etcd's process;
// rebuild_one_ms is the p99 of the snapshot build after one weight
// change. The line goes on with what /v1/status and /metrics said:
// tables_s (from the start of the apply until every merge was built),
// the partitions, the geo services with and without a merge, the merges'
// MB, the bytes per compiled service, the snapshot builds and services
// compiled until the tables were built, and the services compiled and
// refreshed per drain or undrain. Everything runs on loopback, on ports
// chosen free.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/childproc"
	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/embedded"
	"github.com/meridian-gslb/meridian/regions/store"
)

func main() {
	bin := flag.String("bin", "bin/meridian", "the meridian binary")
	mmdb := flag.String("mmdb", "data/country.mmdb", "country GeoIP database")
	sizes := flag.String("sizes", "100,1000,10000", "numbers of services, comma-separated")
	country := flag.Int("country", 10000, "one more run of this size where every geo service has a country map of its own (0: none)")
	reps := flag.Int("reps", 20, "repetitions of each timed change")
	zones := flag.String("zones", "bench/zones", "zone directory (gslb.example.zone)")
	flag.Parse()
	var runs []run
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			fatalf("-sizes: %q is not a number of services (at least 10)", f)
		}
		runs = append(runs, run{n: n})
	}
	if *country > 0 {
		runs = append(runs, run{n: *country, countryMaps: true})
	}
	for _, r := range runs {
		r.bin, r.mmdb, r.zones, r.reps = abs(*bin), abs(*mmdb), abs(*zones), *reps
		res, err := r.measure(context.Background())
		if err != nil {
			fatalf("%d services: %v", r.n, err)
		}
		fmt.Println(res)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		fatalf("%v", err)
	}
	return a
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
}

// run is one size.
type run struct {
	n                int
	countryMaps      bool
	bin, mmdb, zones string
	reps             int

	dir, token     string
	dnsAddr, http  string
	etcd           string
	names          []string
	maxRSS         int
	probeGeo, lbWt string
}

// The three regions and the address each answers with.
var regionVIP = map[string]string{"eu-west": "192.0.2.10", "us-east": "192.0.2.20", "ap-northeast": "192.0.2.30"}

const euClient = "193.0.0.0/24" // in Europe in the tor-geoipdb database

// Result is one line of the report.
type Result struct {
	N                              int
	Country                        bool
	Apply, AllAnswering, Restart   time.Duration
	DrainP99, HealthP99, WeightP99 time.Duration
	RebuildOneP99                  time.Duration
	RSSMB                          int
	// Tables is the time from the start of the apply until every merge
	// the budget takes was built; the rest is what /v1/status said then.
	Tables                   time.Duration
	Partitions               int
	MergedServices, Unmerged int
	MergeBytes               int64
	ServiceBytes             int
	// From the snapshot builds' counters (/metrics): the builds and the
	// services compiled from the start of the apply until the geo tables
	// were built, and per drain or undrain the services compiled and
	// refreshed.
	ApplyBuilds, ApplyCompiled    int
	DrainCompiled, DrainRefreshed float64
}

func (r Result) String() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	s := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) }
	tag := ""
	if r.Country {
		tag = " maps=country"
	}
	return fmt.Sprintf("services=%d apply_s=%s all_answering_s=%s drain_p99_ms=%s health_p99_ms=%s weight_p99_ms=%s restart_s=%s rss_mb=%d rebuild_one_ms=%s"+
		" tables_s=%s partitions=%d merged_services=%d unmerged_services=%d merges_mb=%.1f service_bytes=%d"+
		" builds_apply=%d compiled_apply=%d drain_compiled=%.1f drain_refreshed=%.0f%s",
		r.N, s(r.Apply), s(r.AllAnswering), ms(r.DrainP99), ms(r.HealthP99), ms(r.WeightP99), s(r.Restart), r.RSSMB, ms(r.RebuildOneP99),
		s(r.Tables), r.Partitions, r.MergedServices, r.Unmerged, float64(r.MergeBytes)/(1<<20), r.ServiceBytes/max(r.N, 1),
		r.ApplyBuilds, r.ApplyCompiled, r.DrainCompiled, r.DrainRefreshed, tag)
}

func (r *run) measure(ctx context.Context) (Result, error) {
	res := Result{N: r.n, Country: r.countryMaps}
	dir, err := os.MkdirTemp("", "meridian-scale-")
	if err != nil {
		return res, err
	}
	r.dir = dir
	defer func() {
		if keep := os.Getenv("SCALE_KEEP"); keep != "" {
			logf("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if err := r.setup(); err != nil {
		return res, err
	}
	srv, err := r.start()
	if err != nil {
		return res, err
	}
	defer func() { srv.stop() }()
	logf("%d services: server up; applying", r.n)

	c0, err := r.counters()
	if err != nil {
		return res, err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, r.bin, "ctl", "--server", "http://"+r.http, "--token-file", r.token, "apply", "-f", filepath.Join(dir, "state.yaml"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("ctl apply: %v: %s", err, tail(out.String()))
	}
	res.Apply = time.Since(start)
	if err := r.allAnswer(2 * time.Minute); err != nil {
		return res, err
	}
	res.AllAnswering = time.Since(start)
	logf("%d services: applied in %v, all answering after %v", r.n, res.Apply.Round(time.Millisecond), res.AllAnswering.Round(time.Millisecond))
	st, err := r.waitMerged(2 * time.Minute)
	if err != nil {
		return res, err
	}
	res.Tables = time.Since(start)
	gt := st.GeoTables
	res.Partitions, res.MergedServices, res.Unmerged, res.MergeBytes, res.ServiceBytes = gt.Partitions, gt.MergedServices, gt.UnmergedServices, gt.MergeBytes, st.ServiceBytes
	logf("%d services: geo tables built after %v: %d partitions, %d services on merges, %d without", r.n, res.Tables.Round(time.Millisecond),
		gt.Partitions, gt.MergedServices, gt.UnmergedServices)
	c1, err := r.counters()
	if err != nil {
		return res, err
	}
	res.ApplyBuilds, res.ApplyCompiled = int(c1.builds-c0.builds), int(c1.compiled-c0.compiled)

	if res.DrainP99, err = r.timeDrains(); err != nil {
		return res, err
	}
	c2, err := r.counters()
	if err != nil {
		return res, err
	}
	res.DrainCompiled = (c2.compiled - c1.compiled) / float64(2*r.reps)
	res.DrainRefreshed = (c2.refreshed - c1.refreshed) / float64(2*r.reps)
	if res.HealthP99, err = r.timeHealth(ctx); err != nil {
		return res, err
	}
	if res.WeightP99, res.RebuildOneP99, err = r.timeWeights(); err != nil {
		return res, err
	}
	r.maxRSS = max(r.maxRSS, srv.rssHWM())
	logf("%d services: restarting", r.n)
	srv.stop()
	start = time.Now()
	if srv, err = r.start(); err != nil {
		return res, err
	}
	if err := r.allAnswer(time.Minute); err != nil {
		return res, err
	}
	res.Restart = time.Since(start)
	// Once etcd's listing is served too.
	time.Sleep(2 * time.Second)
	r.maxRSS = max(r.maxRSS, srv.rssHWM())
	res.RSSMB = r.maxRSS / 1024
	return res, nil
}

func tail(s string) string {
	if len(s) > 600 {
		return "..." + s[len(s)-600:]
	}
	return s
}

// setup writes the configuration, an admin token and the state file.
func (r *run) setup() error {
	// Below the ephemeral range: the server is restarted on the same ports,
	// which no outgoing connection may take meanwhile.
	ports, err := testport.Ports(4)
	if err != nil {
		return err
	}
	r.dnsAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	r.http = fmt.Sprintf("127.0.0.1:%d", ports[1])
	r.etcd = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	secret := fmt.Sprintf("scale-%x", rand.Uint64())
	sum := sha256.Sum256([]byte(secret))
	r.token = filepath.Join(r.dir, "admin.token")
	if err := os.WriteFile(r.token, []byte(secret+"\n"), 0o600); err != nil {
		return err
	}
	tokens := fmt.Sprintf("tokens:\n  - name: scale\n    role: admin\n    sha256: %s\n", hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(r.dir, "tokens.yaml"), []byte(tokens), 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`listen:
  dns: ["%s"]
  http: "%s"
log:
  level: info
dns:
  udp_sockets: 1
  # The timed changes ask for one name every half millisecond from
  # 127.0.0.1 until its answer moves: exempt from response rate
  # limiting, whose dropped answers would each add the client's timeout.
  rrl:
    exempt: ["127.0.0.1"]
data_dir: %s/data
zone_dir: %s
zones:
  - origin: gslb.example.
    file: gslb.example.zone
geoip:
  database: %s
ecs:
  max_prefix_v4: 32
api:
  tokens_file: %s/tokens.yaml
etcd:
  embedded_client: 127.0.0.1:%d
  embedded_peer: 127.0.0.1:%d
`, r.dnsAddr, r.http, r.dir, r.zones, r.mmdb, r.dir, ports[2], ports[3])
	if err := os.WriteFile(filepath.Join(r.dir, "meridian.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.dir, "state.yaml"), r.state(), 0o644)
}

// state is the desired state: three regions, the probe services and
// n-2 services of the mix.
func (r *run) state() []byte {
	rng := rand.New(rand.NewPCG(uint64(r.n), 17))
	var b bytes.Buffer
	b.WriteString("regions:\n")
	for _, reg := range []struct{ name, vip6, lat, lon, cc, cont string }{
		{"eu-west", "2001:db8:10::10", "52.37", "4.9", "NL", "EU"},
		{"us-east", "2001:db8:20::20", "39.04", "-77.49", "US", "NA"},
		{"ap-northeast", "2001:db8:30::30", "35.68", "139.69", "JP", "AS"},
	} {
		fmt.Fprintf(&b, "  - name: %s\n    vips: [%s, \"%s\"]\n    location: {lat: %s, lon: %s, country: %s, continent: %s}\n    check: {type: tcp, port: 443}\n",
			reg.name, regionVIP[reg.name], reg.vip6, reg.lat, reg.lon, reg.cc, reg.cont)
	}
	names := []string{"eu-west", "us-east", "ap-northeast"}
	continents := []string{"AF", "AS", "EU", "NA", "OC", "SA"}
	countries := []string{"DE", "FR", "GB", "NL", "IT", "ES", "SE", "PL", "US", "CA", "MX", "BR", "AR", "JP", "CN", "KR", "IN", "SG", "AU", "NZ",
		"ZA", "NG", "EG", "KE", "RU", "UA", "TR", "IR", "SA", "AE", "ID", "TH", "VN", "PH", "MY", "CL", "CO", "PE", "NO", "FI", "DK", "AT", "CH", "BE", "PT", "IE", "CZ", "RO", "HU", "GR"}
	perm := func() string {
		p := rng.Perm(3)
		return "[" + names[p[0]] + ", " + names[p[1]] + ", " + names[p[2]] + "]"
	}
	b.WriteString("services:\n")
	r.probeGeo, r.lbWt = "probe-geo.gslb.example.", "probe-weights.gslb.example."
	r.names = []string{r.probeGeo, r.lbWt}
	fmt.Fprintf(&b, "  - name: %s\n    ttl: 30\n    policy: geo\n    regions: [{region: eu-west, weight: 1}, {region: us-east, weight: 1}, {region: ap-northeast, weight: 1}]\n"+
		"    geo: {continents: {EU: [eu-west, us-east], NA: [us-east, eu-west], AS: [ap-northeast, us-east]}, default: [us-east, eu-west]}\n", r.probeGeo)
	fmt.Fprintf(&b, "  - name: %s\n    ttl: 30\n    policy: weighted\n    regions: [{region: eu-west, weight: 100}, {region: us-east, weight: 0}, {region: ap-northeast, weight: 0}]\n", r.lbWt)
	for i := range r.n - 2 {
		name := fmt.Sprintf("s%05d.gslb.example.", i)
		r.names = append(r.names, name)
		fmt.Fprintf(&b, "  - name: %s\n    ttl: 30\n", name)
		regs := "    regions: [{region: eu-west, weight: %d}, {region: us-east, weight: %d}, {region: ap-northeast, weight: %d}]\n"
		switch k := i % 10; {
		case k < 5:
			b.WriteString("    policy: weighted\n")
			fmt.Fprintf(&b, regs, 1+rng.IntN(100), 1+rng.IntN(100), 1+rng.IntN(100))
		case k < 8:
			b.WriteString("    policy: geo\n")
			fmt.Fprintf(&b, regs, 1, 1, 1)
			if r.countryMaps {
				b.WriteString("    geo:\n      countries:\n")
				for _, j := range rng.Perm(len(countries))[:3+rng.IntN(8)] {
					fmt.Fprintf(&b, "        %s: %s\n", countries[j], perm())
				}
				fmt.Fprintf(&b, "      default: %s\n", perm())
				continue
			}
			b.WriteString("    geo:\n      continents:\n")
			for _, c := range continents {
				fmt.Fprintf(&b, "        %s: %s\n", c, perm())
			}
			fmt.Fprintf(&b, "      default: %s\n", perm())
		default:
			b.WriteString("    policy: nearest\n")
			fmt.Fprintf(&b, regs, 1, 1, 1)
		}
	}
	return b.Bytes()
}

// server is a running meridian server process.
type server struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

func (r *run) start() (*server, error) {
	logFile, err := os.OpenFile(filepath.Join(r.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.bin, "server", "--config", filepath.Join(r.dir, "meridian.yaml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A run killed by go test's timeout or ^C leaves no server behind on
	// the run's fixed ports.
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan error, 1), log: logFile}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + r.http + "/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("the server exited: %v; see %s", err, logFile.Name())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("the server did not come up within a minute")
		}
	}
}

func (s *server) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(20 * time.Second):
			childproc.KillGroup(s.cmd)
			s.done <- <-s.done
		}
	}
	s.log.Close()
}

// rssHWM is the peak resident set in KiB of the server and of its child
// processes (the embedded etcd runs in one): the sum of their peaks.
func (s *server) rssHWM() int {
	pid := s.cmd.Process.Pid
	own := vmHWM(pid)
	total := own
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// /proc/PID/stat: pid (comm) state ppid ...; comm may hold spaces.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if i := bytes.LastIndexByte(b, ')'); err == nil && i > 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				total += vmHWM(child)
			}
		}
	}
	logf("peak resident set: server %d MiB, its children %d MiB", own/1024, (total-own)/1024)
	return total
}

// vmHWM is a process's peak resident set in KiB (0 if it is gone).
func vmHWM(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// query asks name's A record, with ECS subnet unless it is "", and
// returns the first address ("" for none).
func (r *run) query(c *dns.Client, name, subnet string) string {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if subnet != "" {
		p := netip.MustParsePrefix(subnet)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		m.Extra = append(m.Extra, o)
	}
	resp, _, err := c.Exchange(m, r.dnsAddr)
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		return ""
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// allAnswer waits until every service has answered with an address once.
func (r *run) allAnswer(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	left := slices.Clone(r.names)
	for len(left) > 0 {
		var mu sync.Mutex
		var missing []string
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &dns.Client{Timeout: time.Second}
				for i := w; i < len(left); i += workers {
					if r.query(c, left[i], "") == "" {
						mu.Lock()
						missing = append(missing, left[i])
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		left = missing
		if len(left) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d services still not answering after %v (first %s)", len(left), limit, left[0])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// status reads /v1/status's snapshot part.
func (r *run) status() (snapshotStatus, error) {
	var st struct {
		Snapshot snapshotStatus `json:"snapshot"`
	}
	req, err := http.NewRequest("GET", "http://"+r.http+"/v1/status?services=false", nil)
	if err != nil {
		return st.Snapshot, err
	}
	r.authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st.Snapshot, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st.Snapshot, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Snapshot, err
}

type snapshotStatus struct {
	Revision     int64              `json:"revision"`
	Build        regions.BuildStats `json:"build"`
	ServiceBytes int                `json:"service_bytes"`
	GeoTables    struct {
		Location         *struct{} `json:"location"`
		Partitions       int       `json:"partitions"`
		Pending          int       `json:"pending"`
		MergeBytes       int64     `json:"merge_bytes"`
		MergedServices   int       `json:"merged_services"`
		UnmergedServices int       `json:"unmerged_services"`
	} `json:"geo_tables"`
}

// counters are the totals of the snapshot builds.
type counters struct{ builds, compiled, refreshed float64 }

// counters reads the snapshot builds' totals from /metrics.
func (r *run) counters() (counters, error) {
	var c counters
	resp, err := http.Get("http://" + r.http + "/metrics")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	want := map[string]*float64{
		"meridian_snapshot_builds_total":             &c.builds,
		"meridian_snapshot_services_compiled_total":  &c.compiled,
		"meridian_snapshot_services_refreshed_total": &c.refreshed,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if p := want[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(v, 64); err != nil {
				return c, fmt.Errorf("/metrics: %s: %w", name, err)
			}
			delete(want, name)
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	if len(want) > 0 {
		return c, fmt.Errorf("/metrics: %d of the snapshot counters missing", len(want))
	}
	return c, nil
}

// waitMerged waits until the geo tables are built: the timed changes
// are then of the steady state.
func (r *run) waitMerged(limit time.Duration) (snapshotStatus, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := r.status()
		if err == nil && st.GeoTables.Location != nil && st.GeoTables.Pending == 0 {
			return st, nil
		}
		if err != nil && strings.Contains(err.Error(), "40") {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("geo tables not built after %v (%v)", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// api makes one authenticated request.
func (r *run) api(method, path, body string) error {
	req, err := http.NewRequest(method, "http://"+r.http+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	r.authorize(req)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, buf.String())
	}
	return nil
}

func (r *run) authorize(req *http.Request) {
	b, _ := os.ReadFile(r.token)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
}

// until polls name (with subnet) until it answers want, from the moment
// of the call.
func (r *run) until(name, subnet, want string, limit time.Duration) (time.Duration, error) {
	c := &dns.Client{Timeout: time.Second}
	start := time.Now()
	for {
		if r.query(c, name, subnet) == want {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("%s (ECS %s) did not answer %s within %v", name, subnet, want, limit)
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// served waits until the server serves etcd's state at rev or later.
func (r *run) served(rev int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := r.status()
		if err == nil && st.Revision >= rev {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server does not serve revision %d after %v (%v)", rev, limit, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func p99(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

// timeDrains drains eu-west and waits for the European answer of the
// probe geo service to move to us-east, then undrains it; each way is a
// sample. The drain is forced: the probe weighted service answers from
// eu-west alone, and would answer NODATA.
func (r *run) timeDrains() (time.Duration, error) {
	var ds, writes []time.Duration
	for range r.reps {
		for _, step := range []struct{ path, want string }{{"drain?force=true", regionVIP["us-east"]}, {"undrain", regionVIP["eu-west"]}} {
			start := time.Now()
			if err := r.api("POST", "/v1/regions/eu-west/"+step.path, ""); err != nil {
				return 0, err
			}
			writes = append(writes, time.Since(start))
			if _, err := r.until(r.probeGeo, euClient, step.want, 30*time.Second); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(start))
			if st, err := r.status(); err == nil && os.Getenv("SCALE_TRACE") != "" {
				logf("%s %v: write %v, build %v (%+v)", step.path, ds[len(ds)-1].Round(100*time.Microsecond), writes[len(writes)-1].Round(100*time.Microsecond),
					st.Build.Took.Round(100*time.Microsecond), st.Build)
			}
		}
	}
	r.spread("drain", ds, writes)
	return p99(ds), nil
}

// spread logs the median and p99 of samples and of the writes they
// began with: how much of the time etcd took.
func (r *run) spread(what string, samples, writes []time.Duration) {
	med := func(ds []time.Duration) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	logf("%d services: %s: median %v, p99 %v; the write alone: median %v, p99 %v", r.n, what,
		med(samples).Round(100*time.Microsecond), p99(slices.Clone(samples)).Round(100*time.Microsecond),
		med(writes).Round(100*time.Microsecond), p99(slices.Clone(writes)).Round(100*time.Microsecond))
}

// timeHealth registers three probers under leases, as probers do, and
// has two of them report eu-west down (a quorum of the three), then up
// again; each way, from the write of the report that moves the region
// to the moved answer, is a sample: the second down report (one of
// three down keeps the region up), the first up report (one of three
// down is no longer a quorum). The other report of each step is written
// before or after the sample, and the sample starts once the server
// serves every write before it: a sample does not wait behind the
// snapshot builds of the set-up or of the step before.
func (r *run) timeHealth(ctx context.Context) (time.Duration, error) {
	// As the probers beside a server do: with the certificate it made
	// for them.
	pki := embedded.PKI{Dir: filepath.Join(r.dir, "data", "etcd-tls")}.Prober()
	cli, err := store.Connect(ctx, store.EtcdConfig{Endpoints: []string{r.etcd}, CAFile: pki.CAFile, CertFile: pki.CertFile, KeyFile: pki.KeyFile})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	st := store.NewStore(cli, "", nil)
	type prober struct {
		id    string
		lease clientv3.LeaseID
	}
	var probers []prober
	for i := range 3 {
		g, err := cli.Grant(ctx, 60)
		if err != nil {
			return 0, err
		}
		p := prober{fmt.Sprintf("scale-%d", i), g.ID}
		if err := st.RegisterProber(ctx, &regions.ProberInfo{ID: p.id, Region: "us-east", Started: time.Now()}, p.lease); err != nil {
			return 0, err
		}
		probers = append(probers, p)
	}
	defer func() {
		for _, p := range probers {
			_, _ = cli.Revoke(context.Background(), p.lease)
		}
	}()
	report := func(p prober, up bool) (int64, error) {
		now := time.Now()
		vips := []regions.VIPHealth{
			{Addr: netip.MustParseAddr(regionVIP["eu-west"]), Up: up, Since: now},
			{Addr: netip.MustParseAddr("2001:db8:10::10"), Up: up, Since: now},
		}
		return st.PutHealthReport(ctx, &regions.HealthReport{Region: "eu-west", Prober: p.id, ProberRegion: "us-east", Trusted: true, Observed: now, VIPs: vips}, p.lease)
	}
	// untimed writes a report and waits until the server serves it.
	untimed := func(p prober, up bool) error {
		rev, err := report(p, up)
		if err != nil {
			return err
		}
		return r.served(rev, 30*time.Second)
	}
	for _, p := range probers {
		if err := untimed(p, true); err != nil {
			return 0, err
		}
	}
	var ds, writes []time.Duration
	for range r.reps {
		for _, step := range []struct {
			up           bool
			want         string
			timed, other prober // the report that moves the region, and the other
		}{{false, regionVIP["us-east"], probers[1], probers[0]}, {true, regionVIP["eu-west"], probers[0], probers[1]}} {
			if !step.up {
				if err := untimed(step.other, step.up); err != nil {
					return 0, err
				}
			}
			start := time.Now()
			if _, err := report(step.timed, step.up); err != nil {
				return 0, err
			}
			writes = append(writes, time.Since(start))
			if _, err := r.until(r.probeGeo, euClient, step.want, 30*time.Second); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(start))
			if step.up {
				if err := untimed(step.other, step.up); err != nil {
					return 0, err
				}
			}
		}
	}
	r.spread("health", ds, writes)
	return p99(ds), nil
}

// timeWeights moves the probe weighted service's whole weight between
// eu-west and us-east; each move, from the write to the moved answer, is
// a sample, and so is the snapshot build it made.
func (r *run) timeWeights() (time.Duration, time.Duration, error) {
	var ds, builds, writes []time.Duration
	path := "/v1/services/" + strings.TrimSuffix(r.lbWt, ".") + "/weights"
	for range r.reps {
		for _, step := range []struct{ body, want string }{
			{`{"weights":{"eu-west":0,"us-east":100}}`, regionVIP["us-east"]},
			{`{"weights":{"eu-west":100,"us-east":0}}`, regionVIP["eu-west"]},
		} {
			start := time.Now()
			if err := r.api("PATCH", path, step.body); err != nil {
				return 0, 0, err
			}
			writes = append(writes, time.Since(start))
			if _, err := r.until(r.lbWt, "", step.want, 30*time.Second); err != nil {
				return 0, 0, err
			}
			ds = append(ds, time.Since(start))
			st, err := r.status()
			if err != nil {
				return 0, 0, err
			}
			if st.Build.Compiled != 1 {
				return 0, 0, fmt.Errorf("a weight change compiled %d services", st.Build.Compiled)
			}
			builds = append(builds, st.Build.Took)
		}
	}
	r.spread("weight", ds, writes)
	return p99(ds), p99(builds), nil
}
