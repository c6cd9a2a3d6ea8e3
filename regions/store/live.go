package store

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/regions"
)

// Live holds the snapshot a server answers from. It starts from the state
// persisted in the data directory (so a server restarted while etcd is
// away still serves what it last knew), then takes every State the
// watcher delivers: it builds the snapshot off the query path, swaps it in
// and writes the state back to disk (see Run for how often).
//
// Live also keeps the age of the data: the time etcd last confirmed the
// served state current, carried over restarts by the state file. And it
// refuses to let an empty etcd wipe a state that has regions or services
// (see ApplyListing).
type Live struct {
	path   string
	opts   regions.SnapshotOptions
	log    *slog.Logger
	onSwap func(*regions.Snapshot)

	// Persistence pacing; change before Run only. Zero values take the
	// defaults.
	//
	// FastInterval is the least time between two writes when regions,
	// services or the latency table changed (default 1s). SlowInterval is
	// the least time between two writes when only health reports, prober
	// registrations, the revision or the confirmation time changed
	// (default 10s): those change all the time, and a restart that misses
	// the newest of them loses little (reports expire with their leases
	// once etcd answers, and an older confirmation time only makes the
	// reported age larger than the truth, never smaller).
	FastInterval, SlowInterval time.Duration

	cur    atomic.Pointer[regions.Snapshot]
	builds atomic.Uint64
	// compiled and refreshed add up the services the builds compiled
	// and refreshed (regions.BuildStats), buildNanos their time.
	compiled, refreshed, buildNanos atomic.Uint64

	// applyMu serializes changes of the served state: the watcher's
	// deliveries and AcceptEmpty.
	applyMu sync.Mutex

	mu        sync.Mutex // guards what follows
	source    string     // "file", "etcd"; "" before the first snapshot
	built     time.Time
	confirmed time.Time // when etcd last confirmed the served state current
	refused   *refusal  // an empty state from etcd not served, nil if none
	// emptyStart lets the first listing replace a non-empty state with
	// an empty one (the server's --accept-empty-state).
	emptyStart bool

	// Persistence: what is waiting to be written and when the last
	// write was.
	dirty, urgent bool
	lastWrite     time.Time
	onDisk        *latencyRef // the latency file last written or verified
	writes        uint64
	written       int64
	persistErr    string
	wake          chan struct{}
	// serviceJSON is the services' JSON of the last write, for the next
	// (used by flush only).
	serviceJSON serviceJSON
	// swapped is closed when the next snapshot is swapped in (Changed).
	swapped chan struct{}
}

// refusal is an empty state from etcd that is not served.
type refusal struct {
	since     time.Time
	state     *regions.State // the newest empty state etcd delivered
	confirmed time.Time      // when etcd last confirmed it current
}

// NewLive returns a Live that persists to path ("" disables persistence)
// and calls onSwap (may be nil) with every new snapshot.
func NewLive(path string, opts regions.SnapshotOptions, logger *slog.Logger, onSwap func(*regions.Snapshot)) *Live {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Live{path: path, opts: opts, log: logger, onSwap: onSwap, wake: make(chan struct{}, 1), swapped: make(chan struct{})}
}

// Path is the state file ("" without persistence).
func (l *Live) Path() string { return l.path }

// LoadPersisted serves the state saved by an earlier run, if there is
// one, with the confirmation time saved with it: its age is the age of
// the data, not of this process. A missing file is not an error; an
// unreadable one is, and leaves nothing loaded.
func (l *Live) LoadPersisted() error {
	if l.path == "" {
		return nil
	}
	saved, err := LoadState(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	l.mu.Lock()
	l.onDisk = saved.latency
	l.mu.Unlock()
	l.publish(l.build(saved.State), "file", saved.Confirmed, false, false)
	st := saved.State
	l.log.Info("serving the persisted state until etcd answers", "revision", st.Revision, "regions", len(st.Regions), "services", len(st.Services),
		"confirmed", saved.Confirmed, "age", time.Since(saved.Confirmed).Round(time.Second), "format", saved.Format)
	return nil
}

// AcceptEmptyAtStart lets the first listing from etcd replace a state
// that has regions or services with one that has neither (the server's
// --accept-empty-state). The first listing uses it up, whatever it holds.
func (l *Live) AcceptEmptyAtStart() {
	l.mu.Lock()
	l.emptyStart = true
	l.mu.Unlock()
}

// ErrNothingRefused is AcceptEmpty's answer when no empty state is
// being refused.
var ErrNothingRefused = errors.New("no empty state from etcd is being refused")

// AcceptEmpty serves the empty state from etcd that is being refused (see
// ApplyListing) and persists it: the operator's confirmation that etcd is
// meant to hold no regions and no services. It returns ErrNothingRefused
// when there is none, and applies to this Live only (each server decides
// for itself).
func (l *Live) AcceptEmpty() error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	l.mu.Lock()
	r := l.refused
	l.refused = nil
	l.mu.Unlock()
	if r == nil {
		return ErrNothingRefused
	}
	l.log.Warn("serving the empty state from etcd: accepted by the operator", "revision", r.state.Revision, "refused_since", r.since)
	l.serve(r.state, r.confirmed, true)
	return nil
}

