package histogram

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Histogram counts observations into buckets with fixed upper bounds.
// Observe takes no lock and does not allocate; any number of goroutines
// may observe and read at once. The zero value is not usable: see New.
type Histogram struct {
	bounds []time.Duration // upper bounds, ascending
	// counts[i] counts the observations in bucket i alone (not
	// cumulative); the last is above every bound.
	counts []atomic.Uint64
	sumNs  atomic.Uint64
}

// New returns a histogram with the given upper bounds in seconds,
// ascending; observations above the last count in +Inf.
func New(bounds []float64) *Histogram {
	h := &Histogram{bounds: make([]time.Duration, len(bounds)), counts: make([]atomic.Uint64, len(bounds)+1)}
	for i, b := range bounds {
		h.bounds[i] = time.Duration(b * float64(time.Second))
		if i > 0 && h.bounds[i] <= h.bounds[i-1] {
			panic("histogram: bounds not ascending")
		}
	}
	return h
}

// Observe counts one observation of d.
func (h *Histogram) Observe(d time.Duration) { h.ObserveN(d, 1) }

// ObserveN counts n observations of d at once: the replies of one batch,
// which all waited as long as the batch took.
func (h *Histogram) ObserveN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	d = max(d, 0)
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(n)
	h.sumNs.Add(uint64(d) * n)
}

// Counts is a histogram's content at one moment.
type Counts struct {
	// Bounds are the upper bounds in seconds; Buckets[i] counts the
	// observations at most Bounds[i] (cumulative, as Prometheus counts).
	Bounds  []float64
	Buckets []uint64
	Count   uint64
	Sum     time.Duration
}

// Read returns the counts. Count is the buckets' total, so the
// buckets never hold more than it even while observations go on; Sum
// may lag them by the observations made during the read.
func (h *Histogram) Read() Counts {
	c := Counts{Bounds: make([]float64, len(h.bounds)), Buckets: make([]uint64, len(h.bounds))}
	c.Add(h)
	return c
}

// Add adds what h counted to c, which must have h's bounds (as Read
// returns them): the loops of one transport sum up to one histogram.
func (c *Counts) Add(h *Histogram) {
	c.Sum += time.Duration(h.sumNs.Load())
	var cum uint64
	for i, b := range h.bounds {
		c.Bounds[i] = b.Seconds()
		cum += h.counts[i].Load()
		c.Buckets[i] += cum
	}
	c.Count += cum + h.counts[len(h.bounds)].Load()
}

// Metric is c as a Prometheus histogram with the label values given.
func (c Counts) Metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	b := make(map[float64]uint64, len(c.Bounds))
	for i, bound := range c.Bounds {
		b[bound] = c.Buckets[i]
	}
	return prometheus.MustNewConstHistogram(desc, c.Count, c.Sum.Seconds(), b, labels...)
}
