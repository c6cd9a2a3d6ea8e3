// Package health is Meridian's prober: it checks every VIP of every region
// (HTTP, HTTPS or TCP, each VIP on its own, with jitter and a cap on the
// checks in flight), turns the results into a state per VIP with rise and
// fall thresholds and an RTT moving average, checks itself (a canary, and
// every VIP failing at once), and publishes one report per region to etcd
// under its lease, written when a state changes rather than on every
// check (docs/health.md, docs/architecture.md).
//
// health imports regions and regions/store (and the etcd client for its
// lease); never dnsserver or api.
package health
