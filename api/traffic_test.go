package api

import (
	"fmt"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meridian-gslb/meridian/regions"
)

// fakeCounters are answer counters a test moves by hand, read by a
// Traffic whose clock the test sets.
type fakeCounters struct {
	r   AnswerReading
	now time.Time
}

func newFakeTraffic(snap func() *regions.Snapshot) (*Traffic, *fakeCounters) {
	fc := &fakeCounters{r: AnswerReading{Regions: map[string][numContinentSlots]uint64{}, Services: map[string]uint64{}}}
	if snap == nil {
		snap = func() *regions.Snapshot { return nil }
	}
	tr := NewTraffic(func() AnswerReading {
		// A copy: the Traffic keeps readings.
		out := AnswerReading{Regions: map[string][numContinentSlots]uint64{}, Services: map[string]uint64{}}
		for k, v := range fc.r.Regions {
			out.Regions[k] = v
		}
		for k, v := range fc.r.Services {
			out.Services[k] = v
		}
		for k, v := range fc.r.Pairs {
			if out.Pairs == nil {
				out.Pairs = map[string]map[string]uint64{}
			}
			out.Pairs[k] = maps.Clone(v)
		}
		return out
	}, snap)
	tr.now = func() time.Time { return fc.now }
	return tr, fc
}

// add counts n answers of region for clients of continent slot c.
func (fc *fakeCounters) add(region string, c int, n uint64) {
	v := fc.r.Regions[region]
	v[c] += n
	fc.r.Regions[region] = v
}

// answer counts n answers of service from region.
func (fc *fakeCounters) answer(service, region string, n uint64) {
	if fc.r.Pairs == nil {
		fc.r.Pairs = map[string]map[string]uint64{}
	}
	if fc.r.Pairs[service] == nil {
		fc.r.Pairs[service] = map[string]uint64{}
	}
	fc.r.Pairs[service][region] += n
	fc.r.Services[service] += n
}

var t0 = time.Unix(1_000_000, 300_000_000) // a reading in the middle of a second

func TestTrafficSeconds(t *testing.T) {
	eu := 1 + slices.Index(regions.Continents[:], "EU")
	na := 1 + slices.Index(regions.Continents[:], "NA")
	tr, fc := newFakeTraffic(nil)
	at := func(d time.Duration) { fc.now = t0.Add(d); tr.sample() }

	at(0) // the start: the rest of this second is not a whole one
	fc.add("eu", eu, 5)
	fc.r.Services["www."] = 5
	at(700 * time.Millisecond) // second 1,000,001 starts
	fc.add("eu", eu, 7)
	fc.add("na", na, 3)
	fc.r.Services["www."] = 15
	at(time.Second)
	at(1700 * time.Millisecond) // second 1,000,001 is whole
	// Three seconds without a tick: a late reading gives the second it
	// completes everything since, the others read 0.
	fc.add("eu", eu, 4)
	fc.r.Services["www."] = 19
	at(4700 * time.Millisecond)
	at(5700 * time.Millisecond)

	u := tr.Since(0, 0, "")
	if u.Start != 1_000_001 || u.Seconds != 5 {
		t.Fatalf("start %d, %d seconds; want 1000001 and 5", u.Start, u.Seconds)
	}
	want := map[string][]uint32{"eu": {7, 4, 0, 0, 0}, "na": {3, 0, 0, 0, 0}}
	for name, w := range want {
		if !slices.Equal(u.Regions[name], w) {
			t.Errorf("%s: %v, want %v", name, u.Regions[name], w)
		}
	}
	if got := u.Services["www."]; !slices.Equal(got, []uint32{10, 4, 0, 0, 0}) {
		t.Errorf("service: %v, want [10 4 0 0 0]", got)
	}
	// Since the last second seen: nothing new.
	if u := tr.Since(1_000_005, 0, ""); u.Seconds != 0 || len(u.Regions["eu"]) != 0 {
		t.Errorf("since the last second: %d seconds %v", u.Seconds, u.Regions)
	}
	if u := tr.Since(1_000_003, 0, ""); u.Start != 1_000_004 || !slices.Equal(u.Regions["eu"], []uint32{0, 0}) {
		t.Errorf("since 1000003: start %d, %v", u.Start, u.Regions["eu"])
	}

	// A counter that went back (a region removed and added again) counts
	// from zero; a region gone is forgotten.
	var reset [numContinentSlots]uint64
	reset[eu] = 2
	fc.r.Regions["eu"] = reset
	delete(fc.r.Regions, "na")
	at(6700 * time.Millisecond)
	u = tr.Since(1_000_005, 0, "")
	if !slices.Equal(u.Regions["eu"], []uint32{2}) || u.Regions["na"] != nil {
		t.Errorf("after a reset: %v", u.Regions)
	}
}

