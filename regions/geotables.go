package regions

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/meridian-gslb/meridian/geo"
)

// DefaultMergeBudget bounds the memory of the partitions' merges unless
// GeoTablesOptions says otherwise: with the country database built from
// tor-geoipdb a merge takes about 89 KB, so this holds about 375, for
// the partitions most services share. A partition without a merge gets
// the same scopes from the location table's sets, at about twice the
// lookup's cost (docs/architecture.md, Runs without a merge). At 64 MiB
// the merges were 40% of a server's live heap at 10,000 services.
const DefaultMergeBudget = 32 << 20

// GeoTablesOptions tune a GeoTables.
type GeoTablesOptions struct {
	// MergeBudget bounds the bytes of the partitions' merges; 0 means
	// DefaultMergeBudget. Partitions beyond it (the ones fewest services
	// share) find their client's run in the location table's sets.
	MergeBudget int64
	// OnReady is called, outside any lock, after Run built tables that a
	// new snapshot would use: a location table, or a batch of merges.
	OnReady func()
	// OnBuild, when set, is called outside any lock after each table
	// built, with its kind (GeoTableLocation or GeoTableMerge) and how
	// long it took: the build times metrics show.
	OnBuild func(kind string, took time.Duration)
	Logger  *slog.Logger
}

// The kinds of geo tables OnBuild names.
const (
	GeoTableLocation = "location"
	GeoTableMerge    = "merge"
)

// GeoTables builds and keeps the geo tables that snapshots read (see
// geotable.go): the location table of the database served, the
// partitions of the geo services interned so that services with the same
// partition share one, and the partitions' merges within a memory budget.
// A snapshot takes what is built and asks for the rest; with Run going the
// rest is built in the background, and OnReady says when a snapshot
// built again would find more. Without Run (tests, tools), snapshots build
// what they need as they are built.
//
// One GeoTables serves a chain of snapshots (SnapshotOptions.Tables); it
// is safe for concurrent use.
type GeoTables struct {
	budget  int64
	onReady func()
	onBuild func(kind string, took time.Duration)
	log     *slog.Logger
	wake    chan struct{}

	mu         sync.Mutex
	background bool
	db         *geo.DB // the database of lt, built or being built
	lt         *locTable
	ltErr      error
	parts      map[string]*partEntry
	mergeBytes int64
	evicted    int // merges dropped for those of more shared partitions
}

// partEntry is an interned partition with the number of services of the
// newest snapshot that use it and its merge once built.
type partEntry struct {
	p     *partition
	users int
	m     *merge
}

// NewGeoTables returns a GeoTables that builds as snapshots ask until Run
// starts.
func NewGeoTables(o GeoTablesOptions) *GeoTables {
	if o.MergeBudget <= 0 {
		o.MergeBudget = DefaultMergeBudget
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &GeoTables{budget: o.MergeBudget, onReady: o.OnReady, onBuild: o.OnBuild, log: o.Logger, wake: make(chan struct{}, 1), parts: map[string]*partEntry{}}
}

// Run builds tables in the background until ctx ends: from its start on,
// snapshots no longer wait for any table.
func (t *GeoTables) Run(ctx context.Context) error {
	t.mu.Lock()
	t.background = true
	t.mu.Unlock()
	t.poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.wake:
		}
		for {
			start := time.Now()
			if !t.work(ctx) {
				break
			}
			// Half a core at most: the builds that follow an apply of
			// thousands of services, and the apply itself, come first.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Since(start)):
			}
		}
	}
}

func (t *GeoTables) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// work builds the location table if one is wanted, else merges for up to
// a quarter of a second, then tells OnReady. It reports whether more
// is left to build.
func (t *GeoTables) work(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if t.buildLocation() {
		t.ready()
		return true
	}
	deadline := time.Now().Add(250 * time.Millisecond)
	built := 0
	more := true
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if more = t.buildOneMerge(); !more {
			break
		}
		built++
	}
	if built > 0 {
		t.ready()
	}
	return more
}

func (t *GeoTables) ready() {
	if t.onReady != nil {
		t.onReady()
	}
}

