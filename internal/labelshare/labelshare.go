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
// it neither copies nor checks the labels: the registry's Gather checks
// what it collects (names, duplicates, consistency with desc).
type Metric struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	v      float64
	labels []*dto.LabelPair
}

// New is a gauge or counter series of desc with value v and labels.
func New(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels []*dto.LabelPair) *Metric {
	return &Metric{desc: desc, typ: typ, v: v, labels: labels}
}

// Desc implements prometheus.Metric.
func (m *Metric) Desc() *prometheus.Desc { return m.desc }

// Write implements prometheus.Metric: the labels are the shared slice.
func (m *Metric) Write(out *dto.Metric) error {
	out.Label = m.labels
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
