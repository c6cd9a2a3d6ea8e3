package labelshare

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var (
	descWeight = prometheus.NewDesc("example_weight", "A weight.", []string{"service", "region"}, nil)
	descFactor = prometheus.NewDesc("example_factor", "A factor.", []string{"service", "region", "factor"}, nil)
	descCount  = prometheus.NewDesc("example_answers_total", "Answers.", []string{"service"}, nil)
)

// collector emits a weight and two factors per service and region, and
// a counter per service, shared (as the server does) or as const
// metrics.
type collector struct {
	services, regions int
	shared            bool
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWeight
	ch <- descFactor
	ch <- descCount
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	factors := []string{"shift", "load"}
	gauges := Gauges{}
	for s := range c.services {
		name := fmt.Sprintf("svc%d.example.", s)
		if !c.shared {
			ch <- prometheus.MustNewConstMetric(descCount, prometheus.CounterValue, float64(s), name)
			for r := range c.regions {
				region := fmt.Sprintf("r%d", r)
				ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, float64(r), name, region)
				for i, f := range factors {
					ch <- prometheus.MustNewConstMetric(descFactor, prometheus.GaugeValue, float64(i)/2, name, region, f)
				}
			}
			continue
		}
		svc := Pair("service", name)
		ch <- New(descCount, prometheus.CounterValue, float64(s), []*dto.LabelPair{svc})
		for r := range c.regions {
			rp := Pair("region", fmt.Sprintf("r%d", r))
			ch <- New(descWeight, prometheus.GaugeValue, float64(r), Labels(svc, rp))
			for i, f := range factors {
				ch <- gauges.New(descFactor, float64(i)/2, Labels(rp, Pair("factor", f), svc))
			}
		}
	}
}

// gatherText is what reg exposes, as text.
func gatherText(tb testing.TB, reg prometheus.Gatherer) string {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			tb.Fatal(err)
		}
	}
	return b.String()
}

// pedantic is a registry that checks every metric against its Desc.
func pedantic(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return reg
}

// Shared labels expose exactly what const metrics do, and pass the
// pedantic registry's checks against their descriptors.
func TestSameExposition(t *testing.T) {
	for _, tc := range []struct {
		name              string
		services, regions int
	}{
		{"one", 1, 1},
		{"several", 7, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := gatherText(t, pedantic(collector{services: tc.services, regions: tc.regions}))
			got := gatherText(t, pedantic(collector{services: tc.services, regions: tc.regions, shared: true}))
			if got != want {
				t.Errorf("shared labels expose\n%s\nconst metrics\n%s", got, want)
			}
			if n := strings.Count(got, "example_factor{"); n != 2*tc.services*tc.regions {
				t.Errorf("%d factor series, want %d", n, 2*tc.services*tc.regions)
			}
		})
	}
}

type bad []prometheus.Metric

func (b bad) Describe(ch chan<- *prometheus.Desc) { ch <- descWeight }
func (b bad) Collect(ch chan<- prometheus.Metric) {
	for _, m := range b {
		ch <- m
	}
}

// The registry still refuses what const metrics would refuse: the same
// series twice, labels that do not match the descriptor.
func TestRegistryChecks(t *testing.T) {
	svc, rp := Pair("service", "a.example."), Pair("region", "eu")
	for _, tc := range []struct {
		name    string
		metrics bad
		want    string
	}{
		{"duplicate", bad{New(descWeight, prometheus.GaugeValue, 1, Labels(svc, rp)), New(descWeight, prometheus.GaugeValue, 2, Labels(rp, svc))}, "collected before with the same name and label values"},
		{"missing label", bad{New(descWeight, prometheus.GaugeValue, 1, Labels(svc))}, "inconsistent with descriptor"},
		{"wrong label", bad{New(descWeight, prometheus.GaugeValue, 1, Labels(svc, Pair("zone", "eu")))}, "inconsistent with descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(tc.metrics)
			_, err := reg.Gather()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Gather: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Labels sorts a copy: the pairs passed in keep their order.
func TestLabelsSorted(t *testing.T) {
	in := []*dto.LabelPair{Pair("service", "a."), Pair("factor", "load"), Pair("region", "eu")}
	out := Labels(in...)
	var names []string
	for _, p := range out {
		names = append(names, p.GetName())
	}
	if got := strings.Join(names, ","); got != "factor,region,service" {
		t.Errorf("Labels: %s, want factor,region,service", got)
	}
	if in[0].GetName() != "service" {
		t.Errorf("Labels reordered its arguments")
	}
}

// What a scrape of 10,000 services with three regions allocates,
// gathered and written as text, and what its gathered series hold at
// once (MB-held): shared against const metrics.
func BenchmarkGather10k(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(collector{services: 10000, regions: 3, shared: shared})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(mfs)
			b.ReportAllocs()
			for b.Loop() {
				gatherText(b, reg)
			}
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1e6, "MB-held")
		})
	}
}