// Apply serves a State that a watch event produced: the watcher's
// onState. Events are what was written to etcd, one by one, so a state
// they leave without regions and services is served (the operator deleted
// them), except on top of an empty listing being refused.
func (l *Live) Apply(st *regions.State) { l.take(st, false) }

// ApplyListing serves a State read whole from etcd: at start, after a
// compaction, after the watch was lost. A listing with no regions and no
// services while the served state has some is refused: a fresh or
// unrelated cluster, or a wrong prefix, must not wipe steering. The
// served state stays, status and log say so, and etcd's state is served
// again once it holds services (regions, if the served state has no
// services), or after AcceptEmpty (or AcceptEmptyAtStart for the first
// listing).
func (l *Live) ApplyListing(st *regions.State) { l.take(st, true) }

// Confirm records that etcd confirmed the served state current at t: the
// watcher calls it after every answer from etcd (a listing, a watch
// response, a progress notification), once the state that answer carried
// was delivered. It counts only for a state delivered by etcd and
// served: not for one read from the file, nor for an empty state being
// refused.
func (l *Live) Confirm(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.refused != nil:
		if t.After(l.refused.confirmed) {
			l.refused.confirmed = t
		}
	case l.source != "etcd":
	case t.After(l.confirmed):
		l.confirmed = t
		l.markDirty(false)
	}
}

func (l *Live) take(st *regions.State, listing bool) {
	now := time.Now()
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	l.mu.Lock()
	emptyStart := l.emptyStart && listing
	if listing {
		l.emptyStart = false
	}
	empty := len(st.Regions) == 0 && len(st.Services) == 0
	var old *regions.State
	if served := l.cur.Load(); served != nil {
		old = served.State()
	}
	protect := old != nil && (len(old.Regions) > 0 || len(old.Services) > 0)
	switch {
	case l.refused != nil:
		// Refusing ends once etcd holds services again (regions, if the
		// served state has no services): not at the first region a
		// bootstrap writes before its services.
		if len(st.Services) == 0 && (len(old.Services) > 0 || len(st.Regions) == 0) {
			l.refused.state, l.refused.confirmed = st, now
			l.mu.Unlock()
			return
		}
		l.log.Info("etcd holds services again; serving its state", "revision", st.Revision, "regions", len(st.Regions), "services", len(st.Services))
		l.refused = nil
	case !empty || !protect:
	case emptyStart:
		l.log.Warn("serving an empty state from etcd: accepted at start", "revision", st.Revision)
	case listing:
		l.refused = &refusal{since: now, state: st, confirmed: now}
		l.log.Error("etcd holds no regions and no services; keeping the served state until an operator accepts the empty one",
			"etcd_revision", st.Revision, "served_revision", old.Revision, "regions", len(old.Regions), "services", len(old.Services))
		l.mu.Unlock()
		return
	default:
		l.log.Warn("the last regions and services were deleted from etcd; serving the empty state", "revision", st.Revision)
	}
	l.mu.Unlock()
	l.serve(st, now, false)
}

// serve builds and swaps in a snapshot of st, delivered by etcd and
// current at confirmed, and schedules its write. Under applyMu.
func (l *Live) serve(st *regions.State, confirmed time.Time, urgent bool) {
	prev := l.cur.Load()
	urgent = urgent || prev == nil || !sameConfig(prev.State(), st)
	l.publish(l.build(st), "etcd", confirmed, true, urgent)
}

// sameConfig says whether a and b have the same regions, services,
// shifts and latency table. Objects are never modified in place, so the same pointer
// is the same object; a listing brings new pointers and counts as a
// change.
func sameConfig(a, b *regions.State) bool {
	if len(a.Regions) != len(b.Regions) || len(a.Services) != len(b.Services) {
		return false
	}
	for k, v := range a.Regions {
		if b.Regions[k] != v {
			return false
		}
	}
	for k, v := range a.Services {
		if b.Services[k] != v {
			return false
		}
	}
	if len(a.Shifts) != len(b.Shifts) {
		return false
	}
	for k, v := range a.Shifts {
		if b.Shifts[k] != v {
			return false
		}
	}
	switch {
	case a.Latency == nil || b.Latency == nil:
		return a.Latency == b.Latency
	default:
		return a.Latency.ID == b.Latency.ID
	}
}

