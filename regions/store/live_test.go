package store

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/geo"
	"github.com/meridian-gslb/meridian/geo/geotest"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// oldState is fullState confirmed current two days ago, with its one
// report observed shortly before.
func oldState() (st *regions.State, confirmed time.Time) {
	st = fullState()
	confirmed = time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	rep := *st.Health["eu-west"]["p1"]
	rep.Observed = confirmed.Add(-5 * time.Minute)
	st.Health["eu-west"]["p1"] = &rep
	return st, confirmed
}

// liveFromFile is a Live loaded from a state file holding st, confirmed
// at confirmed, in a directory of the test's.
func liveFromFile(t *testing.T, st *regions.State, confirmed time.Time, h *captureHandler) *Live {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	if st != nil {
		if err := SaveState(path, st, confirmed); err != nil {
			t.Fatal(err)
		}
	}
	if h == nil {
		h = &captureHandler{}
	}
	l := NewLive(path, regions.SnapshotOptions{}, testLoggerTo(h), nil)
	if err := l.LoadPersisted(); err != nil {
		t.Fatal(err)
	}
	return l
}

// runLive runs l's persistence and a fast watcher of prefix feeding l
// until the test ends.
func runLive(t *testing.T, l *Live, prefix string) *Watcher {
	t.Helper()
	w := fastWatcher(etcdtest.Shared(t), prefix, etcdtest.Logger())
	runParts(t, func(ctx context.Context) error { return w.RunLive(ctx, l) }, l.Run)
	return w
}

// TestLiveAge: the age of the data is the time since etcd last confirmed
// it, across restarts: a server started from a two-day-old state file
// reports two days, until etcd confirms a state.
func TestLiveAge(t *testing.T) {
	st, confirmed := oldState()
	checkOld := func(t *testing.T, l *Live, want time.Time) {
		t.Helper()
		s := l.Status()
		if s.Source != "file" || !s.Confirmed.Equal(want) {
			t.Fatalf("source %q, confirmed %v, want file and %v", s.Source, s.Confirmed, want)
		}
		if s.Age < 48*time.Hour || s.Age > 49*time.Hour || s.AgeSeconds != s.Age.Seconds() {
			t.Fatalf("age %v (%v s), want two days", s.Age, s.AgeSeconds)
		}
		if len(s.Reports) != 1 || s.Reports[0].Region != "eu-west" || s.Reports[0].Prober != "p1" ||
			!s.Reports[0].Observed.Equal(confirmed.Add(-5*time.Minute)) || s.Reports[0].AgeSeconds < (48*time.Hour+5*time.Minute).Seconds() {
			t.Fatalf("reports %+v: want p1's, observed two days ago", s.Reports)
		}
	}
	t.Run("state file", func(t *testing.T) {
		l := liveFromFile(t, st, confirmed, nil)
		checkOld(t, l, confirmed)
		// Only etcd confirms, and only what it delivered.
		l.Confirm(time.Now())
		checkOld(t, l, confirmed)
	})
	t.Run("state file format 1", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		saveFormat1(t, path, st, confirmed)
		l := NewLive(path, regions.SnapshotOptions{}, nil, nil)
		if err := l.LoadPersisted(); err != nil {
			t.Fatal(err)
		}
		checkOld(t, l, confirmed)
	})
	t.Run("etcd confirms", func(t *testing.T) {
		s := newTestStore(t)
		ctx := etcdtest.Ctx(t)
		for _, r := range []*regions.Region{testRegion("eu-west", 1), testRegion("us-east", 2)} {
			if _, err := s.PutRegion(ctx, r, Always); err != nil {
				t.Fatal(err)
			}
		}
		l := liveFromFile(t, st, confirmed, nil)
		runLive(t, l, s.Keys().Prefix())
		etcdtest.WaitUntil(t, "the state from etcd is served", func() bool { return l.Status().Source == "etcd" })
		first := l.Status()
		if first.Age > time.Hour || len(first.Reports) != 0 {
			t.Fatalf("served from etcd: age %v, reports %+v", first.Age, first.Reports)
		}
		// Progress notifications confirm an idle state again and again.
		etcdtest.WaitUntil(t, "a later confirmation", func() bool { return l.Status().Confirmed.After(first.Confirmed) })
		// The confirmation time goes to the file with the state.
		etcdtest.WaitUntil(t, "the state file is written", func() bool {
			saved, err := LoadState(l.path)
			return err == nil && saved.State.Revision == first.Revision && !saved.Confirmed.Before(first.Confirmed)
		})
	})
}

