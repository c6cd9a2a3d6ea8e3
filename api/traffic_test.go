package api

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

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

	u := tr.Since(0, 0)
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
	if u := tr.Since(1_000_005, 0); u.Seconds != 0 || len(u.Regions["eu"]) != 0 {
		t.Errorf("since the last second: %d seconds %v", u.Seconds, u.Regions)
	}
	if u := tr.Since(1_000_003, 0); u.Start != 1_000_004 || !slices.Equal(u.Regions["eu"], []uint32{0, 0}) {
		t.Errorf("since 1000003: start %d, %v", u.Start, u.Regions["eu"])
	}

	// A counter that went back (a region removed and added again) counts
	// from zero; a region gone is forgotten.
	var reset [numContinentSlots]uint64
	reset[eu] = 2
	fc.r.Regions["eu"] = reset
	delete(fc.r.Regions, "na")
	at(6700 * time.Millisecond)
	u = tr.Since(1_000_005, 0)
	if !slices.Equal(u.Regions["eu"], []uint32{2}) || u.Regions["na"] != nil {
		t.Errorf("after a reset: %v", u.Regions)
	}
}

func TestTrafficHourAndCap(t *testing.T) {
	tr, fc := newFakeTraffic(nil)
	for i := range TrafficMaxSeries + 3 {
		fc.r.Services[fmt.Sprintf("s%03d.", i)] = 0
	}
	fc.add("eu", 0, 0)
	for s := range TrafficSeconds + 100 {
		fc.now = t0.Add(time.Duration(s) * time.Second)
		fc.add("eu", 0, uint64(s%7))
		tr.sample()
	}
	u := tr.Since(0, 0)
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
	if len(u.Services) != TrafficMaxSeries || u.Dropped != 3 {
		t.Errorf("%d services charted, %d dropped; want %d and 3", len(u.Services), u.Dropped, TrafficMaxSeries)
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
	if l := tr.Since(0, 0).Lines; l["EU"]["eu"] != 40 || l["EU"]["na"] != 0 {
		t.Fatalf("lines: %v, want EU: eu 40 (the last second)", l)
	}
	// The answers move to na: within a second the line follows.
	for range 4 {
		step(trafficTick, 0, 10)
	}
	l := tr.Since(0, 0).Lines
	if l["EU"]["eu"] != 0 || l["EU"]["na"] != 40 {
		t.Errorf("a second after the move: %v, want EU: na 40 only", l)
	}
	if tr.Since(0, 0).LineWindow != 1 {
		t.Errorf("line window %v, want 1 s", tr.Since(0, 0).LineWindow)
	}
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
	i := 0
	tr, fc := newFakeTraffic(func() *regions.Snapshot { return snaps[i] })
	fc.now = t0
	for i = range snaps {
		fc.now = fc.now.Add(time.Second)
		tr.sample()
	}
	u := tr.Since(0, 0)
	var got []string
	for _, m := range u.Marks {
		got = append(got, fmt.Sprintf("%d %s %s→%s", m.Seq, m.Region, m.From, m.To))
	}
	want := []string{"1 eu unknown→drained", "2 eu drained→unknown"}
	if !slices.Equal(got, want) {
		t.Errorf("marks %q, want %q", got, want)
	}
	if u := tr.Since(0, 1); len(u.Marks) != 1 || u.Marks[0].Seq != 2 {
		t.Errorf("marks after 1: %+v", u.Marks)
	}
	if tr.LastMark() != 2 {
		t.Errorf("last mark %d, want 2", tr.LastMark())
	}
}
