package main

import (
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-gslb/meridian/internal/labelshare"
	"github.com/meridian-gslb/meridian/regions"
)

// The server's own families besides the DNS handler's, the transport's,
// the HTTP listener's and the API's; docs/metrics.md lists every family
// with its labels and the bound on its series.

// stateCollector exposes the snapshot's freshness and content (regions,
// VIPs, votes, probers, weights, the latency table), the state of etcd
// and the state file.
type stateCollector struct{ s *server }

var (
	descSnapRevision = prometheus.NewDesc("meridian_snapshot_revision", "etcd revision of the regions snapshot being served.", nil, nil)
	descSnapAge      = prometheus.NewDesc("meridian_snapshot_staleness_seconds", "Age of the served data: time since etcd last confirmed it current (kept across restarts by the state file).", nil, nil)
	descSnapBuilds   = prometheus.NewDesc("meridian_snapshot_builds_total", "Snapshots built.", nil, nil)
	descSnapCompiled = prometheus.NewDesc("meridian_snapshot_services_compiled_total", "Services compiled by the snapshot builds (a build compiles the services that changed).", nil, nil)
	descSnapRefresh  = prometheus.NewDesc("meridian_snapshot_services_refreshed_total", "Services whose regions' health, drains or addresses, or whose geo merge, the snapshot builds refreshed.", nil, nil)
	descSnapBuildSec = prometheus.NewDesc("meridian_snapshot_build_seconds_total", "Time spent building snapshots.", nil, nil)
	descSnapProblems = prometheus.NewDesc("meridian_snapshot_problems", "Entries in etcd skipped as unusable in the current snapshot.", nil, nil)
	descSnapRegions  = prometheus.NewDesc("meridian_snapshot_regions", "Regions in the served snapshot.", nil, nil)
	descSnapServices = prometheus.NewDesc("meridian_snapshot_services", "Services in the served snapshot.", nil, nil)
	descEmptyRefused = prometheus.NewDesc("meridian_state_empty_refused", "1 while etcd holds no regions and no services and the previous state is served instead, until an operator accepts the empty state.", nil, nil)
	descFileWrites   = prometheus.NewDesc("meridian_state_file_writes_total", "Writes of the state file.", nil, nil)
	descFileBytes    = prometheus.NewDesc("meridian_state_file_written_bytes_total", "Bytes written to the state file and the latency table's file.", nil, nil)
	descEtcdUp       = prometheus.NewDesc("meridian_etcd_connected", "1 while the watcher is in sync with etcd.", nil, nil)
	descEtcdDown     = prometheus.NewDesc("meridian_etcd_down", "1 for the reason etcd is down (embedded_not_running: the embedded etcd failed to start or failed; unreachable: the watcher is not in sync), 0 otherwise.", []string{"reason"}, nil)
	descEmbFailures  = prometheus.NewDesc("meridian_etcd_embedded_failures_total", "Failed starts of the embedded etcd and its failures while running.", nil, nil)
	descEtcdRelists  = prometheus.NewDesc("meridian_etcd_relists_total", "Listings of the key prefix after the first (compaction, lost watch).", nil, nil)
	descEtcdWentBack = prometheus.NewDesc("meridian_etcd_went_back_total", "Listings that found etcd behind the revision seen before, or under another cluster ID: a restore from a backup, or another cluster.", nil, nil)

	descRegion        = prometheus.NewDesc("meridian_region_health", "Region health: 1 for the region's current status (up, down, unknown), 0 for the others.", []string{"region", "status"}, nil)
	descRegionDrained = prometheus.NewDesc("meridian_region_drained", "1 while the region is drained: out of every answer.", []string{"region"}, nil)
	descRegionVIPs    = prometheus.NewDesc("meridian_region_vips", "A region's VIPs by health status (up, down, unknown).", []string{"region", "status"}, nil)
	descVIP           = prometheus.NewDesc("meridian_vip_health", "VIP health as the quorum of counted votes decides it: 1 for the current status (up, down, unknown), 0 for the others.", []string{"region", "vip", "status"}, nil)
	descVIPVotes      = prometheus.NewDesc("meridian_vip_counted_votes", "Counted votes on a VIP, by vote (up, down).", []string{"region", "vip", "vote"}, nil)
	descVote          = prometheus.NewDesc("meridian_vip_vote", "A prober's vote on a VIP: 1 up, 0 down; counted or not (meridian_vip_vote_counted).", []string{"region", "vip", "prober"}, nil)
	descVoteCounted   = prometheus.NewDesc("meridian_vip_vote_counted", "1 when a prober's vote on a VIP counts, 0 when it does not (untrusted, not registered under the report's lease).", []string{"region", "vip", "prober"}, nil)
	descProbersReg    = prometheus.NewDesc("meridian_probers_registered", "Probers registered under a live lease.", nil, nil)
	descProbersCount  = prometheus.NewDesc("meridian_probers_counted", "Probers with at least one counted vote.", nil, nil)
	descProberTrusted = prometheus.NewDesc("meridian_prober_trusted", "1 while every report of a prober says it trusts itself (its self-check passes), 0 otherwise; for probers with reports.", []string{"prober", "prober_region"}, nil)
	descWeight        = prometheus.NewDesc("meridian_service_weight", "A region's configured weight in a service (0: drained from the service).", []string{"service", "region"}, nil)
	descEffWeight     = prometheus.NewDesc("meridian_service_effective_weight", "A region's effective weight in a service, in units of the configured weights: configured × shift × health × load × ramp (docs/controller.md).", []string{"service", "region"}, nil)
	descFactor        = prometheus.NewDesc("meridian_service_weight_factor", "A factor of a region's effective weight in a service (shift, load, ramp; 1: full share).", []string{"service", "region", "factor"}, nil)
	descLatEntries    = prometheus.NewDesc("meridian_latency_table_entries", "Entries of the latency table served (0 without one).", nil, nil)
	descLatBytes      = prometheus.NewDesc("meridian_latency_table_bytes", "Size of the latency table served, as CSV (0 without one).", nil, nil)
	descLatAge        = prometheus.NewDesc("meridian_latency_table_age_seconds", "Time since the latency table served was imported; absent without a table or when the import time is unknown.", nil, nil)
	descShifts        = prometheus.NewDesc("meridian_shifts", "Shifts in the served state by state as this server applies them (active, reverted, expired, cancelled); ended ones stay a day.", []string{"state"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSnapRevision, descSnapAge, descSnapBuilds, descSnapCompiled, descSnapRefresh, descSnapBuildSec, descSnapProblems, descSnapRegions, descSnapServices, descEmptyRefused,
		descFileWrites, descFileBytes, descEtcdUp, descEtcdDown, descEmbFailures, descEtcdRelists, descEtcdWentBack,
		descRegion, descRegionDrained, descRegionVIPs, descVIP, descVIPVotes, descVote, descVoteCounted,
		descProbersReg, descProbersCount, descProberTrusted, descWeight, descEffWeight, descFactor, descLatEntries, descLatBytes, descLatAge, descShifts} {
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
		collectSnapshot(ch, snap, time.Now())
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

// healthStatuses are the statuses every region and VIP is exported
// with, 1 for its own and 0 for the others, so that a change of status
// changes values, not series.
var healthStatuses = []regions.HealthStatus{regions.HealthUp, regions.HealthDown, regions.HealthUnknown}

// collectSnapshot exposes what the snapshot holds: regions, VIPs and
// votes, probers, weights and the latency table.
func collectSnapshot(ch chan<- prometheus.Metric, snap *regions.Snapshot, now time.Time) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := snap.State()
	gauge(descSnapRegions, float64(len(st.Regions)))
	gauge(descSnapServices, float64(snap.NumServices()))
	counted := map[string]bool{}
	for _, r := range snap.Regions() {
		for _, hs := range healthStatuses {
			gauge(descRegion, bool01(r.Status == hs), r.Name, string(hs))
		}
		gauge(descRegionDrained, bool01(r.Drained), r.Name)
		byStatus := map[regions.HealthStatus]int{}
		for _, v := range r.VIPs {
			vip := vipLabel(v.Addr)
			byStatus[v.Status]++
			for _, hs := range healthStatuses {
				gauge(descVIP, bool01(v.Status == hs), r.Name, vip, string(hs))
			}
			gauge(descVIPVotes, float64(v.Up), r.Name, vip, "up")
			gauge(descVIPVotes, float64(v.Down), r.Name, vip, "down")
			for _, vote := range v.Votes {
				gauge(descVote, bool01(vote.Up), r.Name, vip, vote.Prober)
				gauge(descVoteCounted, bool01(vote.Counted), r.Name, vip, vote.Prober)
				if vote.Counted {
					counted[vote.Prober] = true
				}
			}
		}
		for _, hs := range healthStatuses {
			gauge(descRegionVIPs, float64(byStatus[hs]), r.Name, string(hs))
		}
	}
	gauge(descProbersReg, float64(len(st.Probers)))
	gauge(descProbersCount, float64(len(counted)))
	// A prober's trust, from its reports: it marks them all alike.
	type trust struct {
		region  string
		trusted bool
	}
	probers := map[string]trust{}
	for _, reps := range st.Health {
		for id, rep := range reps {
			if rep == nil {
				continue
			}
			t, seen := probers[id]
			if !seen {
				t = trust{region: rep.ProberRegion, trusted: true}
			}
			t.trusted = t.trusted && rep.Trusted
			probers[id] = t
		}
	}
	for id, t := range probers {
		gauge(descProberTrusted, bool01(t.trusted), id, t.region)
	}
	// Five series per service and region: they share their label pairs,
	// and series of equal value their value (a scrape holds all of them
	// at once; see internal/labelshare).
	regionPairs := map[string]*dto.LabelPair{}
	factorPairs := [3]*dto.LabelPair{labelshare.Pair("factor", "shift"), labelshare.Pair("factor", "load"), labelshare.Pair("factor", "ramp")}
	gauges := labelshare.Gauges{}
	shared := func(d *prometheus.Desc, v float64, labels []*dto.LabelPair) {
		ch <- gauges.New(d, v, labels)
	}
	for _, v := range snap.Services() {
		factors := snap.Factors(v, now)
		svc := labelshare.Pair("service", v.Name())
		for _, sr := range v.Service().Regions {
			rp := regionPairs[sr.Region]
			if rp == nil {
				rp = labelshare.Pair("region", sr.Region)
				regionPairs[sr.Region] = rp
			}
			both := labelshare.Labels(svc, rp)
			shared(descWeight, float64(sr.Weight), both)
			if f := factors[sr.Region]; f != nil {
				shared(descEffWeight, f.EffectiveWeight, both)
				shared(descFactor, f.Shift, labelshare.Labels(svc, rp, factorPairs[0]))
				shared(descFactor, f.Load, labelshare.Labels(svc, rp, factorPairs[1]))
				shared(descFactor, f.Ramp, labelshare.Labels(svc, rp, factorPairs[2]))
			}
		}
	}
	entries, bytes := 0, 0
	if l := st.Latency; l != nil {
		entries, bytes = l.Entries, len(l.CSV)
		if !l.Created.IsZero() {
			gauge(descLatAge, max(now.Sub(l.Created), 0).Seconds())
		}
	}
	gauge(descLatEntries, float64(entries))
	gauge(descLatBytes, float64(bytes))
}

// Histogram buckets, in seconds, of the builds off the query path.
var (
	// A snapshot: a fraction of a millisecond for a change of one
	// service, tens of milliseconds for 10,000 services refreshed.
	snapshotBuildBounds = []float64{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// A geo table: milliseconds for a merge, up to about a second for
	// the location table of a country database.
	geoBuildBounds = []float64{1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// buildMetrics time the builds of snapshots and geo tables.
type buildMetrics struct {
	snapshot prometheus.Histogram
	geo      *prometheus.HistogramVec
}

func newBuildMetrics() *buildMetrics {
	b := &buildMetrics{
		snapshot: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_snapshot_build_duration_seconds",
			Help: "Time to build a regions snapshot (off the query path), for every snapshot served.", Buckets: snapshotBuildBounds}),
		geo: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meridian_geo_table_build_duration_seconds",
			Help: "Time to build a geo table (off the query path): the location table of a GeoIP database, or a partition's merge.", Buckets: geoBuildBounds},
			[]string{"table"}),
	}
	// Both tables show from the start, built or not.
	b.geo.WithLabelValues(regions.GeoTableLocation)
	b.geo.WithLabelValues(regions.GeoTableMerge)
	return b
}

func (b *buildMetrics) Describe(ch chan<- *prometheus.Desc) {
	b.snapshot.Describe(ch)
	b.geo.Describe(ch)
}

func (b *buildMetrics) Collect(ch chan<- prometheus.Metric) {
	b.snapshot.Collect(ch)
	b.geo.Collect(ch)
}

func (b *buildMetrics) snapshotBuilt(s *regions.Snapshot) {
	b.snapshot.Observe(s.Stats().Took.Seconds())
}

func (b *buildMetrics) geoTableBuilt(kind string, took time.Duration) {
	b.geo.WithLabelValues(kind).Observe(took.Seconds())
}

// buildInfoCollector is meridian_build_info: the version, VCS revision
// and Go version of the binary, as `meridian version` prints them.
type buildInfoCollector struct{ version, revision, goVersion string }

var descBuildInfo = prometheus.NewDesc("meridian_build_info", "Always 1; the labels describe the binary: module version, VCS revision, Go version.", []string{"version", "revision", "goversion"}, nil)

func newBuildInfoCollector() buildInfoCollector {
	c := buildInfoCollector{version: "(devel)", revision: "unknown", goVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		c.goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			c.version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				c.revision = s.Value
			}
		}
	}
	return c
}

func (c buildInfoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descBuildInfo }

func (c buildInfoCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, c.version, c.revision, c.goVersion)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// vipLabel is a VIP as metrics label it.
func vipLabel(a netip.Addr) string { return a.String() }