// TestLiveEmptyListing: a listing with no regions and no services does
// not replace a state that has some; etcd holding some again, or the
// operator, ends the refusal. Deleting the last ones through watch events
// is served.
func TestLiveEmptyListing(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	st, confirmed := oldState()
	refusedLogs := func(h *captureHandler) int {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, r := range h.records {
			if strings.Contains(r, "etcd holds no regions and no services") {
				n++
			}
		}
		return n
	}
	waitRefused := func(t *testing.T, l *Live) {
		t.Helper()
		etcdtest.WaitUntil(t, "the empty listing is refused", func() bool { return l.Status().EmptyRefused != nil })
	}
	checkServesOld := func(t *testing.T, l *Live) {
		t.Helper()
		s := l.Status()
		if s.Source != "file" || s.Revision != st.Revision || len(l.Current().State().Regions) != 2 || s.Age < 48*time.Hour {
			t.Fatalf("status %+v: want the state from the file, two days old", s)
		}
		if r := s.EmptyRefused; r == nil || !strings.Contains(r.Message, "--accept-empty-state") || r.Revision == 0 {
			t.Fatalf("refusal %+v", r)
		}
		saved, err := LoadState(l.path)
		if err != nil || len(saved.State.Regions) != 2 || !saved.Confirmed.Equal(confirmed) {
			t.Fatalf("the state file was replaced: %v", err)
		}
	}

	t.Run("refused until etcd holds regions, then deletions are served", func(t *testing.T) {
		h := &captureHandler{}
		l := liveFromFile(t, st, confirmed, h)
		s := newTestStore(t)
		runLive(t, l, s.Keys().Prefix())
		waitRefused(t, l)
		checkServesOld(t, l)
		// Another empty listing (a relist) says nothing new.
		relist := regions.NewState()
		relist.Revision = l.Status().EmptyRefused.Revision
		l.ApplyListing(relist)
		if n := refusedLogs(h); n != 1 {
			t.Fatalf("%d log lines about the refusal, want 1", n)
		}
		checkServesOld(t, l)

		// Changes that leave etcd without regions and services keep
		// the refusal.
		lease, err := s.c.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		refusedAt := l.Status().EmptyRefused.Revision
		if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p9", Region: "eu-west", Started: time.Unix(1700000000, 0).UTC()}, lease.ID); err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "the registration reaches the refused state", func() bool { return l.Status().EmptyRefused.Revision > refusedAt })
		checkServesOld(t, l)

		// A region alone (a bootstrap writes regions first) does not end
		// it: the served services would vanish.
		regionRev, err := s.PutRegion(ctx, testRegion("ap-south", 9), Always)
		if err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "the region reaches the refused state", func() bool { return l.Status().EmptyRefused.Revision >= regionRev })
		checkServesOld(t, l)
		if _, err := s.PutService(ctx, testService("x.gslb.example.", "ap-south"), Always); err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "the new service is served", func() bool {
			cur := l.Current().State()
			return len(cur.Regions) == 1 && cur.Services["x.gslb.example."] != nil
		})
		if s := l.Status(); s.EmptyRefused != nil || s.Source != "etcd" || s.Age > time.Hour || h.find("etcd holds services again") == "" {
			t.Fatalf("after a service was written: %+v", s)
		}
		etcdtest.WaitUntil(t, "the state file follows", func() bool {
			saved, err := LoadState(l.path)
			return err == nil && len(saved.State.Regions) == 1 && len(saved.State.Services) == 1
		})

		// The operator deletes the last service and region: watch
		// events, served.
		if err := s.DeleteService(ctx, "x.gslb.example.", Always); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRegion(ctx, "ap-south", Always); err != nil {
			t.Fatal(err)
		}
		etcdtest.WaitUntil(t, "the deletion is served", func() bool { return len(l.Current().State().Regions) == 0 })
		if s := l.Status(); s.EmptyRefused != nil || h.find("the last regions and services were deleted") == "" {
			t.Fatalf("after deleting the last region: %+v", s)
		}
		etcdtest.WaitUntil(t, "the state file follows", func() bool {
			saved, err := LoadState(l.path)
			return err == nil && len(saved.State.Regions) == 0 && len(saved.State.Services) == 0
		})
		// Nothing left to protect: an empty listing is served.
		l.ApplyListing(regions.NewState())
		if l.Status().EmptyRefused != nil {
			t.Fatal("an empty listing refused while serving an empty state")
		}
	})

	t.Run("accepted by the operator", func(t *testing.T) {
		l := liveFromFile(t, st, confirmed, nil)
		if err := l.AcceptEmpty(); !errors.Is(err, ErrNothingRefused) {
			t.Fatalf("AcceptEmpty with nothing refused: %v", err)
		}
		s := newTestStore(t)
		runLive(t, l, s.Keys().Prefix())
		waitRefused(t, l)
		checkServesOld(t, l)
		if err := l.AcceptEmpty(); err != nil {
			t.Fatal(err)
		}
		if s := l.Status(); s.EmptyRefused != nil || s.Source != "etcd" || len(l.Current().State().Regions) != 0 || s.Age > time.Hour {
			t.Fatalf("after AcceptEmpty: %+v", s)
		}
		etcdtest.WaitUntil(t, "the empty state is persisted", func() bool {
			saved, err := LoadState(l.path)
			return err == nil && len(saved.State.Regions) == 0 && len(saved.State.Services) == 0
		})
		if err := l.AcceptEmpty(); !errors.Is(err, ErrNothingRefused) {
			t.Fatalf("AcceptEmpty again: %v", err)
		}
	})

	t.Run("accepted at start", func(t *testing.T) {
		l := liveFromFile(t, st, confirmed, nil)
		l.AcceptEmptyAtStart()
		s := newTestStore(t)
		runLive(t, l, s.Keys().Prefix())
		etcdtest.WaitUntil(t, "the empty state is served", func() bool { return l.Status().Source == "etcd" })
		if s := l.Status(); s.EmptyRefused != nil || len(l.Current().State().Regions) != 0 {
			t.Fatalf("status %+v", s)
		}
	})

	t.Run("at start, used up by a first listing that is not empty", func(t *testing.T) {
		l := liveFromFile(t, st, confirmed, nil)
		l.AcceptEmptyAtStart()
		s := newTestStore(t)
		if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), Always); err != nil {
			t.Fatal(err)
		}
		runLive(t, l, s.Keys().Prefix())
		etcdtest.WaitUntil(t, "the state from etcd is served", func() bool { return l.Status().Source == "etcd" })
		l.ApplyListing(regions.NewState())
		if l.Status().EmptyRefused == nil || len(l.Current().State().Regions) != 1 {
			t.Fatal("a later empty listing was served")
		}
	})
}

