package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/regions/store"
)

// BenchmarkPropagationDNS measures how long a weight change written to
// etcd takes to change the DNS answer of a server watching it: from the
// start of the write to the first changed answer, over 100 changes.
// Run with -benchtime 1x; it reports the median and p99 in ms.
func BenchmarkPropagationDNS(b *testing.B) {
	ts := startServerWith(b, serverSetup{extra: steeringConfig, files: steeringFiles(b)})
	cli := ts.etcdClient(b)
	st := store.NewStore(cli, "/meridian/", nil)
	c := &dns.Client{Timeout: time.Second}
	answer := func() string { return ts.soleA(c, "lb.example.org.") }
	targets := []struct {
		weights map[string]uint32
		want    string
	}{
		{map[string]uint32{"eu": 0, "na": 0, "as": 1}, "192.0.2.30"},
		{map[string]uint32{"eu": 1, "na": 0, "as": 0}, "192.0.2.10"},
	}
	// Settle: the bootstrap has run and the first change is through.
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for answer() != targets[1].want {
		if time.Now().After(deadline) {
			b.Fatal("server never took the first change")
		}
		_, _ = st.SetWeights(ctx, "lb.example.org.", targets[1].weights, store.Always, store.Force())
		time.Sleep(50 * time.Millisecond)
	}
	b.ResetTimer()
	for range b.N {
		var took []time.Duration
		for i := range 100 {
			tg := targets[i%2]
			start := time.Now()
			if _, err := st.SetWeights(ctx, "lb.example.org.", tg.weights, store.Always, store.Force()); err != nil {
				b.Fatal(err)
			}
			for answer() != tg.want {
				if time.Since(start) > 10*time.Second {
					b.Fatalf("change %d not seen after 10s", i)
				}
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
	}
}