// build compiles st into a snapshot, off the query path, from the
// served one: only what changed is compiled again.
func (l *Live) build(st *regions.State) *regions.Snapshot {
	prev := l.cur.Load()
	s := regions.BuildSnapshot(st, prev, l.opts)
	if p := s.Problems(); len(p) > 0 && (prev == nil || !slices.Equal(p, prev.Problems())) {
		l.log.Warn("snapshot built with problems", "revision", st.Revision, "problems", p)
	}
	bs := s.Stats()
	l.compiled.Add(uint64(bs.Compiled))
	l.refreshed.Add(uint64(bs.Refreshed))
	l.buildNanos.Add(uint64(bs.Took))
	l.log.Debug("snapshot built", "revision", st.Revision, "services", bs.Services, "compiled", bs.Compiled, "refreshed", bs.Refreshed, "took", bs.Took)
	return s
}

// publish swaps s in, with where it came from and when it was confirmed
// current. Under applyMu; the swap, the confirmation time and the pending
// write change together, so a write never pairs a state with another's
// confirmation time.
func (l *Live) publish(s *regions.Snapshot, source string, confirmed time.Time, dirty, urgent bool) {
	l.mu.Lock()
	l.cur.Store(s)
	l.builds.Add(1)
	l.built = time.Now()
	l.source, l.confirmed = source, confirmed
	if dirty {
		l.markDirty(urgent)
	}
	close(l.swapped)
	l.swapped = make(chan struct{})
	l.mu.Unlock()
	// Run looks at the new snapshot's NextChange.
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if l.onSwap != nil {
		l.onSwap(s)
	}
}

// Rebuild builds the served snapshot again from the state it serves and
// swaps it in: for a change the snapshot compiles that is not in the
// state, such as a new GeoIP database (regions.SnapshotOptions.GeoIP),
// or the time its factors move at (Run).
// The state, its source and its age stay as they are, and nothing is
// written to disk. Before the first snapshot it does nothing.
func (l *Live) Rebuild() {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	cur := l.cur.Load()
	if cur == nil {
		return
	}
	s := l.build(cur.State())
	l.mu.Lock()
	source, confirmed := l.source, l.confirmed
	l.mu.Unlock()
	l.publish(s, source, confirmed, false, false)
}

// Current is the snapshot being served, nil before the first one.
func (l *Live) Current() *regions.Snapshot { return l.cur.Load() }

// Info says where the current snapshot came from and when it was built.
func (l *Live) Info() (source string, built time.Time, builds uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.source, l.built, l.builds.Load()
}

// LiveStatus is what a Live serves and how old it is, for /v1/status,
// /health/details and metrics.
type LiveStatus struct {
	// Source is "file" (the state file, until etcd delivers), "etcd", or
	// "" before the first snapshot.
	Source   string    `json:"source"`
	Revision int64     `json:"revision"`
	Built    time.Time `json:"built,omitzero"`
	Builds   uint64    `json:"builds"`
	// Compiled and Refreshed add up the services the builds compiled
	// and refreshed; BuildTime is the builds' time.
	Compiled  uint64        `json:"compiled"`
	Refreshed uint64        `json:"refreshed"`
	BuildTime time.Duration `json:"build_time"`
	// Confirmed is when etcd last confirmed the served state current (a
	// listing, a watch response or a progress notification), kept across
	// restarts by the state file. Age is now minus Confirmed: the age of
	// the data, also after a restart from an old file.
	Confirmed  time.Time     `json:"confirmed,omitzero"`
	Age        time.Duration `json:"-"`
	AgeSeconds float64       `json:"age_seconds"`
	// EmptyRefused is set while an empty state from etcd is not served.
	EmptyRefused *EmptyRefused `json:"empty_refused,omitempty"`
	// Reports is every health report served, with its age: reports read
	// from the state file keep the time they were observed.
	Reports []ReportAge `json:"reports,omitempty"`
	// Persist is how writing the state file goes.
	Persist PersistStatus `json:"persist"`
}

// EmptyRefused describes an empty state from etcd that is not served.
type EmptyRefused = apitypes.EmptyRefused

// ReportAge is a health report's observation time and age.
type ReportAge = apitypes.ReportAge

// PersistStatus counts the writes of the state file.
type PersistStatus struct {
	Writes    uint64    `json:"writes"`
	Bytes     int64     `json:"bytes"`
	LastWrite time.Time `json:"last_write,omitzero"`
	// Pending says a change waits for its write.
	Pending   bool   `json:"pending"`
	LastError string `json:"last_error,omitempty"`
}

const emptyRefusedMessage = "etcd holds no regions and no services; the previous state is served until etcd holds services again or an operator accepts the empty state (meridian server --accept-empty-state, or the API)"