// TestLiveListingBehind: after etcd went back (restored from a backup) a
// listing at a revision below the served one is served all the same, and
// written to the state file; the empty-state guard applies to it as to
// any listing.
func TestLiveListingBehind(t *testing.T) {
	served := func() *regions.State {
		st := fullState()
		st.Revision = 500
		return st
	}
	restored := regions.NewState()
	restored.Revision = 400
	empty := regions.NewState()
	empty.Revision = 3
	restored.Regions["eu-west"] = testRegion("eu-west", 9)
	restored.Services["www.gslb.example."] = testService("www.gslb.example.", "eu-west")
	cases := []struct {
		name    string
		listing *regions.State
		refused bool
	}{
		{"a listing behind is served", restored, false},
		{"an empty listing behind is refused", empty, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			l := NewLive(path, regions.SnapshotOptions{}, etcdtest.Logger(), nil)
			l.ApplyListing(served())
			l.ApplyListing(c.listing)
			l.flush()
			want := served()
			if !c.refused {
				want = c.listing
			}
			st := l.Current().State()
			if st.Revision != want.Revision || len(st.Regions) != len(want.Regions) || len(st.Services) != len(want.Services) {
				t.Fatalf("serves revision %d with %d regions, %d services; want revision %d", st.Revision, len(st.Regions), len(st.Services), want.Revision)
			}
			if got := l.Status().EmptyRefused != nil; got != c.refused {
				t.Fatalf("empty refused: %v, want %v", got, c.refused)
			}
			saved, err := LoadState(path)
			if err != nil {
				t.Fatal(err)
			}
			if saved.State.Revision != want.Revision {
				t.Fatalf("state file at revision %d, want %d", saved.State.Revision, want.Revision)
			}
		})
	}
}

