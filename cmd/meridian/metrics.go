package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector exposes the snapshot's freshness and the regions' health.
type stateCollector struct{ s *server }

var (
	descSnapRevision = prometheus.NewDesc("meridian_snapshot_revision", "etcd revision of the regions snapshot being served.", nil, nil)
	descSnapAge      = prometheus.NewDesc("meridian_snapshot_staleness_seconds", "Time since the served state was last known current (etcd last answered).", nil, nil)
	descSnapBuilds   = prometheus.NewDesc("meridian_snapshot_builds_total", "Snapshots built.", nil, nil)
	descSnapProblems = prometheus.NewDesc("meridian_snapshot_problems", "Entries in etcd skipped as unusable in the current snapshot.", nil, nil)
	descEtcdUp       = prometheus.NewDesc("meridian_etcd_connected", "1 while the watcher is in sync with etcd.", nil, nil)
	descEtcdRelists  = prometheus.NewDesc("meridian_etcd_relists_total", "Listings of the key prefix after the first (compaction, lost watch).", nil, nil)
	descRegion       = prometheus.NewDesc("meridian_region_health", "Region health: 1 for the region's current status.", []string{"region", "status"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if snap := s.live.Current(); snap != nil {
		ch <- prometheus.MustNewConstMetric(descSnapRevision, prometheus.GaugeValue, float64(snap.Revision()))
		ch <- prometheus.MustNewConstMetric(descSnapAge, prometheus.GaugeValue, s.staleness().Seconds())
		ch <- prometheus.MustNewConstMetric(descSnapProblems, prometheus.GaugeValue, float64(len(snap.Problems())))
		for _, r := range snap.Regions() {
			ch <- prometheus.MustNewConstMetric(descRegion, prometheus.GaugeValue, 1, r.Name, string(r.Status))
		}
	}
	_, _, builds := s.live.Info()
	ch <- prometheus.MustNewConstMetric(descSnapBuilds, prometheus.CounterValue, float64(builds))
	if s.watcher != nil {
		st := s.watcher.Status()
		up := 0.0
		if st.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descEtcdUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(descEtcdRelists, prometheus.CounterValue, float64(st.Relists))
	}
}
