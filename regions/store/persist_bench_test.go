package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// churnBase is the state of BenchmarkPersistHealthChurn: two regions, a
// latency service, three probers per region and a latency table of a
// million /24 prefixes. Built once per benchmark binary.
var churnBase = sync.OnceValue(func() *regions.State {
	st := regions.NewState()
	st.Revision = 1
	st.Regions["eu-west"] = testRegion("eu-west", 1)
	st.Regions["us-east"] = testRegion("us-east", 2)
	svc := testService("www.gslb.example.", "eu-west", "us-east")
	svc.Policy = regions.PolicyLatency
	st.Services[svc.Name] = svc
	for _, r := range []string{"eu-west", "us-east"} {
		st.Health[r] = map[string]*regions.HealthReport{}
	}
	for i := range 3 {
		id := "p" + strconv.Itoa(i)
		st.Probers[id] = &regions.ProberInfo{ID: id, Region: "eu-west", Version: "1", Started: time.Unix(1700000000, 0).UTC(), Lease: int64(100 + i)}
		for r, h := range st.Health {
			rep := upReport(r, id, st.Regions[r].VIPs[0].String())
			rep.Lease = int64(100 + i)
			h[id] = rep
		}
	}
	const n = 1_000_000
	var csv bytes.Buffer
	csv.Grow(n * 24)
	csv.WriteString("cidr,region,rtt_ms\n")
	for i := range n {
		region := "eu-west"
		if i%3 == 0 {
			region = "us-east"
		}
		fmt.Fprintf(&csv, "%d.%d.%d.0/24,%s,%d\n", 1+i>>16, i>>8&255, i&255, region, 5+i%300)
	}
	st.Latency = &regions.LatencyData{ID: "bench-1m", Entries: n, CSV: csv.Bytes()}
	return st
})

// healthChange returns st with one report replaced, as a watch event
// carrying a prober's new report would.
func healthChange(st *regions.State, i int) *regions.State {
	next := st.Clone()
	next.Revision++
	region := "eu-west"
	if i%2 == 1 {
		region = "us-east"
	}
	id := "p" + strconv.Itoa(i%3)
	old := next.Health[region][id]
	rep := *old
	rep.Observed = old.Observed.Add(time.Second)
	rep.VIPs = []regions.VIPHealth{{Addr: old.VIPs[0].Addr, Up: i%4 != 0, Successes: 2, RTT: regions.Duration(time.Duration(i%50) * time.Millisecond), Since: rep.Observed}}
	h := make(map[string]*regions.HealthReport, len(next.Health[region]))
	for k, v := range next.Health[region] {
		h[k] = v
	}
	h[id] = &rep
	next.Health[region] = h
	return next
}

// writtenBytes is what this process has passed to write(2) so far.
func writtenBytes(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no wchar in /proc/self/io")
	return 0
}

// BenchmarkPersistHealthChurn measures what persisting the served state
// costs with a 1M-prefix latency table while health reports change ten
// times a second: the bytes this process writes per second (wchar of
// /proc/self/io, so every file counts), in real time, after the first
// write (which holds the table). One op is a window of 30 s (300 changes,
// 100 ms apart: three times the slow pace), so a run takes about 35 s:
//
//	go test -run '^$' -bench PersistHealthChurn -benchtime=1x ./regions/store/
func BenchmarkPersistHealthChurn(b *testing.B) {
	const window = 300
	base := churnBase()
	path := filepath.Join(b.TempDir(), "state.json")
	l := NewLive(path, regions.SnapshotOptions{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	l.Apply(base)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)

	st := base
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	w0, start := writtenBytes(b), time.Now()
	for n := range b.N {
		for i := range window {
			<-tick.C
			st = healthChange(st, n*window+i)
			l.Apply(st)
		}
	}
	elapsed := time.Since(start)
	w1 := writtenBytes(b)
	b.StopTimer()
	b.ReportMetric(float64(w1-w0)/elapsed.Seconds(), "B/s")
	b.ReportMetric(float64(b.N*window)/elapsed.Seconds(), "changes/s")
}

// BenchmarkSaveState10k: a write of the state file with 10,000 services
// whose JSON is cached (a write after one change): what it allocates,
// the file being about 2 MB.
func BenchmarkSaveState10k(b *testing.B) {
	st := fullState()
	for i := range 10000 {
		name := fmt.Sprintf("svc%05d.gslb.example.", i)
		st.Services[name] = testService(name, "eu-west", "us-east")
	}
	path := filepath.Join(b.TempDir(), "state.json")
	var c serviceJSON
	if _, _, err := saveState(path, st, time.Now(), nil, &c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := saveState(path, st, time.Now(), nil, &c); err != nil {
			b.Fatal(err)
		}
	}
}