func TestTrafficHourAndCap(t *testing.T) {
	tr, fc := newFakeTraffic(nil)
	for i := range TrafficMaxSeries + 3 {
		fc.add(fmt.Sprintf("r%03d", i), 0, 0)
		// Services that never answer are not charted.
		fc.r.Services[fmt.Sprintf("s%03d.", i)] = 0
	}
	fc.add("eu", 0, 0)
	for s := range TrafficSeconds + 100 {
		fc.now = t0.Add(time.Duration(s) * time.Second)
		fc.add("eu", 0, uint64(s%7))
		tr.sample()
	}
	u := tr.Since(0, 0, "")
	if u.Seconds != TrafficSeconds || len(u.Regions["eu"]) != TrafficSeconds {
		t.Fatalf("%d seconds (%d values), want %d", u.Seconds, len(u.Regions["eu"]), TrafficSeconds)
	}
	// The value of second s is what was added at the reading that
	// completed it: s+1 after t0's second.
	last := u.Start + int64(u.Seconds) - 1
	for i, v := range u.Regions["eu"] {
		sec := u.Start + int64(i)
		if want := uint32((sec - t0.Unix() + 1) % 7); v != want {
			t.Fatalf("second %d (last %d): %d, want %d", sec, last, v, want)
		}
	}
	if len(u.Regions) != TrafficMaxSeries || len(u.Services) != 0 || u.Dropped != 4 {
		t.Errorf("%d regions and %d services charted, %d dropped; want %d, 0 and 4", len(u.Regions), len(u.Services), u.Dropped, TrafficMaxSeries)
	}
}

