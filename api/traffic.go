package api

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/meridian-gslb/meridian/regions"
)

// Continent counters are indexed like the DNS server's: 0 is a client
// whose continent is not known, i+1 is regions.Continents[i].
const numContinentSlots = regions.NumContinents + 1

// AnswerReading is the server's answer counters read at one moment, each
// counting since the server started: by region, the steered answers by
// the client's continent (ContinentNames' order); by service, its answers;
// by service and region, the service's answers from the region (a
// region with none may be left out).
type AnswerReading struct {
	Regions  map[string][numContinentSlots]uint64
	Services map[string]uint64
	Pairs    map[string]map[string]uint64
}

// ContinentNames name the continent slots of AnswerReading.Regions.
var ContinentNames = func() (l [numContinentSlots]string) {
	l[0] = "unknown"
	copy(l[1:], regions.Continents[:])
	return l
}()

// The traffic history's bounds: an hour of seconds, at most
// TrafficMaxSeries regions, and at most TrafficMaxServiceSeries series of
// services and of a service's regions, kept only while they answer
// (made at a first answer, forgotten after an hour without one), so that
// its memory is bounded whatever the number of services: 4 bytes a
// second, 14,400 bytes a series (SeriesBytes), 18.4 MB for the 1,280
// series at most. Series past a cap are counted in TrafficUpdate.Dropped.
const (
	TrafficSeconds          = 3600
	TrafficMaxSeries        = 256
	TrafficMaxServiceSeries = 1024
	// trafficTick is how often the counters are read: the map's lines
	// follow the answers of the last lineWindow, refreshed each tick.
	trafficTick = 250 * time.Millisecond
	lineWindow  = time.Second
	// maxMarks bounds the state changes kept for the timeline.
	maxMarks = 512
)

// readingsKept is how many readings the line window needs, with one to
// spare: the oldest is at least lineWindow old once the ring is full.
const readingsKept = int(lineWindow/trafficTick) + 2

