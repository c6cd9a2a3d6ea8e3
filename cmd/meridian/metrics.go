package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gslb/meridian/regions"
)

// stateCollector exposes the snapshot's freshness, the state of etcd and
// the regions' health.
type stateCollector struct{ s *server }

var (
	descSnapRevision = prometheus.NewDesc("meridian_snapshot_revision", "etcd revision of the regions snapshot being served.", nil, nil)
	descSnapAge      = prometheus.NewDesc("meridian_snapshot_staleness_seconds", "Age of the served data: time since etcd last confirmed it current (kept across restarts by the state file).", nil, nil)
	descSnapBuilds   = prometheus.NewDesc("meridian_snapshot_builds_total", "Snapshots built.", nil, nil)
	descSnapCompiled = prometheus.NewDesc("meridian_snapshot_services_compiled_total", "Services compiled by the snapshot builds (a build compiles the services that changed).", nil, nil)
	descSnapRefresh  = prometheus.NewDesc("meridian_snapshot_services_refreshed_total", "Services whose regions' health, drains or addresses, or whose geo merge, the snapshot builds refreshed.", nil, nil)
	descSnapBuildSec = prometheus.NewDesc("meridian_snapshot_build_seconds_total", "Time spent building snapshots.", nil, nil)
	descSnapProblems = prometheus.NewDesc("meridian_snapshot_problems", "Entries in etcd skipped as unusable in the current snapshot.", nil, nil)
	descEmptyRefused = prometheus.NewDesc("meridian_state_empty_refused", "1 while etcd holds no regions and no services and the previous state is served instead, until an operator accepts the empty state.", nil, nil)
	descFileWrites   = prometheus.NewDesc("meridian_state_file_writes_total", "Writes of the state file.", nil, nil)
	descFileBytes    = prometheus.NewDesc("meridian_state_file_written_bytes_total", "Bytes written to the state file and the latency table's file.", nil, nil)
	descEtcdUp       = prometheus.NewDesc("meridian_etcd_connected", "1 while the watcher is in sync with etcd.", nil, nil)
	descEtcdDown     = prometheus.NewDesc("meridian_etcd_down", "1 for the reason etcd is down (embedded_not_running: the embedded etcd failed to start or failed; unreachable: the watcher is not in sync), 0 otherwise.", []string{"reason"}, nil)
	descEmbFailures  = prometheus.NewDesc("meridian_etcd_embedded_failures_total", "Failed starts of the embedded etcd and its failures while running.", nil, nil)
	descEtcdRelists  = prometheus.NewDesc("meridian_etcd_relists_total", "Listings of the key prefix after the first (compaction, lost watch).", nil, nil)
	descEtcdWentBack = prometheus.NewDesc("meridian_etcd_went_back_total", "Listings that found etcd behind the revision seen before, or under another cluster ID: a restore from a backup, or another cluster.", nil, nil)
	descRegion       = prometheus.NewDesc("meridian_region_health", "Region health: 1 for the region's current status.", []string{"region", "status"}, nil)
	descShifts       = prometheus.NewDesc("meridian_shifts", "Shifts in the served state by state as this server applies them (active, reverted, expired, cancelled); ended ones stay a day.", []string{"state"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSnapRevision, descSnapAge, descSnapBuilds, descSnapCompiled, descSnapRefresh, descSnapBuildSec, descSnapProblems, descEmptyRefused,
		descFileWrites, descFileBytes, descEtcdUp, descEtcdDown, descEmbFailures, descEtcdRelists, descEtcdWentBack, descRegion, descShifts} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ls := s.live.Status()
	if snap := s.live.Current(); snap != nil {
		ch <- prometheus.MustNewConstMetric(descSnapRevision, prometheus.GaugeValue, float64(snap.Revision()))
		ch <- prometheus.MustNewConstMetric(descSnapAge, prometheus.GaugeValue, s.staleness().Seconds())
		ch <- prometheus.MustNewConstMetric(descSnapProblems, prometheus.GaugeValue, float64(len(snap.Problems())))
		for _, r := range snap.Regions() {
			ch <- prometheus.MustNewConstMetric(descRegion, prometheus.GaugeValue, 1, r.Name, string(r.Status))
		}
		shifts := map[regions.ShiftState]int{regions.ShiftActive: 0, regions.ShiftReverted: 0, regions.ShiftExpired: 0, regions.ShiftCancelled: 0}
		for _, sh := range snap.State().Shifts {
			if sh != nil {
				st, _ := snap.ShiftState(sh)
				shifts[st]++
			}
		}
		for st, n := range shifts {
			ch <- prometheus.MustNewConstMetric(descShifts, prometheus.GaugeValue, float64(n), string(st))
		}
	}
	ch <- prometheus.MustNewConstMetric(descSnapBuilds, prometheus.CounterValue, float64(ls.Builds))
	ch <- prometheus.MustNewConstMetric(descSnapCompiled, prometheus.CounterValue, float64(ls.Compiled))
	ch <- prometheus.MustNewConstMetric(descSnapRefresh, prometheus.CounterValue, float64(ls.Refreshed))
	ch <- prometheus.MustNewConstMetric(descSnapBuildSec, prometheus.CounterValue, ls.BuildTime.Seconds())
	ch <- prometheus.MustNewConstMetric(descEmptyRefused, prometheus.GaugeValue, bool01(ls.EmptyRefused != nil))
	ch <- prometheus.MustNewConstMetric(descFileWrites, prometheus.CounterValue, float64(ls.Persist.Writes))
	ch <- prometheus.MustNewConstMetric(descFileBytes, prometheus.CounterValue, float64(ls.Persist.Bytes))

	es := s.etcdStatus()
	ch <- prometheus.MustNewConstMetric(descEtcdUp, prometheus.GaugeValue, bool01(es.Up))
	for _, reason := range []string{etcdDownEmbedded, etcdDownUnreachable} {
		ch <- prometheus.MustNewConstMetric(descEtcdDown, prometheus.GaugeValue, bool01(es.ReasonCode == reason), reason)
	}
	if es.Member != nil {
		ch <- prometheus.MustNewConstMetric(descEmbFailures, prometheus.CounterValue, float64(es.Member.Failures))
	}
	ch <- prometheus.MustNewConstMetric(descEtcdRelists, prometheus.CounterValue, float64(es.Watch.Relists))
	ch <- prometheus.MustNewConstMetric(descEtcdWentBack, prometheus.CounterValue, float64(es.Watch.WentBack))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
