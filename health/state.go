package health

import "time"

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
	load, capacity  *float64
	checked         bool // has a result
	lastOK          bool
	checks          uint64
}

// observe applies one result, seen while the prober did or did not trust
// itself, and says whether the state changed (a first decision
// included).
func (s *vipState) observe(r Result, rise, fall int, trusted bool, now time.Time) bool {
	s.checked, s.lastOK = true, r.OK
	s.checks++
	if r.OK {
		s.successes++
		s.failures, s.trustedFailures = 0, 0
		if s.rtt == 0 {
			s.rtt = r.RTT
		} else {
			s.rtt += time.Duration(rttWeight * float64(r.RTT-s.rtt))
		}
		s.load, s.capacity = r.Load, r.Capacity
	} else {
		s.failures++
		if trusted {
			s.trustedFailures++
		}
		s.successes = 0
		s.reason = r.Reason
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
