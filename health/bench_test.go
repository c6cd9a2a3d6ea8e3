package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/internal/testtool"
	"github.com/meridian-gslb/meridian/regions"
	"github.com/meridian-gslb/meridian/regions/store"
)

// benchSeconds is how long a steady state is measured: BENCH_SECONDS, or
// def.
func benchSeconds(def time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv("BENCH_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return def
}

// benchEndpoints starts n loopback HTTP health endpoints answering 200 and
// returns their addresses and a counter of the requests they served.
func benchEndpoints(b *testing.B, n int) ([]string, *atomic.Int64) {
	var served atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","load":10,"capacity":100}`))
	})
	var addrs []string
	for range n {
		s := httptest.NewServer(h)
		b.Cleanup(s.Close)
		addrs = append(addrs, s.Listener.Addr().String())
	}
	return addrs, &served
}

// benchRegions writes nRegions regions of vipsPer VIPs each (198.18.0.0/15,
// the benchmarking range), their checks spread over addrs.
func benchRegions(b *testing.B, st *store.Store, nRegions, vipsPer int, typ string, addrs []string) {
	ctx := etcdtest.Ctx(b)
	k := 0
	for i := range nRegions {
		r := &regions.Region{Name: fmt.Sprintf("r%03d", i), Location: regions.Location{Lat: 1, Lon: 2},
			Check: regions.HealthCheck{Type: typ, Port: 80, Interval: regions.Duration(time.Second), Address: map[netip.Addr]string{}}}
		for j := range vipsPer {
			vip := netip.AddrFrom4([4]byte{198, 18, byte(i), byte(j + 1)})
			r.VIPs = append(r.VIPs, vip)
			r.Check.Address[vip] = addrs[k%len(addrs)]
			k++
		}
		if _, err := st.PutRegion(ctx, r, store.Always); err != nil {
			b.Fatal(err)
		}
	}
}

// countKeys counts the keys under prefix.
func countKeys(b *testing.B, cli *clientv3.Client, prefix string) int64 {
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		b.Fatal(err)
	}
	return resp.Count
}

// decidedReports counts the reports under prefix that hold vipsPer VIPs,
// every one up.
func decidedReports(b *testing.B, cli *clientv3.Client, prefix string, vipsPer int) int {
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		var rep regions.HealthReport
		if err := json.Unmarshal(kv.Value, &rep); err != nil {
			b.Fatalf("report %s: %v", kv.Key, err)
		}
		up := 0
		for _, v := range rep.VIPs {
			if v.Up {
				up++
			}
		}
		if len(rep.VIPs) == vipsPer && up == vipsPer {
			n++
		}
	}
	return n
}

func storeRevision(b *testing.B, cli *clientv3.Client) int64 {
	resp, err := cli.Get(context.Background(), "/", clientv3.WithCountOnly())
	if err != nil {
		b.Fatal(err)
	}
	return resp.Header.Revision
}

// BenchmarkSteadyStateWrites: 10 probers (in this process) check 50
// regions of 2 VIPs every second; once every report holds every VIP
// decided, the etcd writes per second over BENCH_SECONDS are what the
// steady state costs. By default it measures two refresh periods and a
// little more, so that what refreshes write is in the figure. Run with
// -benchtime 1x.
func BenchmarkSteadyStateWrites(b *testing.B) {
	const nRegions, vipsPer, nProbers = 50, 2, 10
	cli := etcdtest.Shared(b)
	prefix := etcdtest.Prefix(b)
	st := store.NewStore(cli, prefix, nil)
	addrs, _ := benchEndpoints(b, 10)
	benchRegions(b, st, nRegions, vipsPer, "http", addrs)
	ctx, cancel := context.WithCancel(context.Background())
	var ps []*Prober
	done := make(chan error, nProbers)
	for i := range nProbers {
		p, err := New(Config{ID: fmt.Sprintf("p%02d", i), Region: "bench", Prefix: prefix, Logger: etcdtest.Logger()}, cli)
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, p)
		go func() { done <- p.Run(ctx) }()
	}
	defer func() {
		cancel()
		for range nProbers {
			<-done
		}
	}()
	keys := store.NewKeys(prefix)
	deadline := time.Now().Add(2 * time.Minute)
	for decided := 0; decided < nRegions*nProbers; decided = decidedReports(b, cli, keys.HealthAll(), vipsPer) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d reports hold every VIP up", decided, nRegions*nProbers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	window := benchSeconds(2*DefaultRefresh + 2*time.Second)
	if window < 2*DefaultRefresh {
		b.Logf("BENCH_SECONDS=%v is shorter than two refresh periods (%v): the figure may leave refreshes out", window.Seconds(), DefaultRefresh)
	}
	b.ResetTimer()
	for range b.N {
		var checks0, writes0 uint64
		for _, p := range ps {
			s := p.Status().Stats
			checks0, writes0 = checks0+s.Checks, writes0+s.Writes
		}
		rev0, start := storeRevision(b, cli), time.Now()
		time.Sleep(window)
		rev1, took := storeRevision(b, cli), time.Since(start)
		var checks1, writes1 uint64
		for _, p := range ps {
			s := p.Status().Stats
			checks1, writes1 = checks1+s.Checks, writes1+s.Writes
		}
		b.ReportMetric(float64(rev1-rev0)/took.Seconds(), "etcd-writes/s")
		b.ReportMetric(float64(writes1-writes0)/took.Seconds(), "report-writes/s")
		b.ReportMetric(float64(checks1-checks0)/took.Seconds(), "checks/s")
		ttl, err := cli.TimeToLive(context.Background(), ps[0].Status().Lease)
		if err == nil {
			// Keep-alives go every third of the TTL, per prober; they are
			// not writes (no revision) but they are etcd requests.
			b.ReportMetric(float64(nProbers)/(float64(ttl.GrantedTTL)/3), "keepalives/s")
		}
	}
}

