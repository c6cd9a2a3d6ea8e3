// Package health is Meridian's prober: it checks every VIP of every region
// (HTTP, HTTPS or TCP, each VIP on its own, with jitter and a cap on the
// checks in flight), reads the load balancer's own statistics where the
// region names them (HAProxy's CSV page, a Prometheus page) for each VIP's
// load and, with passive health, its error ratio, turns the results into
// a state per VIP with rise and fall thresholds and an RTT moving average,
// checks itself (a canary, and every VIP failing at once), and publishes
// one report per region to etcd under its lease, written when a state
// changes, and for load when it moves or is about to age out, a prober's
// reports in one transaction (docs/health.md, docs/architecture.md).
//
// health imports regions, regions/store and internal/histogram (and the
// etcd client for its lease, the Prometheus text parser for stats
// pages); never dnsserver or api.
package health
