package api

import (
	"context"
	"sync"
	"time"

	"github.com/meridian-gslb/meridian/regions"
)

// Continent counters are indexed like the DNS server's: 0 is a client
// whose continent is not known, i+1 is regions.Continents[i].
const numContinentSlots = regions.NumContinents + 1

// AnswerReading is the server's answer counters read at one moment, each
// counting since the server started: by region, the steered answers by
// the client's continent (ContinentNames' order); by service, its answers.
type AnswerReading struct {
	Regions  map[string][numContinentSlots]uint64
	Services map[string]uint64
}

// ContinentNames name the continent slots of AnswerReading.Regions.
var ContinentNames = func() (l [numContinentSlots]string) {
	l[0] = "unknown"
	copy(l[1:], regions.Continents[:])
	return l
}()

// The traffic history's bounds: an hour of seconds, and at most
// TrafficMaxSeries regions and as many services charted, so that its
// memory is fixed (4 bytes a second a series: 14 KiB a series, 7 MiB for
// the lot). Series past the cap are counted in TrafficUpdate.Dropped.
const (
	TrafficSeconds   = 3600
	TrafficMaxSeries = 256
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
}

// series is one name's answers per second: slot s%TrafficSeconds holds
// second s when stamp says so (older stamps read as 0).
type series struct {
	counts [TrafficSeconds]uint32
	stamps [TrafficSeconds]int64
}

func (s *series) set(sec int64, n uint64) {
	i := sec % TrafficSeconds
	s.counts[i] = uint32(min(n, 1<<32-1))
	s.stamps[i] = sec
}

func (s *series) get(sec int64) uint32 {
	i := sec % TrafficSeconds
	if s.stamps[i] != sec {
		return 0
	}
	return s.counts[i]
}

type timedReading struct {
	at time.Time
	r  AnswerReading
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
	regions  map[string]*series
	services map[string]*series
	dropped  int
	readings [readingsKept]timedReading
	nread    int
	lines    map[string]map[string]uint64
	states   map[string]string
	marks    []Mark // the newest maxMarks, oldest first
	markSeq  uint64
	snap     *regions.Snapshot
	tick     chan struct{} // closed at the next tick
}

// NewTraffic reads answer counters with read and the regions' states from
// snapshot (either may return nothing yet).
func NewTraffic(read func() AnswerReading, snapshot func() *regions.Snapshot) *Traffic {
	return &Traffic{read: read, snapshot: snapshot, now: time.Now,
		regions: map[string]*series{}, services: map[string]*series{}, tick: make(chan struct{})}
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
		t.regions = storeSecond(t.regions, t.curSec, r.Regions, t.base.Regions, sumContinents, &t.dropped)
		t.services = storeSecond(t.services, t.curSec, r.Services, t.base.Services, func(v uint64) uint64 { return v }, &t.dropped)
		t.base, t.curSec = r, sec
	}
	t.readings[t.nread%readingsKept] = timedReading{at: now, r: r}
	t.nread++
	t.lines = t.linesOf(now, r)
}

func sumContinents(c [numContinentSlots]uint64) uint64 {
	var s uint64
	for _, v := range c {
		s += v
	}
	return s
}

// storeSecond records second sec of every name: the difference between now's
// and base's counters (a counter that went back, a name removed and
// added again, counts from zero). Names gone are forgotten; names past
// the cap are counted in dropped.
func storeSecond[V any](all map[string]*series, sec int64, now, base map[string]V, total func(V) uint64, dropped *int) map[string]*series {
	for name := range all {
		if _, ok := now[name]; !ok {
			delete(all, name)
		}
	}
	for name, v := range now {
		s := all[name]
		if s == nil {
			if len(all) >= TrafficMaxSeries {
				*dropped++
				continue
			}
			s = new(series)
			all[name] = s
		}
		n, b := total(v), uint64(0)
		if bv, ok := base[name]; ok {
			b = total(bv)
		}
		if n >= b {
			n -= b
		}
		s.set(sec, n)
	}
	return all
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
		prev := old.r.Regions[region]
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
	if snap == nil || snap == t.snap {
		return
	}
	t.snap = snap
	next := map[string]string{}
	for _, rs := range snap.Regions() {
		next[rs.Name] = healthState(rs)
	}
	if t.states != nil {
		for name, to := range next {
			if from, ok := t.states[name]; ok && from != to {
				t.mark(Mark{Time: now, Region: name, From: from, To: to})
			} else if !ok {
				t.mark(Mark{Time: now, Region: name, From: "absent", To: to})
			}
		}
		for name, from := range t.states {
			if _, ok := next[name]; !ok {
				t.mark(Mark{Time: now, Region: name, From: from, To: "absent"})
			}
		}
	}
	t.states = next
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

// healthState is a region's state for the dashboard and its marks:
// drained, down, unknown (no counted vote), degraded (answered, but some
// of its VIPs are not), else up.
func healthState(rs regions.RegionStatus) string {
	switch {
	case rs.Drained:
		return "drained"
	case rs.Status == regions.HealthDown:
		return "down"
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
	// of every service).
	Services map[string][]uint32 `json:"services"`
	// Lines holds, by client continent, the answers of each region over
	// the last second; LineWindow is that window in seconds.
	Lines      map[string]map[string]uint64 `json:"lines"`
	LineWindow float64                      `json:"line_window"`
	Marks      []Mark                       `json:"marks"`
	// Dropped counts the regions and services not charted (over
	// TrafficMaxSeries).
	Dropped int `json:"dropped"`
}

// Since returns the whole seconds after second after (0: all kept) and
// the marks after mark sequence number afterMark.
func (t *Traffic) Since(after int64, afterMark uint64) TrafficUpdate {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := TrafficUpdate{Regions: map[string][]uint32{}, Services: map[string][]uint32{}, Lines: t.lines,
		LineWindow: lineWindow.Seconds(), Dropped: t.dropped, Marks: []Mark{}}
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
	for name, s := range t.regions {
		u.Regions[name] = s.values(first, last)
	}
	for name, s := range t.services {
		u.Services[name] = s.values(first, last)
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
