package histogram

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

func TestHistogramBuckets(t *testing.T) {
	h := New([]float64{0.001, 0.01, 0.1})
	cases := []struct {
		d time.Duration
		n uint64
	}{
		{0, 1},                    // at the first bound or below
		{time.Millisecond, 2},     // a bound itself counts in its bucket
		{5 * time.Millisecond, 3}, // second bucket
		{100 * time.Millisecond, 1},
		{2 * time.Second, 4}, // above every bound: +Inf only
		{-time.Second, 1},    // a clock step back counts as 0
		{time.Second, 0},     // nothing
	}
	for _, c := range cases {
		h.ObserveN(c.d, c.n)
	}
	got := h.Read()
	want := []uint64{4, 7, 8}
	for i := range want {
		if got.Buckets[i] != want[i] {
			t.Fatalf("buckets %v, want %v", got.Buckets, want)
		}
	}
	if got.Count != 12 {
		t.Errorf("count %d, want 12", got.Count)
	}
	wantSum := 2*time.Millisecond + 15*time.Millisecond + 100*time.Millisecond + 8*time.Second
	if got.Sum != wantSum {
		t.Errorf("sum %v, want %v", got.Sum, wantSum)
	}
}

func TestHistogramAdd(t *testing.T) {
	a, b := New([]float64{0.5, 1}), New([]float64{0.5, 1})
	a.Observe(100 * time.Millisecond)
	b.Observe(700 * time.Millisecond)
	b.Observe(3 * time.Second)
	c := a.Read()
	c.Add(b)
	if c.Count != 3 || c.Buckets[0] != 1 || c.Buckets[1] != 2 || c.Sum != 3800*time.Millisecond {
		t.Fatalf("%+v", c)
	}
}

// TestHistogramMetric: the counts read as a Prometheus histogram, in
// seconds, with cumulative buckets.
func TestHistogramMetric(t *testing.T) {
	h := New([]float64{0.001, 0.01})
	h.Observe(500 * time.Microsecond)
	h.ObserveN(5*time.Millisecond, 2)
	desc := prometheus.NewDesc("test_duration_seconds", "Test.", []string{"proto"}, nil)
	c := collectorFunc(func(ch chan<- prometheus.Metric) { ch <- h.Read().Metric(desc, "udp") })
	want := `# HELP test_duration_seconds Test.
# TYPE test_duration_seconds histogram
test_duration_seconds_bucket{proto="udp",le="0.001"} 1
test_duration_seconds_bucket{proto="udp",le="0.01"} 3
test_duration_seconds_bucket{proto="udp",le="+Inf"} 3
test_duration_seconds_sum{proto="udp"} 0.0105
test_duration_seconds_count{proto="udp"} 3
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&got, f); err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", &got, want)
	}
}

// TestHistogramConcurrent: observations from many goroutines are all
// counted, and a read during them never finds a bucket above the count.
func TestHistogramConcurrent(t *testing.T) {
	h := New([]float64{0.001, 0.01})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad []string
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := h.Read()
			if c.Buckets[0] > c.Buckets[1] || c.Buckets[1] > c.Count {
				mu.Lock()
				bad = append(bad, "buckets not cumulative")
				mu.Unlock()
			}
		}
	}()
	var obs sync.WaitGroup
	for g := range 4 {
		obs.Add(1)
		go func() {
			defer obs.Done()
			for i := range 10000 {
				h.Observe(time.Duration(g*i) * time.Microsecond)
			}
		}()
	}
	obs.Wait()
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatal(bad[0])
	}
	if c := h.Read(); c.Count != 40000 {
		t.Fatalf("count %d, want 40000", c.Count)
	}
}

func TestHistogramObserveAllocs(t *testing.T) {
	h := New([]float64{0.001, 0.01})
	if n := testing.AllocsPerRun(100, func() { h.ObserveN(3*time.Millisecond, 7) }); n != 0 {
		t.Fatalf("%v allocations per observation", n)
	}
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