// Status returns what l serves and how old it is, as of now.
func (l *Live) Status() LiveStatus {
	now := time.Now()
	snap := l.cur.Load()
	l.mu.Lock()
	s := LiveStatus{
		Source: l.source, Built: l.built, Builds: l.builds.Load(), Confirmed: l.confirmed,
		Compiled: l.compiled.Load(), Refreshed: l.refreshed.Load(), BuildTime: time.Duration(l.buildNanos.Load()),
		Persist: PersistStatus{Writes: l.writes, Bytes: l.written, LastWrite: l.lastWrite, Pending: l.dirty, LastError: l.persistErr},
	}
	if r := l.refused; r != nil {
		s.EmptyRefused = &EmptyRefused{Since: r.since, Revision: r.state.Revision, Message: emptyRefusedMessage}
	}
	l.mu.Unlock()
	if snap == nil {
		return s
	}
	s.Revision = snap.Revision()
	if !s.Confirmed.IsZero() {
		s.Age = max(now.Sub(s.Confirmed), 0)
		s.AgeSeconds = s.Age.Seconds()
	}
	for region, reps := range snap.State().Health {
		for _, rep := range reps {
			if rep != nil {
				s.Reports = append(s.Reports, ReportAge{Region: region, Prober: rep.Prober, Observed: rep.Observed, AgeSeconds: max(now.Sub(rep.Observed), 0).Seconds()})
			}
		}
	}
	slices.SortFunc(s.Reports, func(a, b ReportAge) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		return strings.Compare(a.Prober, b.Prober)
	})
	return s
}

// markDirty notes a change to write, urgent for regions, services and
// the latency table. Under mu.
func (l *Live) markDirty(urgent bool) {
	if l.path == "" {
		return
	}
	l.dirty = true
	l.urgent = l.urgent || urgent
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Live) intervals() (fast, slow time.Duration) {
	fast, slow = l.FastInterval, l.SlowInterval
	if fast <= 0 {
		fast = time.Second
	}
	if slow <= 0 {
		slow = 10 * time.Second
	}
	return fast, max(fast, slow)
}

// due says whether a write is pending and when it may happen: FastInterval
// after the last write for a change of regions, services or the latency
// table, SlowInterval after it when only the rest changed.
func (l *Live) due() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dirty {
		return time.Time{}, false
	}
	fast, slow := l.intervals()
	if l.urgent {
		return l.lastWrite.Add(fast), true
	}
	return l.lastWrite.Add(slow), true
}

// Run writes the served state to disk until ctx ends, and once more on
// the way out: a change of regions, services or the latency table at most
// FastInterval after the previous write, other changes at most
// SlowInterval after it (the newest state wins). The latency table is
// written to its own file only when its id changes.
//
// It also builds the served snapshot again when its factors are due to
// move (regions.Snapshot.NextChange: a load factor walking to its
// target, a slow start): the factors evolve with time, not only with
// the state, and only the services due are refreshed.
func (l *Live) Run(ctx context.Context) error {
	persist := l.path != ""
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	factors := time.NewTimer(time.Hour)
	defer factors.Stop()
	for {
		var wait, due <-chan time.Time
		if at, ok := l.due(); persist && ok {
			d := time.Until(at)
			if d <= 0 {
				l.flush()
				continue
			}
			timer.Reset(d)
			wait = timer.C
		}
		if s := l.cur.Load(); s != nil {
			if at := s.NextChange(); !at.IsZero() {
				factors.Reset(max(time.Until(at), 0))
				due = factors.C
			}
		}
		select {
		case <-ctx.Done():
			if persist {
				l.flush()
			}
			return nil
		case <-l.wake:
		case <-wait:
		case <-due:
			l.Rebuild()
		}
	}
}

// flush writes the served state if a change is pending.
func (l *Live) flush() {
	l.mu.Lock()
	snap := l.cur.Load()
	if !l.dirty || snap == nil {
		l.mu.Unlock()
		return
	}
	l.dirty, l.urgent = false, false
	confirmed, onDisk := l.confirmed, l.onDisk
	l.mu.Unlock()

	ref, n, err := saveState(l.path, snap.State(), confirmed, onDisk, &l.serviceJSON)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastWrite = time.Now()
	l.written += n
	if err != nil {
		// Serving goes on; only a restart without etcd would miss it.
		// Tried again at the slow pace, logged once.
		l.dirty = true
		if l.persistErr == "" {
			l.log.Error("cannot persist the state; retrying", "path", l.path, "err", err)
		}
		l.persistErr = err.Error()
		return
	}
	if l.persistErr != "" {
		l.log.Info("the state is persisted again", "path", l.path)
		l.persistErr = ""
	}
	l.writes++
	l.onDisk = ref
}