// TestTrafficByService: a service's answers by region, per second, as
// the stream asks for one service; every service's totals otherwise.
func TestTrafficByService(t *testing.T) {
	tr, fc := newFakeTraffic(nil)
	at := func(d time.Duration) { fc.now = t0.Add(d); tr.sample() }
	at(0)
	fc.answer("www.example.", "eu", 3) // before the first whole second: not counted
	at(700 * time.Millisecond)
	fc.answer("www.example.", "eu", 5)
	fc.answer("www.example.", "na", 2)
	fc.answer("api.example.", "na", 7)
	at(1700 * time.Millisecond)
	fc.answer("www.example.", "na", 1)
	fc.r.Services["www.example."]++ // an answer from no region (fallback addresses)
	at(2700 * time.Millisecond)
	at(3700 * time.Millisecond)

	for _, tc := range []struct {
		service  string
		services map[string][]uint32
		regions  map[string][]uint32
	}{
		{"", map[string][]uint32{"www.example.": {7, 2, 0}, "api.example.": {7, 0, 0}}, nil},
		{"www.example.", map[string][]uint32{"www.example.": {7, 2, 0}}, map[string][]uint32{"eu": {5, 0, 0}, "na": {2, 1, 0}}},
		{"api.example.", map[string][]uint32{"api.example.": {7, 0, 0}}, map[string][]uint32{"na": {7, 0, 0}}},
		{"none.example.", map[string][]uint32{}, map[string][]uint32{}},
	} {
		name := tc.service
		if name == "" {
			name = "every service"
		}
		t.Run(name, func(t *testing.T) {
			u := tr.Since(0, 0, tc.service)
			if u.Start != 1_000_001 || u.Seconds != 3 {
				t.Fatalf("start %d, %d seconds; want 1000001 and 3", u.Start, u.Seconds)
			}
			if d := cmp.Diff(tc.services, u.Services); d != "" {
				t.Errorf("services (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.regions, u.ServiceRegions); d != "" {
				t.Errorf("the service's regions (-want +got):\n%s", d)
			}
		})
	}
	// The seconds after one seen: the service's regions follow too.
	if u := tr.Since(1_000_002, 0, "www.example."); !slices.Equal(u.ServiceRegions["na"], []uint32{0}) || u.Start != 1_000_003 {
		t.Errorf("since 1000002: start %d, %v", u.Start, u.ServiceRegions)
	}
}

// TestTrafficServiceBound: with 10,000 services answering from two
// regions each, the history holds at most TrafficMaxServiceSeries
// series of services and their regions and counts the others as
// dropped; its memory stays within the documented bound.
func TestTrafficServiceBound(t *testing.T) {
	const services = 10_000
	tr, fc := newFakeTraffic(nil)
	names := make([]string, services)
	for i := range names {
		names[i] = fmt.Sprintf("s%05d.example.", i)
		fc.answer(names[i], "eu", 0)
		fc.answer(names[i], "na", 0)
	}
	// Measured once the counters exist: what grows is the history's.
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for s := range 5 {
		for i, name := range names {
			fc.answer(name, "eu", 1)
			fc.answer(name, "na", uint64(i%2))
		}
		fc.add("eu", 0, services)
		fc.now = t0.Add(time.Duration(s) * time.Second)
		tr.sample()
	}
	u := tr.Since(0, 0, "")
	charted := len(u.Services)
	for name := range u.Services {
		charted += len(tr.Since(0, 0, name).ServiceRegions)
	}
	// Each second: a total per service, eu for each, na for half.
	wantDropped := services*2 + services/2 - TrafficMaxServiceSeries
	if charted != TrafficMaxServiceSeries || tr.nService != TrafficMaxServiceSeries || u.Dropped != wantDropped {
		t.Errorf("%d series charted (%d made), %d dropped; want %d and %d dropped", charted, tr.nService, u.Dropped, TrafficMaxServiceSeries, wantDropped)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The history's series, and the reading it keeps to subtract from
	// the next one, with the 10,000 services' counters (a few MB of
	// maps).
	bound := uint64((TrafficMaxSeries+TrafficMaxServiceSeries)*SeriesBytes) + 8<<20
	grown := after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	t.Logf("heap grown by %.1f MB with %d services answering (bound %.1f MB)", float64(grown)/1e6, services, float64(bound)/1e6)
	if grown > bound {
		t.Errorf("the heap grew by %d bytes, over the bound of %d", grown, bound)
	}
	runtime.KeepAlive(tr)
}

// TestTrafficServiceIdle: a service's series are made at its first
// answer and forgotten an hour after its last, which makes room under
// the cap for a service that answers now.
func TestTrafficServiceIdle(t *testing.T) {
	tr, fc := newFakeTraffic(nil)
	tr.serviceCap, tr.services.cap = 4, 4
	sec := 0
	tick := func(n int) {
		for range n {
			fc.now = t0.Add(time.Duration(sec) * time.Second)
			tr.sample()
			sec++
		}
	}
	tick(1)
	fc.answer("old.example.", "eu", 1) // a total and one region
	fc.answer("busy.example.", "eu", 1)
	tick(2)
	if tr.nService != 4 {
		t.Fatalf("%d series made, want 4", tr.nService)
	}
	// busy keeps answering; new starts: no room.
	for range TrafficSeconds - 2 {
		fc.answer("busy.example.", "eu", 1)
		fc.answer("new.example.", "na", 1)
		tick(1)
	}
	if u := tr.Since(0, 0, ""); u.Services["new.example."] != nil || u.Dropped != 2 || u.Services["old.example."] == nil {
		t.Fatalf("an hour less a second after old's last answer: services %v, %d dropped", slices.Sorted(maps.Keys(u.Services)), u.Dropped)
	}
	// An hour after old's last answer it is forgotten, and new is charted
	// from its next answer.
	fc.answer("busy.example.", "eu", 1)
	fc.answer("new.example.", "na", 1)
	tick(2)
	u := tr.Since(0, 0, "")
	if got := slices.Sorted(maps.Keys(u.Services)); !slices.Equal(got, []string{"busy.example.", "new.example."}) || u.Dropped != 0 {
		t.Errorf("services charted %v, %d dropped; want busy and new, none dropped", got, u.Dropped)
	}
	if v := tr.Since(0, 0, "new.example.").ServiceRegions["na"]; len(v) == 0 || v[len(v)-1] != 0 || v[len(v)-2] != 1 {
		t.Errorf("new.example.'s na ends %v, want ... 1 0", v[max(0, len(v)-3):])
	}
	if tr.nService != 4 {
		t.Errorf("%d series made, want 4", tr.nService)
	}
}

func TestTrafficLines(t *testing.T) {
	eu := 1 + slices.Index(regions.Continents[:], "EU")
	tr, fc := newFakeTraffic(nil)
	fc.add("eu", eu, 0)
	fc.add("na", eu, 0)
	step := func(d time.Duration, euN, naN uint64) {
		fc.now = fc.now.Add(d)
		fc.add("eu", eu, euN)
		fc.add("na", eu, naN)
		tr.sample()
	}
	fc.now = t0
	tr.sample()
	for range 8 { // two seconds of Europe's answers going to eu
		step(trafficTick, 10, 0)
	}
	if l := tr.Since(0, 0, "").Lines; l["EU"]["eu"] != 40 || l["EU"]["na"] != 0 {
		t.Fatalf("lines: %v, want EU: eu 40 (the last second)", l)
	}
	// The answers move to na: within a second the line follows.
	for range 4 {
		step(trafficTick, 0, 10)
	}
	l := tr.Since(0, 0, "").Lines
	if l["EU"]["eu"] != 0 || l["EU"]["na"] != 40 {
		t.Errorf("a second after the move: %v, want EU: na 40 only", l)
	}
	if tr.Since(0, 0, "").LineWindow != 1 {
		t.Errorf("line window %v, want 1 s", tr.Since(0, 0, "").LineWindow)
	}
}

// sampleEach is a Traffic that has read each snapshot in turn, a
// second apart.
func sampleEach(snaps []*regions.Snapshot) *Traffic {
	i := 0
	tr, fc := newFakeTraffic(func() *regions.Snapshot { return snaps[i] })
	fc.now = t0
	for i = range snaps {
		fc.now = fc.now.Add(time.Second)
		tr.sample()
	}
	return tr
}

func TestTrafficMarks(t *testing.T) {
	build := func(drained bool) *regions.Snapshot {
		st := regions.NewState()
		for name, addr := range map[string]string{"eu": "192.0.2.10", "na": "192.0.2.20"} {
			st.Regions[name] = &regions.Region{Name: name, VIPs: []netip.Addr{netip.MustParseAddr(addr)}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
		}
		st.Regions["eu"].Drained = drained
		return regions.BuildSnapshot(st, nil, regions.SnapshotOptions{})
	}
	snaps := []*regions.Snapshot{build(false), build(false), build(true), build(false)}
	tr := sampleEach(snaps)
	u := tr.Since(0, 0, "")
	var got []string
	for _, m := range u.Marks {
		got = append(got, fmt.Sprintf("%d %s %s→%s", m.Seq, m.Region, m.From, m.To))
	}
	want := []string{"1 eu unknown→drained", "2 eu drained→unknown"}
	if !slices.Equal(got, want) {
		t.Errorf("marks %q, want %q", got, want)
	}
	if u := tr.Since(0, 1, ""); len(u.Marks) != 1 || u.Marks[0].Seq != 2 {
		t.Errorf("marks after 1: %+v", u.Marks)
	}
	if tr.LastMark() != 2 {
		t.Errorf("last mark %d, want 2", tr.LastMark())
	}
}

// TestTrafficShiftMarks: a region whose weight an active shift sets is
// shifted; the shift's start and its expiry are marked on the timeline,
// naming the shift, and a region's own state (drained) comes first.
func TestTrafficShiftMarks(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	expires := start.Add(time.Minute)
	build := func(at time.Time, shift, drained bool) *regions.Snapshot {
		st := regions.NewState()
		for name, addr := range map[string]string{"eu": "192.0.2.10", "na": "192.0.2.20"} {
			st.Regions[name] = &regions.Region{Name: name, VIPs: []netip.Addr{netip.MustParseAddr(addr)}, Check: regions.HealthCheck{Type: "tcp", Port: 443}}
		}
		st.Regions["eu"].Drained = drained
		st.Services["www.example."] = &regions.Service{Name: "www.example.", TTL: 30, Policy: regions.PolicyWeighted,
			Regions: []regions.ServiceRegion{{Region: "eu", Weight: 1}, {Region: "na", Weight: 1}}}
		if shift {
			st.Shifts["move-eu"] = &regions.Shift{ID: "move-eu", Service: "www.example.", Drain: "eu", CreatedBy: "alice", Created: start, Expires: expires}
		}
		return regions.BuildSnapshotAt(st, nil, regions.SnapshotOptions{}, at)
	}
	snaps := []*regions.Snapshot{
		build(start, false, false),
		build(start, true, false),                     // the shift starts
		build(start.Add(30*time.Second), true, true),  // eu drained: drained comes first
		build(start.Add(40*time.Second), true, false), // undrained: shifted again
		build(expires, true, false),                   // the shift expires
		build(expires.Add(time.Second), false, false), // and is removed: no change
	}
	tr := sampleEach(snaps)
	var got []string
	for _, m := range tr.Since(0, 0, "").Marks {
		got = append(got, fmt.Sprintf("%s %s→%s %s", m.Region, m.From, m.To, m.Note))
	}
	want := []string{
		"eu unknown→shifted shift move-eu: drain eu from www.example. until 2026-03-01T12:01:00Z",
		"eu shifted→drained shift move-eu active",
		"eu drained→shifted shift move-eu: drain eu from www.example. until 2026-03-01T12:01:00Z",
		"eu shifted→unknown shift move-eu expired",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("marks (-want +got):\n%s", d)
	}
}

// TestTrafficLetsSnapshotsGo: the Traffic knows the last snapshot it saw
// without keeping it alive: once the server serves another, the old one
// can be freed before the next tick (during a burst of region changes at
// 10,000 services each generation held is megabytes), and a snapshot
// seen again marks nothing.
func TestTrafficLetsSnapshotsGo(t *testing.T) {
	build := func(drained bool) *regions.Snapshot {
		st := regions.NewState()
		st.Regions["eu"] = &regions.Region{Name: "eu", VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}, Check: regions.HealthCheck{Type: "tcp", Port: 443}, Drained: drained}
		return regions.BuildSnapshot(st, nil, regions.SnapshotOptions{})
	}
	var cur *regions.Snapshot
	tr, fc := newFakeTraffic(func() *regions.Snapshot { return cur })
	fc.now = t0
	freed := make(chan struct{})
	cur = build(true)
	runtime.AddCleanup(cur, func(ch chan struct{}) { close(ch) }, freed)
	for range 2 {
		fc.now = fc.now.Add(time.Second)
		tr.sample()
	}
	// The server serves the next snapshot; the Traffic has not ticked.
	cur = build(false)
	// Cleanups run after the collection that found the snapshot
	// unreachable: a few collections at most.
	for i := 0; ; i++ {
		runtime.GC()
		select {
		case <-freed:
		default:
			if i == 100 {
				t.Fatal("the snapshot seen at the last tick is still reachable after 100 collections")
			}
			runtime.Gosched()
			continue
		}
		break
	}
	fc.now = fc.now.Add(time.Second)
	tr.sample()
	if u := tr.Since(0, 0, ""); len(u.Marks) != 1 || u.Marks[0].From != "drained" || u.Marks[0].To != "unknown" {
		t.Fatalf("marks %+v, want one, drained to unknown", u.Marks)
	}
}
