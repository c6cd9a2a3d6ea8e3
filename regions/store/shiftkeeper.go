package store

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// DefaultShiftHistory is how long an ended shift stays listed before it
// is deleted; its end stays in the audit log.
const DefaultShiftHistory = 24 * time.Hour

// ShiftKeeper records, from one server, the ends of shifts that no write
// ended: an expiry (once the expiry passed) and a revert (once the
// snapshot served found the shift's guard tripped). Every server runs
// one; each end is recorded by one of them (EndShift's compare-and-swap),
// with one audit record. The answers do not wait for it: every server
// stops applying a shift at its expiry, or when its guard trips, on its
// own. It also deletes the shifts that ended more than History ago.
type ShiftKeeper struct {
	st   *Store
	live *Live
	// Actor names this server in the ends it records.
	actor string
	log   *slog.Logger

	// History is how long an ended shift is kept (default
	// DefaultShiftHistory); MinBackoff and MaxBackoff pace the retries
	// while etcd is away (default 250ms to 10s). Change before Run.
	History                time.Duration
	MinBackoff, MaxBackoff time.Duration
}

// NewShiftKeeper returns a keeper of the shifts live serves, writing
// through st as actor.
func NewShiftKeeper(st *Store, live *Live, actor string, logger *slog.Logger) *ShiftKeeper {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ShiftKeeper{st: st, live: live, actor: actor, log: logger}
}

func (k *ShiftKeeper) defaults() {
	if k.History <= 0 {
		k.History = DefaultShiftHistory
	}
	if k.MinBackoff <= 0 {
		k.MinBackoff = 250 * time.Millisecond
	}
	if k.MaxBackoff < k.MinBackoff {
		k.MaxBackoff = max(10*time.Second, k.MinBackoff)
	}
}

// Run records ends until ctx ends: whenever a snapshot is swapped in, at
// every expiry and end of history, and again after a failure.
func (k *ShiftKeeper) Run(ctx context.Context) error {
	k.defaults()
	backoff := k.MinBackoff
	failing := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := k.live.Changed()
		next, err := k.pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			if !failing {
				k.log.Warn("cannot record the end of a shift; retrying (the servers stop applying it all the same)", "err", err)
			}
			failing = true
			next = time.Now().Add(jitter(backoff))
			backoff = min(2*backoff, k.MaxBackoff)
		case failing:
			k.log.Info("shift ends recorded again")
			failing, backoff = false, k.MinBackoff
		}
		if _, live := waitUntil(ctx, changed, timer, next); !live {
			return nil
		}
	}
}

// pass records what is due in the served snapshot and returns when the
// next thing falls due (zero: nothing but a new snapshot).
func (k *ShiftKeeper) pass(ctx context.Context) (time.Time, error) {
	snap := k.live.Current()
	if snap == nil {
		return time.Time{}, nil
	}
	now := time.Now()
	trips := snap.ShiftTrips()
	shifts := snap.State().Shifts
	var next time.Time
	due := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	prune := false
	for _, id := range slices.Sorted(maps.Keys(shifts)) {
		sh := shifts[id]
		if sh == nil {
			continue
		}
		how, detail := regions.ShiftState(""), ""
		switch {
		case sh.Ended != nil:
			if at := sh.Ended.At.Add(k.History); now.Before(at) {
				due(at)
			} else {
				prune = true
			}
			continue
		case trips[id] != "":
			how, detail = regions.ShiftReverted, trips[id]
		case !now.Before(sh.Expires):
			how = regions.ShiftExpired
		default:
			due(sh.Expires)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done, err := k.st.EndShift(wctx, id, how, detail, By(k.actor))
		cancel()
		if err != nil {
			return time.Time{}, err
		}
		if done {
			k.log.Info("shift ended", "id", id, "how", how, "detail", detail, "shift", sh.Describe())
		}
	}
	if prune {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := k.st.PruneShifts(wctx, now.Add(-k.History))
		cancel()
		if err != nil {
			return time.Time{}, err
		}
		if n > 0 {
			k.log.Debug("ended shifts deleted", "count", n, "history", k.History)
		}
	}
	return next, nil
}