// BenchmarkProberProcess: one `meridian prober` process checks 500 VIPs
// (50 regions of 10) every second against loopback endpoints; its CPU (run
// time of all its threads, from /proc/PID/task/*/schedstat) and memory
// (VmRSS, VmHWM) over BENCH_SECONDS. Run with -benchtime 1x.
func BenchmarkProberProcess(b *testing.B) {
	for _, typ := range []string{"http", "tcp"} {
		b.Run(typ, func(b *testing.B) { benchProberProcess(b, typ) })
	}
}

func benchProberProcess(b *testing.B, typ string) {
	const nRegions, vipsPer = 50, 10
	bin := filepath.Join(b.TempDir(), "meridian")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/meridian-gslb/meridian/cmd/meridian").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cli := etcdtest.Shared(b)
	prefix := etcdtest.Prefix(b)
	st := store.NewStore(cli, prefix, nil)
	addrs, served := benchEndpoints(b, 10)
	benchRegions(b, st, nRegions, vipsPer, typ, addrs)
	cfg := filepath.Join(b.TempDir(), "prober.yaml")
	if err := os.WriteFile(cfg, []byte("etcd:\n  prefix: "+prefix+"\nlog:\n  level: warn\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "prober", "--region", "bench", "--id", "bench", "--config", cfg, "--etcd", strings.Join(etcdtest.SharedEndpoints(b), ","))
	cmd.Stderr = os.Stderr
	testtool.Start(b, cmd)
	keys := store.NewKeys(prefix)
	deadline := time.Now().Add(2 * time.Minute)
	for countKeys(b, cli, keys.HealthAll()) < nRegions {
		if time.Now().After(deadline) {
			b.Fatal("the prober did not write its reports")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	pid := cmd.Process.Pid
	b.ResetTimer()
	for range b.N {
		cpu0, served0, start := runTime(b, pid), served.Load(), time.Now()
		time.Sleep(benchSeconds(30 * time.Second))
		cpu1, served1, took := runTime(b, pid), served.Load(), time.Since(start)
		checks := float64(served1 - served0)
		if typ == "tcp" {
			checks = float64(nRegions*vipsPer) * took.Seconds() // no request to count: the schedule
		}
		b.ReportMetric(100*(cpu1-cpu0).Seconds()/took.Seconds(), "cpu-%")
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/checks, "cpu-µs/check")
		b.ReportMetric(checks/took.Seconds(), "checks/s")
		b.ReportMetric(procStatusMB(b, pid, "VmRSS"), "rss-MB")
		b.ReportMetric(procStatusMB(b, pid, "VmHWM"), "peak-rss-MB")
	}
}

// runTime is the CPU time of every thread of pid.
func runTime(b *testing.B, pid int) time.Duration {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(dirs) == 0 {
		b.Fatalf("schedstat of %d: %v", pid, err)
	}
	var ns int64
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		v, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		ns += v
	}
	return time.Duration(ns)
}

func procStatusMB(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
