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
	reason              string        // why the last failed check failed
	rtt                 time.Duration // moving average over successful checks; 0 before one
	load, capacity      *float64
	checked             bool // has a result
	lastOK              bool
	checks              uint64
}

// observe applies one result and says whether the state changed (a first
// decision included).
func (s *vipState) observe(r Result, rise, fall int, now time.Time) bool {
	s.checked, s.lastOK = true, r.OK
	s.checks++
	if r.OK {
		s.successes++
		s.failures = 0
		if s.rtt == 0 {
			s.rtt = r.RTT
		} else {
			s.rtt += time.Duration(rttWeight * float64(r.RTT-s.rtt))
		}
		s.load, s.capacity = r.Load, r.Capacity
	} else {
		s.failures++
		s.successes = 0
		s.reason = r.Reason
	}
	switch {
	case r.OK && s.successes >= rise && (!s.known || !s.up):
		s.known, s.up, s.since = true, true, now
		return true
	case !r.OK && s.failures >= fall && (!s.known || s.up):
		s.known, s.up, s.since = true, false, now
		return true
	}
	return false
}
