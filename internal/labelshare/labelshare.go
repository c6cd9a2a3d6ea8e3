package labelshare

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Pair is a label pair to share between series: name and value are
// copied once.
func Pair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: &name, Value: &value}
}

// Labels is the label set of a series, from pairs in any order: sorted
// by name, as the exposition wants them. The slice may be shared by
// several series; it is never written after.
func Labels(pairs ...*dto.LabelPair) []*dto.LabelPair {
	out := slices.Clone(pairs)
	slices.SortFunc(out, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// Metric is a series whose labels are a shared set: desc's variable
// labels, sorted by name (Labels). Unlike prometheus.MustNewConstMetric,
// it neither copies nor checks the labels: a registry's Gather checks
// their names, their values' UTF-8 and duplicate series, a pedantic
// registry (as this package's tests use) also that they match desc.
type Metric struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	v      float64
	gauge  *dto.Gauge // shared (Gauges), else made from v
	labels []*dto.LabelPair
}

// New is a gauge or counter series of desc with value v and labels.
func New(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels []*dto.LabelPair) *Metric {
	return &Metric{desc: desc, typ: typ, v: v, labels: labels}
}

// Gauges hands out one gauge value per distinct value to the series of
// one scrape: the weights and factors of thousands of services take a
// few values (most factors are 1), and a scrape holds every series'
// value at once. Not for use by concurrent scrapes.
type Gauges map[float64]*dto.Gauge

// New is a gauge series of desc with value v and labels, its value
// shared with the other series of g of the same value.
func (g Gauges) New(desc *prometheus.Desc, v float64, labels []*dto.LabelPair) *Metric {
	dg := g[v]
	if dg == nil {
		dg = &dto.Gauge{Value: &v}
		g[v] = dg
	}
	return &Metric{desc: desc, typ: prometheus.GaugeValue, v: v, gauge: dg, labels: labels}
}

// Desc implements prometheus.Metric.
func (m *Metric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric: the labels are the shared slice.
func (m *Metric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.gauge != nil {
		out.Gauge = m.gauge
		return nil
	}
	v := m.v
	switch m.typ {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: &v}
	case prometheus.GaugeValue:
		out.Gauge = &dto.Gauge{Value: &v}
	default:
		out.Untyped = &dto.Untyped{Value: &v}
	}
	return nil
}

var _ prometheus.Metric = (*Metric)(nil)