// buildLocation builds the location table of the wanted database, if it
// is not built yet. It reports whether it built one (or failed to).
func (t *GeoTables) buildLocation() bool {
	t.mu.Lock()
	db := t.db
	need := db != nil && t.lt == nil && t.ltErr == nil
	t.mu.Unlock()
	if !need {
		return false
	}
	lt, err := buildLocTable(db)
	if err == nil {
		t.built(GeoTableLocation, lt.buildTime)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.db != db {
		return true // another database came meanwhile
	}
	if err != nil {
		t.ltErr = err
		t.log.Error("geo location table: the database walk failed; geo services look each client up", "err", err)
		return true
	}
	t.lt = lt
	t.log.Info("geo location table built", "networks", lt.networks, "locations", len(lt.locs),
		"intervals_v4", len(lt.v4start), "intervals_v6", len(lt.v6hi), "bytes", lt.bytes(), "took", lt.buildTime.Round(time.Millisecond))
	return true
}

// built tells OnBuild of a table built.
func (t *GeoTables) built(kind string, took time.Duration) {
	if t.onBuild != nil {
		t.onBuild(kind, took)
	}
}

// buildOneMerge builds the merge of the partition most services share
// among those without one, within the budget. It reports whether it
// built one.
func (t *GeoTables) buildOneMerge() bool {
	t.mu.Lock()
	e := t.nextMergeLocked()
	t.mu.Unlock()
	if e == nil {
		return false
	}
	m := buildMerge(e.p)
	t.built(GeoTableMerge, m.buildTime)
	t.mu.Lock()
	if t.parts[e.p.key] == e && e.m == nil && e.p.lt == t.lt {
		e.m = m
		t.mergeBytes += int64(m.bytes())
	}
	t.mu.Unlock()
	return true
}

// before orders partitions for merging: the most shared first, then
// the one with fewer groups, then by key.
func (e *partEntry) before(o *partEntry) bool {
	if e.users != o.users {
		return e.users > o.users
	}
	if e.p.groups != o.p.groups {
		return e.p.groups < o.p.groups
	}
	return e.p.key < o.p.key
}

// nextMergeLocked picks the partition to merge next: used, without a
// merge, of the current table, the first in merge order (before). When
// the budget has no room for it, the merge of the last merged partition
// in that order goes if fewer services use it: merges serve the
// partitions most services share, and a merge is never rebuilt for as
// many services as it serves. Under mu.
func (t *GeoTables) nextMergeLocked() *partEntry {
	if t.lt == nil {
		return nil
	}
	var best, worst *partEntry
	for _, e := range t.parts {
		switch {
		case e.users == 0 || e.p.lt != t.lt:
		case e.m == nil:
			if best == nil || e.before(best) {
				best = e
			}
		case worst == nil || worst.before(e):
			worst = e
		}
	}
	if best == nil {
		return nil
	}
	need := int64(mergeBytes(t.lt))
	if t.mergeBytes+need <= t.budget {
		return best
	}
	if worst == nil || best.users <= worst.users || t.mergeBytes-int64(worst.m.bytes())+need > t.budget {
		return nil
	}
	t.mergeBytes -= int64(worst.m.bytes())
	worst.m = nil
	t.evicted++
	return best
}

// location returns the location table of db, nil while it is not built
// (or cannot be: err says why). Asking for another database drops the
// tables of the previous one; without Run, it is built now.
func (t *GeoTables) location(db *geo.DB) (*locTable, error) {
	t.mu.Lock()
	if t.db != db {
		t.db, t.lt, t.ltErr = db, nil, nil
		clear(t.parts)
		t.mergeBytes = 0
	}
	lt, err, bg := t.lt, t.ltErr, t.background
	t.mu.Unlock()
	if lt != nil || err != nil || db == nil {
		return lt, err
	}
	if bg {
		t.poke()
		return nil, nil
	}
	t.buildLocation()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lt, t.ltErr
}

// intern returns the partition equal to p that t keeps, p itself when t
// has none yet.
func (t *GeoTables) intern(p *partition) *partition {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.lt != t.lt {
		return p
	}
	if e := t.parts[p.key]; e != nil {
		return e.p
	}
	t.parts[p.key] = &partEntry{p: p}
	return p
}

// settle records how many services of a new snapshot use each partition,
// forgets the partitions it does not use, and has the merges built: now
// without Run, else in the background. It returns the merges built so
// far, by partition.
func (t *GeoTables) settle(users map[*partition]int) map[*partition]*merge {
	t.mu.Lock()
	for k, e := range t.parts {
		n := users[e.p]
		if n == 0 {
			if e.m != nil {
				t.mergeBytes -= int64(e.m.bytes())
			}
			delete(t.parts, k)
			continue
		}
		e.users = n
	}
	bg := t.background
	t.mu.Unlock()
	if bg {
		t.poke()
	} else {
		for t.buildOneMerge() {
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[*partition]*merge, len(t.parts))
	for _, e := range t.parts {
		if e.m != nil {
			out[e.p] = e.m
		}
	}
	return out
}

// GeoTablesInfo describes the geo tables a snapshot reads.
type GeoTablesInfo struct {
	// Location describes the location table; nil without one (no
	// database, or not built yet).
	Location *LocationTableInfo `json:"location,omitempty"`
	// Partitions lists each partition the snapshot's geo services use,
	// the most shared first.
	Partitions []PartitionInfo `json:"partitions"`
	// Merged counts the partitions with a merge; MergeBytes is their
	// memory, within MergeBudget. Pending counts those without one that
	// the budget will take (room is left, or a merge of fewer services
	// will make room), OverBudget those it will not take: they find
	// their client's run in the location table's sets, the same scope
	// as a merge's at a few times the lookup's cost (with a database of
	// more locations than the sets hold, the client's location interval
	// widened by reading at most 64 more intervals, a scope as wide as
	// the merge's for most clients, narrower for some). Evicted counts
	// the merges dropped so far for those of more shared partitions.
	Merged      int   `json:"merged"`
	MergeBytes  int64 `json:"merge_bytes"`
	MergeBudget int64 `json:"merge_budget"`
	Pending     int   `json:"pending"`
	OverBudget  int   `json:"over_budget"`
	Evicted     int   `json:"evicted"`
	// MergedServices and UnmergedServices count the geo services whose
	// partition has a merge and those whose partition has none.
	MergedServices   int `json:"merged_services"`
	UnmergedServices int `json:"unmerged_services"`
}

// LocationTableInfo describes a location table.
type LocationTableInfo struct {
	Locations   int           `json:"locations"`
	IntervalsV4 int           `json:"intervals_v4"`
	IntervalsV6 int           `json:"intervals_v6"`
	Bytes       int           `json:"bytes"`
	Networks    int           `json:"networks"`
	BuildTime   time.Duration `json:"build_time"`
}

// PartitionInfo describes one partition of a snapshot.
type PartitionInfo struct {
	// Services are the services that use it, sorted.
	Services []string `json:"services"`
	// Groups counts the classes of locations.
	Groups int `json:"groups"`
	// Merged is set once the merge is built; RunsV4 and RunsV6 count its
	// merged intervals, Bytes its memory.
	Merged    bool          `json:"merged"`
	RunsV4    int           `json:"runs_v4,omitempty"`
	RunsV6    int           `json:"runs_v6,omitempty"`
	Bytes     int           `json:"bytes"`
	BuildTime time.Duration `json:"build_time,omitempty"`
}

// GeoTables describes the geo tables the snapshot reads.
func (s *Snapshot) GeoTables() GeoTablesInfo {
	var out GeoTablesInfo
	if t := s.geo.tables; t != nil {
		out.MergeBudget = t.budget
		t.mu.Lock()
		out.Evicted = t.evicted
		t.mu.Unlock()
	}
	lt := s.geo.lt
	if lt == nil {
		return out
	}
	out.Location = &LocationTableInfo{Locations: len(lt.locs), IntervalsV4: len(lt.v4start), IntervalsV6: len(lt.v6hi),
		Bytes: lt.bytes(), Networks: lt.networks, BuildTime: lt.buildTime}
	index := map[*partition]int{}
	var entries []*partEntry // the snapshot's partitions with its users, by index
	for _, v := range s.services {
		g := v.geo
		if g == nil || g.part == nil {
			continue
		}
		i, ok := index[g.part]
		if !ok {
			i = len(out.Partitions)
			index[g.part] = i
			entries = append(entries, &partEntry{p: g.part, m: g.merge})
			pi := PartitionInfo{Groups: g.part.groups, Bytes: g.part.bytes()}
			if m := g.merge; m != nil {
				pi.Merged, pi.RunsV4, pi.RunsV6, pi.BuildTime = true, m.runs4, m.runs6, m.buildTime
				pi.Bytes += m.bytes()
				out.Merged++
				out.MergeBytes += int64(m.bytes())
			}
			out.Partitions = append(out.Partitions, pi)
		}
		entries[i].users++
		if g.merge != nil {
			out.MergedServices++
		} else {
			out.UnmergedServices++
		}
		out.Partitions[i].Services = append(out.Partitions[i].Services, v.name)
	}
	out.Pending, out.OverBudget = pendingMerges(entries, out.MergeBytes, int64(mergeBytes(lt)), out.MergeBudget)
	slices.SortStableFunc(out.Partitions, func(a, b PartitionInfo) int {
		if c := cmp.Compare(len(b.Services), len(a.Services)); c != 0 {
			return c
		}
		return cmp.Compare(a.Services[0], b.Services[0])
	})
	return out
}

// pendingMerges plays nextMergeLocked's policy forward over the
// partitions es (users counted, m set when merged) from the merges'
// bytes: how many without a merge will get one, and how many will not.
func pendingMerges(es []*partEntry, bytes, need, budget int64) (pending, over int) {
	var todo, done []*partEntry
	for _, e := range es {
		if e.m == nil {
			todo = append(todo, e)
		} else {
			done = append(done, e)
		}
	}
	order := func(a, b *partEntry) int {
		switch {
		case a == b:
			return 0
		case a.before(b):
			return -1
		}
		return 1
	}
	slices.SortFunc(todo, order)
	slices.SortFunc(done, order)
	for i, e := range todo {
		switch n := len(done); {
		case bytes+need <= budget:
			bytes += need
		case n > 0 && e.users > done[n-1].users && bytes-int64(done[n-1].m.bytes())+need <= budget:
			bytes -= int64(done[n-1].m.bytes()) - need
			done = done[:n-1]
		default:
			return i, len(todo) - i
		}
		pending++
	}
	return pending, 0
}
