// Command sim is the benchmark of the controller's dynamics
// (docs/controller.md): resolvers caching a geo service's answers for
// its TTL, with staggered expiries, for client networks on three
// continents; three regions with capacities whose load is the traffic
// the cached answers send them; probers reading that load; and the real
// snapshot building and decisions of package regions, on a simulated
// clock. One line per scenario:
//
//	scenario=<name> settle_ttls=<n> overshoot_pct=<n> reversals=<n> max_dev_pts=<n>
//
//	sim [-seed N] [-run NAME]
//
// spike: one region's load jumps to 5× its normal share (its own
// clients ask five times as much); settle_ttls is how long its
// utilisation takes to stay within 10% of its target (the utilisation on
// the watermark line), overshoot_pct how far it went past the target,
// reversals the turns of its kept fraction, max_dev_pts its largest
// distance from the target a TTL after settling, in points of
// utilisation. spike-weighted is the same for a sticky weighted service
// whose clients are spread over the regions by weight, the region's
// capacity dropping to a fifth.
//
// recover and shift-expire: a region returns after a failure, or when a
// shift that drained it for ten minutes expires, with a slow start of
// 60 s; max_dev_pts is the
// largest distance of its traffic share from the slow-start curve,
// settle_ttls when it is within a point of its full share for good,
// overshoot_pct how far above its full share it went.
//
// stale-signal: the load readings stop during the spike's answer;
// once they are older than max_signal_age nothing may change:
// settle_ttls is when the kept fraction last moved after that (0: never),
// max_dev_pts how far the traffic share moved.
package main
