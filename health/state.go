package health

import (
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// rttWeight is the weight of a new sample in the RTT moving average.
const rttWeight = 0.25

// vipState is one VIP's state as one prober sees it. A state is decided
// only by rise consecutive successes (up) or fall consecutive failures
// (down): a new target has none until then and its VIP is left out of the
// report, so a prober that just started votes nothing rather than a guess.
type vipState struct {
	known bool // decided: up or down
	up    bool
	since time.Time // last transition
	// successes and failures count the current streak; one of them is 0.
	successes, failures int
	// trustedFailures counts the failures of the current streak seen
	// while the prober trusted itself, since it last regained trust.
	// confirmed says that a down state rests on fall such failures: only
	// then does a trusted report vote it down. Failures seen while the
	// prober distrusted itself cannot be told from its own network
	// failing, and after a global outage every VIP is down on their
	// strength alone.
	trustedFailures int
	confirmed       bool
	reason          string        // why the last failed check failed
	rtt             time.Duration // moving average over successful checks; 0 before one
	checked         bool          // has a result
	// lastOK is the last active check's result (passive health aside):
	// what the self-check looks at, since a load balancer that answers
	// its stats with errors is proof that the network works.
	lastOK bool
	// checks counts the results observed, failedChecks the failed ones.
	checks, failedChecks uint64

	// The load reading (nil: none), when it was taken, where from, and
	// why the stats source gave none.
	load, capacity *float64
	loadAt         time.Time
	loadSource     string
	loadErr        string
	// Passive health: the counters over its window, the last verdict,
	// and whether the last failure was passive health's alone (the
	// active check passing).
	window      passiveWindow
	verdict     verdict
	failPassive bool
}

// observe applies one result, seen while the prober did or did not trust
// itself, and says whether the state changed (a first decision
// included). passive says that r failed on passive health alone: its
// active check passed.
func (s *vipState) observe(r Result, passive bool, rise, fall int, trusted bool, now time.Time) bool {
	s.checked, s.lastOK = true, r.OK || passive
	s.checks++
	if r.OK || passive {
		if s.rtt == 0 {
			s.rtt = r.RTT
		} else {
			s.rtt += time.Duration(rttWeight * float64(r.RTT-s.rtt))
		}
	}
	if r.OK {
		s.successes++
		s.failures, s.trustedFailures = 0, 0
	} else {
		s.failures++
		s.failedChecks++
		if trusted {
			s.trustedFailures++
		}
		s.successes = 0
		s.reason = r.Reason
		s.failPassive = passive
	}
	changed := false
	switch {
	case r.OK && s.successes >= rise && (!s.known || !s.up):
		s.known, s.up, s.since, s.confirmed = true, true, now, false
		changed = true
	case !r.OK && s.failures >= fall && (!s.known || s.up):
		s.known, s.up, s.since = true, false, now
		changed = true
	}
	if s.known && !s.up && s.trustedFailures >= fall {
		s.confirmed = true
	}
	return changed
}

// voted says whether the state goes into the prober's report: a decided
// state, but while the prober trusts itself a down state only once it is
// confirmed. An untrusted report shows every decided state; it is not
// counted.
func (s *vipState) voted(trusted bool) bool {
	return s.known && (s.up || s.confirmed || !trusted)
}

// regainedTrust forgets the failures seen before the prober trusted
// itself again: a down state must be confirmed by fall failures seen from
// now on (or the VIP rises), and until then it is not voted on.
func (s *vipState) regainedTrust() {
	s.trustedFailures, s.confirmed = 0, false
}

// takeCheckLoad records what the check's JSON answer said of the load
// (no stats source): a successful check replaces the reading, a failed
// one leaves the last to age.
func (s *vipState) takeCheckLoad(r Result, now time.Time) {
	if !r.OK {
		return
	}
	s.load, s.capacity, s.loadErr = r.Load, r.Capacity, ""
	s.loadAt, s.loadSource = time.Time{}, ""
	if r.Load != nil {
		s.loadAt, s.loadSource = now, regions.LoadSourceHealth
	}
}

// takeReading records a stats reading: its load, or why there is none.
func (s *vipState) takeReading(rd *reading, kind string) {
	s.load, s.capacity, s.loadErr, s.loadSource, s.loadAt = rd.load, rd.capacity, rd.loadErr, kind, time.Time{}
	if rd.load != nil {
		s.loadAt = rd.at
	}
}

// passiveDown says whether a down state is passive health's alone: the
// failures that took the VIP down, or keep it down, were passive while
// its active check passed.
func (s *vipState) passiveDown() bool {
	return s.known && !s.up && s.failPassive
}