// Mark is a region's change of state, marked on the traffic timeline.
type Mark struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Region string    `json:"region"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	// Note says which shifts start or end when the change is to or
	// from shifted.
	Note string `json:"note,omitempty"`
}

// series is one name's answers per second: slot s%TrafficSeconds holds
// second s for the hour up to last; the seconds skipped by a set are
// zeroed, so a series needs no time stamp per slot.
type series struct {
	counts [TrafficSeconds]uint32
	last   int64 // the last second set (0: none)
	busy   int64 // the last second with an answer
}

// SeriesBytes is the memory of one series of the traffic history.
const SeriesBytes = TrafficSeconds * 4

// set records n answers in second sec, later than any set before.
func (s *series) set(sec int64, n uint64) {
	if s.last != 0 {
		for x := max(s.last+1, sec-TrafficSeconds+1); x < sec; x++ {
			s.counts[x%TrafficSeconds] = 0
		}
	}
	s.counts[sec%TrafficSeconds] = uint32(min(n, 1<<32-1))
	s.last = sec
	if n > 0 {
		s.busy = sec
	}
}

func (s *series) get(sec int64) uint32 {
	if sec > s.last || sec <= s.last-TrafficSeconds {
		return 0
	}
	return s.counts[sec%TrafficSeconds]
}

// seriesSet holds named series under a cap shared with other sets.
// Dense sets (regions) have a series for every name read, forgotten
// when the name is gone; sparse ones (services, a service's regions)
// one for a name from its first answer, forgotten after TrafficSeconds
// without one.
type seriesSet struct {
	m      map[string]*series
	sparse bool
	made   *int // series made under the cap
	cap    int
}

// forget drops the series whose time is over at second sec: a dense
// set's names that now has not, a sparse set's without an answer for
// an hour.
func (ss *seriesSet) forget(sec int64, now map[string]uint64) {
	for name, s := range ss.m {
		_, ok := now[name]
		if (!ss.sparse && !ok) || (ss.sparse && sec-s.busy >= TrafficSeconds) {
			delete(ss.m, name)
			*ss.made--
		}
	}
}

// store records second sec of every name: the difference between now's
// and base's counters (a counter that went back, a name removed and
// added again, counts from zero; a name a sparse reading leaves out
// answered nothing). Names past the cap are counted in dropped. The
// sets sharing the cap have forgotten their old series first.
func (ss *seriesSet) store(sec int64, now, base map[string]uint64, dropped *int) {
	for name, s := range ss.m {
		if _, ok := now[name]; !ok {
			s.set(sec, 0)
		}
	}
	var fresh []namedCount
	room := ss.cap - *ss.made
	for name, n := range now {
		if b, ok := base[name]; ok && n >= b {
			n -= b
		}
		switch s := ss.m[name]; {
		case s != nil:
			s.set(sec, n)
		case ss.sparse && n == 0:
		case room <= 0:
			*dropped++ // at the cap: nothing to choose, nothing to keep
		default:
			fresh = append(fresh, namedCount{name, n})
		}
	}
	// New names past the cap: the busiest get the room left, then the
	// first by name, so that which ones are charted does not depend on
	// the map's order.
	if len(fresh) > room {
		slices.SortFunc(fresh, func(a, b namedCount) int {
			return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.name, b.name))
		})
		*dropped += len(fresh) - room
		fresh = fresh[:room]
	}
	for _, f := range fresh {
		s := new(series)
		s.set(sec, f.n)
		ss.m[f.name] = s
		*ss.made++
	}
}

type namedCount struct {
	name string
	n    uint64
}

// values are the series' values from second first to last.
func (ss *seriesSet) values(first, last int64) map[string][]uint32 {
	out := make(map[string][]uint32, len(ss.m))
	for name, s := range ss.m {
		out[name] = s.values(first, last)
	}
	return out
}

// timedReading is a reading of the regions' counters kept for the
// map's lines (only those: the services' would cost a map each).
type timedReading struct {
	at      time.Time
	regions map[string][numContinentSlots]uint64
}

// Traffic keeps the server's own view of where answers go, for the
// dashboard: the answers of every region and service per second for the
// last hour, the share of each client continent's answers by region over
// the last second (the map's lines), and the regions' changes of state.
// It reads the DNS server's counters every 250 ms (Run); nothing on the
// query path waits for it.
type Traffic struct {
	read     func() AnswerReading
	snapshot func() *regions.Snapshot
	now      func() time.Time

	mu       sync.Mutex
	started  bool
	firstSec int64 // the first whole second recorded
	curSec   int64 // the second being counted
	base     AnswerReading
	regions  seriesSet
	services seriesSet
	// pairs holds each service's series by region, under the services' cap.
	pairs    map[string]*seriesSet
	nRegions int // series made of regions
	nService int // series made of services and their regions
	// serviceCap is TrafficMaxServiceSeries (a test makes it smaller).
	serviceCap int
	dropped    int
	readings   [readingsKept]timedReading
	nread      int
	lines      map[string]map[string]uint64
	states     map[string]string
	marks      []Mark // the newest maxMarks, oldest first
	markSeq    uint64
	// snap is the last snapshot seen, held weakly: only to know it again.
	// What a region change refreshed (about 8 MB at 10,000 services) is
	// then freed once the server serves the next snapshot, not a tick
	// later: during a burst of changes, one generation less is alive.
	snap weak.Pointer[regions.Snapshot]
	// shiftsOf are the active shifts of each shifted region in snap.
	shiftsOf map[string][]string
	tick     chan struct{} // closed at the next tick
}

// NewTraffic reads answer counters with read and the regions' states from
// snapshot (either may return nothing yet).
func NewTraffic(read func() AnswerReading, snapshot func() *regions.Snapshot) *Traffic {
	t := &Traffic{read: read, snapshot: snapshot, now: time.Now, pairs: map[string]*seriesSet{}, serviceCap: TrafficMaxServiceSeries, tick: make(chan struct{})}
	t.regions = seriesSet{m: map[string]*series{}, made: &t.nRegions, cap: TrafficMaxSeries}
	t.services = seriesSet{m: map[string]*series{}, sparse: true, made: &t.nService, cap: t.serviceCap}
	return t
}

// Run reads the counters every 250 ms until ctx ends.
func (t *Traffic) Run(ctx context.Context) error {
	tk := time.NewTicker(trafficTick)
	defer tk.Stop()
	t.sample()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			t.sample()
		}
	}
}

// Tick returns a channel closed at the next reading.
func (t *Traffic) Tick() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tick
}

// sample reads the counters and the snapshot once.
func (t *Traffic) sample() {
	r := t.read()
	snap := t.snapshot()
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.record(now, r)
	t.noteStates(now, snap)
	close(t.tick)
	t.tick = make(chan struct{})
}

// record adds a reading taken at now.
func (t *Traffic) record(now time.Time, r AnswerReading) {
	sec := now.Unix()
	if !t.started {
		t.started, t.firstSec, t.curSec, t.base = true, sec+1, sec, r
	}
	if sec > t.curSec {
		// The second being counted is complete; a late tick gives it the
		// answers up to now, and the seconds skipped read as 0.
		t.dropped = 0
		regionsNow := regionTotals(r.Regions)
		t.regions.forget(t.curSec, regionsNow)
		t.regions.store(t.curSec, regionsNow, regionTotals(t.base.Regions), &t.dropped)
		// Services and their regions share a cap: every set forgets its
		// old series before any makes a new one.
		t.services.forget(t.curSec, r.Services)
		for name, ss := range t.pairs {
			ss.forget(t.curSec, r.Pairs[name])
		}
		t.services.store(t.curSec, r.Services, t.base.Services, &t.dropped)
		for name, byRegion := range r.Pairs {
			if t.pairs[name] == nil {
				t.pairs[name] = &seriesSet{m: map[string]*series{}, sparse: true, made: &t.nService, cap: t.serviceCap}
			}
			t.pairs[name].store(t.curSec, byRegion, t.base.Pairs[name], &t.dropped)
		}
		for name, ss := range t.pairs {
			if _, ok := r.Pairs[name]; !ok {
				ss.store(t.curSec, nil, nil, &t.dropped)
			}
			if len(ss.m) == 0 {
				delete(t.pairs, name)
			}
		}
		t.base, t.curSec = r, sec
	}
	t.readings[t.nread%readingsKept] = timedReading{at: now, regions: r.Regions}
	t.nread++
	t.lines = t.linesOf(now, r)
}

// regionTotals are the regions' answers, every continent together.
func regionTotals(by map[string][numContinentSlots]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(by))
	for name, c := range by {
		var s uint64
		for _, v := range c {
			s += v
		}
		out[name] = s
	}
	return out
}

// linesOf is, by client continent, the answers of each region since the
// reading lineWindow before now (or the oldest one kept).
func (t *Traffic) linesOf(now time.Time, r AnswerReading) map[string]map[string]uint64 {
	var old *timedReading
	for i := range min(t.nread, readingsKept) {
		c := &t.readings[i]
		if now.Sub(c.at) >= lineWindow && (old == nil || c.at.After(old.at)) {
			old = c
		}
	}
	if old == nil {
		// Less than a window since the start: the oldest reading.
		for i := range min(t.nread, readingsKept) {
			if c := &t.readings[i]; old == nil || c.at.Before(old.at) {
				old = c
			}
		}
	}
	out := map[string]map[string]uint64{}
	for region, by := range r.Regions {
		prev := old.regions[region]
		for i, n := range by {
			if n <= prev[i] {
				continue
			}
			c := ContinentNames[i]
			if out[c] == nil {
				out[c] = map[string]uint64{}
			}
			out[c][region] = n - prev[i]
		}
	}
	return out
}

// noteStates marks the regions whose state changed since the last
// snapshot seen.
func (t *Traffic) noteStates(now time.Time, snap *regions.Snapshot) {
	wp := weak.Make(snap)
	if snap == nil || wp == t.snap {
		return
	}
	t.snap = wp
	shifts := activeShifts(snap)
	next := map[string]string{}
	for _, rs := range snap.Regions() {
		next[rs.Name] = regionState(rs, len(shifts[rs.Name]) > 0)
	}
	if t.states != nil {
		for _, name := range slices.Sorted(maps.Keys(next)) {
			to := next[name]
			from, ok := t.states[name]
			if !ok {
				from = "absent"
			}
			if from != to {
				t.mark(Mark{Time: now, Region: name, From: from, To: to, Note: t.shiftNote(snap, name, from, to, shifts[name])})
			}
		}
		for name, from := range t.states {
			if _, ok := next[name]; !ok {
				t.mark(Mark{Time: now, Region: name, From: from, To: "absent"})
			}
		}
	}
	t.states, t.shiftsOf = next, shifts
}

// activeShifts are, by region, the ids of the shifts that set its weight
// in snap (a drain of it, or a weight for it) and apply now.
func activeShifts(snap *regions.Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(snap.State().Shifts)) {
		sh := snap.State().Shifts[id]
		if sh == nil {
			continue
		}
		if st, _ := snap.ShiftState(sh); st != regions.ShiftActive {
			continue
		}
		if sh.Drain != "" {
			out[sh.Drain] = append(out[sh.Drain], id)
		}
		for _, r := range slices.Sorted(maps.Keys(sh.Weights)) {
			if r != sh.Drain {
				out[r] = append(out[r], id)
			}
		}
	}
	return out
}

// shiftNote says, for a change to shifted, which shifts start and until
// when; for a change from shifted, how the shifts held before ended.
func (t *Traffic) shiftNote(snap *regions.Snapshot, region, from, to string, active []string) string {
	var parts []string
	switch {
	case to == "shifted":
		for _, id := range active {
			sh := snap.State().Shifts[id]
			parts = append(parts, "shift "+id+": "+sh.Describe()+" until "+sh.Expires.UTC().Format(time.RFC3339))
		}
	case from == "shifted":
		for _, id := range t.shiftsOf[region] {
			how := "removed"
			if sh := snap.State().Shifts[id]; sh != nil {
				st, why := snap.ShiftState(sh)
				how = string(st)
				if why != "" {
					how += " (" + why + ")"
				}
			}
			parts = append(parts, "shift "+id+" "+how)
		}
	}
	return strings.Join(parts, "; ")
}

func (t *Traffic) mark(m Mark) {
	t.markSeq++
	m.Seq = t.markSeq
	if len(t.marks) == maxMarks {
		copy(t.marks, t.marks[1:])
		t.marks = t.marks[:maxMarks-1]
	}
	t.marks = append(t.marks, m)
}

// regionState is a region's state for the dashboard and its marks, the
// first that holds of: drained, down, shifted (an active shift sets its
// weight: an operator's doing, like a drain), unknown (no counted vote),
// degraded (answered, but some of its VIPs are not), up. The page's
// regionState (ui/app.js) decides the same way.
func regionState(rs regions.RegionStatus, shifted bool) string {
	switch {
	case rs.Drained:
		return "drained"
	case rs.Status == regions.HealthDown:
		return "down"
	case shifted:
		return "shifted"
	case rs.Status == regions.HealthUnknown:
		return "unknown"
	case rs.Healthy < len(rs.VIPs):
		return "degraded"
	}
	return "up"
}

// TrafficUpdate is what the dashboard receives of the traffic: whole
// seconds of answers from Start on (one value a second, each series as
// long as Seconds), the map's lines, and the state changes after the
// ones it had.
type TrafficUpdate struct {
	// Start is the Unix second of each series' first value.
	Start   int64               `json:"start"`
	Seconds int                 `json:"seconds"`
	Regions map[string][]uint32 `json:"regions"`
	// Services holds each service's answers (regions count the answers
	// of every service): of every service charted, or of the one asked
	// for (Service).
	Services map[string][]uint32 `json:"services"`
	// Service is the service asked for, "" for none; ServiceRegions its
	// answers by region (the regions with an answer in the last hour).
	Service        string              `json:"service,omitempty"`
	ServiceRegions map[string][]uint32 `json:"service_regions,omitempty"`
	// Lines holds, by client continent, the answers of each region over
	// the last second; LineWindow is that window in seconds.
	Lines      map[string]map[string]uint64 `json:"lines"`
	LineWindow float64                      `json:"line_window"`
	Marks      []Mark                       `json:"marks"`
	// Dropped counts the series not charted in the last second, over
	// TrafficMaxSeries (regions) or TrafficMaxServiceSeries (services
	// and their regions).
	Dropped int `json:"dropped"`
}

// Since returns the whole seconds after second after (0: all kept) and
// the marks after mark sequence number afterMark; with service, that
// service's answers, in all and by region, instead of every service's.
func (t *Traffic) Since(after int64, afterMark uint64, service string) TrafficUpdate {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := TrafficUpdate{Regions: map[string][]uint32{}, Services: map[string][]uint32{}, Lines: t.lines,
		LineWindow: lineWindow.Seconds(), Dropped: t.dropped, Marks: []Mark{}, Service: service}
	if service != "" {
		u.ServiceRegions = map[string][]uint32{}
	}
	if u.Lines == nil {
		u.Lines = map[string]map[string]uint64{}
	}
	for _, m := range t.marks {
		if m.Seq > afterMark {
			u.Marks = append(u.Marks, m)
		}
	}
	if !t.started {
		return u
	}
	last := t.curSec - 1 // the last whole second
	first := max(after+1, t.firstSec, last-TrafficSeconds+1)
	u.Start = first
	if first > last {
		return u
	}
	u.Seconds = int(last - first + 1)
	u.Regions = t.regions.values(first, last)
	switch {
	case service == "":
		u.Services = t.services.values(first, last)
	default:
		if s := t.services.m[service]; s != nil {
			u.Services[service] = s.values(first, last)
		}
		if ss := t.pairs[service]; ss != nil {
			u.ServiceRegions = ss.values(first, last)
		}
	}
	return u
}

func (s *series) values(first, last int64) []uint32 {
	out := make([]uint32, 0, last-first+1)
	for sec := first; sec <= last; sec++ {
		out = append(out, s.get(sec))
	}
	return out
}

// LastMark is the sequence number of the newest mark.
func (t *Traffic) LastMark() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.markSeq
}