// TestLivePersistPace: changes of regions, services or the latency table
// are written at the fast pace, the rest at the slow one; the latency
// table is written only when its id changes.
func TestLivePersistPace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	l := NewLive(path, regions.SnapshotOptions{}, nil, nil)
	l.FastInterval, l.SlowInterval = time.Second, time.Hour
	fast, slow := l.intervals()
	st := fullState()
	latFile := filepath.Join(dir, latencyFileName(st.Latency.ID))

	type step struct {
		name   string
		change func(*regions.State) *regions.State
		want   time.Duration // the wait after the last write; 0: nothing pending
	}
	health := func(st *regions.State) *regions.State {
		next := st.Clone()
		next.Revision++
		rep := *next.Health["eu-west"]["p1"]
		rep.Observed = rep.Observed.Add(time.Second)
		next.Health["eu-west"] = map[string]*regions.HealthReport{"p1": &rep}
		return next
	}
	steps := []step{
		{"health report", health, slow},
		{"prober registration", func(st *regions.State) *regions.State {
			next := st.Clone()
			p := *next.Probers["p1"]
			p.Version = "1.1"
			next.Probers["p1"] = &p
			return next
		}, slow},
		{"region", func(st *regions.State) *regions.State {
			next := st.Clone()
			next.Regions["ap-south"] = testRegion("ap-south", 9)
			return next
		}, fast},
		{"service", func(st *regions.State) *regions.State {
			next := st.Clone()
			delete(next.Services, "www.gslb.example.")
			return next
		}, fast},
		{"latency table", func(st *regions.State) *regions.State {
			next := st.Clone()
			next.Latency = &regions.LatencyData{ID: "t2", Entries: 1, CSV: []byte("198.51.100.0/24,us-east,20\n")}
			return next
		}, fast},
	}

	l.Apply(st)
	if _, ok := l.due(); !ok {
		t.Fatal("nothing pending after the first state")
	}
	l.flush()
	fi, err := os.Stat(latFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if at, ok := l.due(); ok {
				t.Fatalf("pending before the change, at %v", at)
			}
			st = s.change(st)
			l.Apply(st)
			at, ok := l.due()
			if !ok || !at.Equal(l.Status().Persist.LastWrite.Add(s.want)) {
				t.Fatalf("write due %v (%v), want %v after the last", at, ok, s.want)
			}
			before := l.Status().Persist
			l.flush()
			after := l.Status().Persist
			saved, err := LoadState(path)
			if err != nil || saved.State.Revision != st.Revision || after.Writes != before.Writes+1 {
				t.Fatalf("after the write: %v, revision %d, writes %d→%d", err, saved.State.Revision, before.Writes, after.Writes)
			}
			// The table is written again only when its id changed.
			if s.name != "latency table" {
				now, err := os.Stat(latFile)
				if err != nil || !os.SameFile(fi, now) || !now.ModTime().Equal(fi.ModTime()) {
					t.Fatalf("the latency file was rewritten: %v", err)
				}
				if n := after.Bytes - before.Bytes; n > 4096 {
					t.Fatalf("%d bytes written", n)
				}
			} else if _, err := os.Stat(latFile); err == nil {
				t.Fatal("the old latency file is still there")
			}
		})
	}
	t.Run("confirmation", func(t *testing.T) {
		l.Confirm(time.Now())
		if at, ok := l.due(); !ok || !at.Equal(l.Status().Persist.LastWrite.Add(slow)) {
			t.Fatalf("write due %v (%v), want the slow pace", at, ok)
		}
	})
	t.Run("pending changes are written on the way out", func(t *testing.T) {
		st = health(st)
		l.Apply(st)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		saved, err := LoadState(path)
		if err != nil || saved.State.Revision != st.Revision {
			t.Fatalf("%v: revision %d, want %d", err, saved.State.Revision, st.Revision)
		}
	})
}

