package store

import (
	"context"
	"time"
)

// Changed returns a channel that is closed when the next snapshot is
// swapped in: take it, read Current, and wait on it for what follows.
// Time changes the answers too (a shift's expiry, a factor's move):
// Run swaps in a snapshot built again at the served one's NextChange,
// so a wait on Changed sees those as well.
func (l *Live) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.swapped
}

// waitUntil waits until ctx ends (live false), changed is closed, or the
// time at passes (zero: never), on timer; fired says it was at. The wall
// clock decides at; a timer measures monotonic time, so a step of the
// clock makes a wake-up early at worst, and the next one comes a little
// later.
func waitUntil(ctx context.Context, changed <-chan struct{}, timer *time.Timer, at time.Time) (fired, live bool) {
	var fire <-chan time.Time
	if !at.IsZero() {
		timer.Reset(max(time.Until(at), time.Millisecond))
		fire = timer.C
	}
	select {
	case <-ctx.Done():
		return false, false
	case <-changed:
		timer.Stop()
		return false, true
	case <-fire:
		return true, true
	}
}
