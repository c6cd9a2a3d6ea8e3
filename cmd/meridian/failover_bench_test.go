package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/health"
)

// BenchmarkFailover measures how long a failed health endpoint takes to
// change the DNS answer of a running server: three probers (in this
// process) check two regions every second with fall 3 and rise 2; the
// endpoint of the first region starts answering 503 at a random moment,
// and the time until the server answers with the second region is one
// trial. Recovery (endpoint back → answer back) is measured too. The
// server holds 1,000 services (FAILOVER_SERVICES), all over the failed
// region, as a deployment with many names does: the failover must not
// slow down with their number. Run with -benchtime 1x; FAILOVER_TRIALS
// (default 20) sets the number of trials.
func BenchmarkFailover(b *testing.B) {
	trials := 20
	if n, err := strconv.Atoi(os.Getenv("FAILOVER_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	services := 1000
	if n, err := strconv.Atoi(os.Getenv("FAILOVER_SERVICES")); err == nil && n > 0 {
		services = n
	}
	eu4, eu6, na := newStandIn(b), newStandIn(b), newStandIn(b)
	state := fmt.Sprintf(failoverState, eu4.srv.Listener.Addr(), eu6.srv.Listener.Addr(), na.srv.Listener.Addr())
	var more strings.Builder
	for i := range services - 1 {
		policy := []string{"weighted", "failover", "nearest"}[i%3]
		fmt.Fprintf(&more, "  - name: s%04d.example.org.\n    ttl: 30\n    policy: %s\n    regions: [{region: eu, weight: %d}, {region: na, weight: 1}]\n", i, policy, 1+i%7)
	}
	state += more.String()
	ts := startServerWith(b, serverSetup{extra: "bootstrap: state.yaml\n", files: map[string][]byte{"state.yaml": []byte(state)}})
	cli := ts.etcdClient(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 3)
	for i, region := range []string{"eu", "na", "as"} {
		p, err := health.New(health.Config{ID: fmt.Sprintf("p%d", i+1), Region: region, Logger: slog.New(slog.DiscardHandler)}, cli)
		if err != nil {
			b.Fatal(err)
		}
		go func() { done <- p.Run(ctx) }()
	}
	defer func() {
		cancel()
		for range 3 {
			<-done
		}
	}()
	c := &dns.Client{Timeout: time.Second}
	answer := func() string { return ts.soleA(c, "hc.example.org.") }
	waitFor := func(want string, limit time.Duration) (time.Duration, bool) {
		start := time.Now()
		for answer() != want {
			if time.Since(start) > limit {
				return 0, false
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(start), true
	}
	setDown := func(down bool) {
		eu4.down.Store(down)
		eu6.down.Store(down)
	}
	if _, ok := waitFor("192.0.2.10", 30*time.Second); !ok {
		b.Fatal("the server never answered eu")
	}
	b.ResetTimer()
	for range b.N {
		var fail, back []time.Duration
		for i := range trials {
			// A random moment within the probers' cycle.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
			setDown(true)
			d, ok := waitFor("192.0.2.20", 30*time.Second)
			if !ok {
				b.Fatalf("trial %d: the answer did not move within 30s", i)
			}
			fail = append(fail, d)
			setDown(false)
			d, ok = waitFor("192.0.2.10", 30*time.Second)
			if !ok {
				b.Fatalf("trial %d: the answer did not come back within 30s", i)
			}
			back = append(back, d)
		}
		report := func(name string, ds []time.Duration) {
			slices.Sort(ds)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(ds[len(ds)/2]), name+"-p50-ms")
			b.ReportMetric(ms(ds[(len(ds)*99+99)/100-1]), name+"-p99-ms")
			b.ReportMetric(ms(ds[len(ds)-1]), name+"-max-ms")
		}
		report("failover", fail)
		report("recovery", back)
	}
}

// failoverState: two regions checked every second (fall 3, rise 2) and a
// failover service over them.
const failoverState = `regions:
  - name: eu
    vips: [192.0.2.10, "2001:db8::10"]
    location: {lat: 52.37, lon: 4.9}
    check: {type: http, port: 80, path: /healthz, interval: 1s, fall: 3, rise: 2, address: {192.0.2.10: "%s", "2001:db8::10": "%s"}}
  - name: na
    vips: [192.0.2.20]
    location: {lat: 38.9, lon: -77.0}
    check: {type: http, port: 80, path: /healthz, interval: 1s, fall: 3, rise: 2, address: {192.0.2.20: "%s"}}
services:
  - name: hc.example.org.
    ttl: 30
    policy: failover
    regions: [{region: eu, weight: 1}, {region: na, weight: 1}]
`