// TestLiveRebuild: a new GeoIP database rebuilds the served snapshot from
// the same state, with geo tables compiled from it; its source and age
// stay, nothing is written, and a snapshot that changes only health
// compiles nothing.
func TestLiveRebuild(t *testing.T) {
	dir := t.TempDir()
	mmdb := filepath.Join(dir, "geo.mmdb")
	geotest.WriteFile(t, mmdb, geotest.Net{CIDR: "16.0.0.0/24", Country: "FR"})
	r, err := geo.NewReloader(mmdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, confirmed := oldState()
	path := filepath.Join(dir, "state.json")
	if err := SaveState(path, st, confirmed); err != nil {
		t.Fatal(err)
	}
	h := &captureHandler{}
	swaps := 0
	l := NewLive(path, regions.SnapshotOptions{GeoIP: r}, testLoggerTo(h), func(*regions.Snapshot) { swaps++ })
	l.Rebuild() // nothing served yet: nothing to rebuild
	if l.Current() != nil || swaps != 0 {
		t.Fatal("Rebuild before the first snapshot made one")
	}
	if err := l.LoadPersisted(); err != nil {
		t.Fatal(err)
	}
	r.OnReload(func(*geo.DB) { l.Rebuild() })
	decide := func(s *regions.Snapshot) regions.Decision {
		c := &regions.Client{Addr: netip.MustParseAddr("16.0.0.1"), Bits: 32, Locator: r}
		return s.Decide(s.ServiceByName("www.gslb.example."), c, regions.QTypeA, 1)
	}
	first := l.Current()
	if d := decide(first); d.Region != "eu-west" || d.Scope != 24 || first.GeoTables().Merged != 1 {
		t.Fatalf("first snapshot: %+v, tables %+v", d, first.GeoTables())
	}

	// Two European /25: a lookup scopes /25, the merged table /24.
	geotest.WriteFile(t, mmdb, geotest.Net{CIDR: "16.0.0.0/25", Country: "FR"}, geotest.Net{CIDR: "16.0.0.128/25", Country: "DE"})
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := decide(first); d.Scope != 25 {
		t.Fatalf("the old snapshot with the new database: %+v, want a lookup's /25", d)
	}
	s := l.Current()
	if s == first || s.State() != first.State() || swaps != 2 {
		t.Fatalf("no new snapshot of the same state (swaps %d)", swaps)
	}
	if d := decide(s); d.Region != "eu-west" || d.Scope != 24 || s.GeoTables().Merged != 1 {
		t.Fatalf("rebuilt snapshot: %+v, tables %+v", d, s.GeoTables())
	}
	status := l.Status()
	if status.Source != "file" || !status.Confirmed.Equal(confirmed) || status.Persist.Pending {
		t.Fatalf("after the rebuild: %+v", status)
	}

	// A health change from etcd: the tables are taken over.
	st2 := s.State().Clone()
	rep := *st2.Health["eu-west"]["p1"]
	rep.VIPs = []regions.VIPHealth{{Addr: netip.MustParseAddr("192.0.2.1"), Up: false}}
	st2.Health["eu-west"]["p1"] = &rep
	st2.Revision++
	l.Apply(st2)
	if s3 := l.Current(); s3.State() != st2 || s3.GeoTables().Merged != 1 || s3.Stats().Compiled != 0 {
		t.Fatalf("health change: tables %+v, build %+v", s3.GeoTables(), s3.Stats())
	}
}

// TestLiveFactorsTimer: while a factor moves, Run builds the snapshot
// again at its NextChange, with no change of the state, until the factor
// rests: here a slow start of two seconds after a drained region is put
// back, which ends with the region at its full share and nothing due.
func TestLiveFactorsTimer(t *testing.T) {
	swaps := make(chan *regions.Snapshot, 100)
	l := NewLive("", regions.SnapshotOptions{}, testLoggerTo(&captureHandler{}), func(s *regions.Snapshot) { swaps <- s })
	st := fullState()
	svc := *st.Services["www.gslb.example."]
	svc.TTL = 1
	svc.SlowStart = &regions.SlowStart{Window: regions.Duration(2 * time.Second)}
	st.Services[svc.Name] = &svc
	drained := st.Clone()
	r := *drained.Regions["eu-west"]
	r.Drained = true
	drained.Regions["eu-west"] = &r
	l.ApplyListing(drained)
	<-swaps
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	l.Apply(st)
	s := <-swaps
	if s.NextChange().IsZero() {
		t.Fatal("the undrained region does not ramp")
	}
	start := s.Time()
	deadline := time.After(etcdtest.WaitLimit)
	rebuilt := 0
	for !s.NextChange().IsZero() {
		select {
		case s = <-swaps:
			rebuilt++
			if s.State() != st {
				t.Fatal("a rebuild changed the state")
			}
		case <-deadline:
			t.Fatalf("still moving %v after the ramp began (%d rebuilds)", time.Since(start), rebuilt)
		}
	}
	v := s.ServiceByName(svc.Name)
	f := s.Factors(v, s.Time())["eu-west"]
	if f.Ramp != 1 || f.Kept != 1 || rebuilt < 2 || s.Time().Sub(start) < time.Second {
		t.Fatalf("after %d rebuilds in %v: %+v", rebuilt, s.Time().Sub(start), f)
	}
}
