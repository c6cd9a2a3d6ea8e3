package store

import (
	"context"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

func TestWatcherInitialList(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	k := s.Keys()
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	lease, err := s.c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "us-east"}, lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHealthReport(ctx, upReport("eu-west", "p1", "192.0.2.1"), lease.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,10\n")); err != nil {
		t.Fatal(err)
	}
	// Entries written behind the store's back: each is skipped and named.
	bad := map[string]string{
		k.Region("broken"):     "{",
		k.Region("renamed"):    `{"name":"other","vips":["192.0.2.1"],"check":{"type":"tcp","port":1}}`,
		k.Service("x.example"): `{"name":"x.example.","ttl":0,"policy":"weighted","regions":[{"region":"eu-west","weight":1}]}`,
		k.Prefix() + "misc/x":  "1",
		// A report written by hand, without a lease, is never used.
		k.Health("us-east", "p1"): `{"region":"us-east","prober":"p1","trusted":true,"vips":[{"addr":"192.0.2.2","up":false}]}`,
		k.Prober("p9"):            `{"id":"p9","region":"us-east"}`,
	}
	for key, val := range bad {
		if _, err := s.c.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}

	rec := newRecorder()
	runWatcher(t, NewWatcher(s.c, k.Prefix(), etcdtest.Logger()), rec)
	st := rec.waitFor(t, "a first state", func(*regions.State) bool { return true })

	if len(st.Regions) != 2 || st.Regions["eu-west"] == nil || st.Regions["us-east"] == nil {
		t.Errorf("regions: %v", st.Regions)
	}
	if svc := st.Services["www.gslb.example."]; svc == nil || len(svc.Regions) != 2 || len(st.Services) != 1 {
		t.Errorf("services: %v", st.Services)
	}
	if h := st.Health["eu-west"]["p1"]; h == nil || !h.VIPs[0].Up || h.Lease != int64(lease.ID) || len(st.Health) != 1 {
		t.Errorf("health: %v", st.Health)
	}
	if p := st.Probers["p1"]; p == nil || p.Region != "us-east" || p.Lease != int64(lease.ID) || len(st.Probers) != 1 {
		t.Errorf("probers: %v", st.Probers)
	}
	if st.Latency == nil || st.Latency.Entries != 1 || string(st.Latency.CSV) != "192.0.2.0/24,eu-west,10\n" {
		t.Errorf("latency: %+v", st.Latency)
	}
	if len(st.Problems) != len(bad) {
		t.Errorf("problems: %q", st.Problems)
	}
	for key := range bad {
		if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.HasPrefix(p, key+": ") }) {
			t.Errorf("no problem names %s: %q", key, st.Problems)
		}
	}
	if st.Revision == 0 {
		t.Error("state without a revision")
	}
}

// TestWatcherUpdates applies changes one at a time and waits for each to
// show in the watcher's state.
func TestWatcherUpdates(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	k := s.Keys()
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	w := NewWatcher(s.c, k.Prefix(), etcdtest.Logger())
	runWatcher(t, w, rec)
	rec.waitFor(t, "the initial state", func(st *regions.State) bool { return len(st.Services) == 1 })

	weight := func(st *regions.State, region string) uint32 {
		svc := st.Services["www.gslb.example."]
		if svc == nil {
			return 999
		}
		for _, sr := range svc.Regions {
			if sr.Region == region {
				return sr.Weight
			}
		}
		return 999
	}
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   func(*regions.State) bool
	}{
		{"region added", func(t *testing.T) {
			if _, err := s.PutRegion(ctx, testRegion("ap-south", 3), IfAbsent()); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Regions["ap-south"] != nil }},
		{"region changed", func(t *testing.T) {
			if _, err := s.PutRegion(ctx, testRegion("eu-west", 9), Always); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Regions["eu-west"].VIPs[0] == netip.MustParseAddr("192.0.2.9") }},
		{"service weight changed", func(t *testing.T) {
			if _, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 3}, Always); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return weight(st, "us-east") == 3 && weight(st, "eu-west") == 10 }},
		{"health report put", func(t *testing.T) {
			// The shortest lease etcd grants is a few seconds; the report
			// must vanish on its own when it expires.
			lease, err := s.c.Grant(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "us-east"}, lease.ID); err != nil {
				t.Fatal(err)
			}
			h := upReport("eu-west", "p1", "192.0.2.1")
			h.VIPs[0].Up, h.VIPs[0].Reason = false, "timeout"
			if _, err := s.PutHealthReport(ctx, h, lease.ID); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool {
			h := st.Health["eu-west"]["p1"]
			return h != nil && !h.VIPs[0].Up && h.VIPs[0].Reason == "timeout" && h.Lease != 0 && st.Probers["p1"] != nil
		}},
		{"health report expired with its lease", func(*testing.T) {},
			func(st *regions.State) bool { return st.Health["eu-west"] == nil && st.Probers["p1"] == nil }},
		{"bad entry becomes a problem", func(t *testing.T) {
			if _, err := s.c.Put(ctx, k.Region("broken"), "{"); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool {
			return len(st.Problems) == 1 && strings.HasPrefix(st.Problems[0], k.Region("broken")+": ")
		}},
		{"bad entry fixed", func(t *testing.T) {
			if _, err := s.PutRegion(ctx, testRegion("broken", 7), Always); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Regions["broken"] != nil && len(st.Problems) == 0 }},
		{"region replaced by a bad one", func(t *testing.T) {
			if _, err := s.c.Put(ctx, k.Region("broken"), `{"name":"broken"}`); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Regions["broken"] == nil && len(st.Problems) == 1 }},
		{"bad entry deleted", func(t *testing.T) {
			if _, err := s.c.Delete(ctx, k.Region("broken")); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return len(st.Problems) == 0 }},
		{"prober registered", func(t *testing.T) {
			lease, err := s.c.Grant(ctx, 60)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p2", Region: "us-east"}, lease.ID); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Probers["p2"] != nil }},
		{"service deleted", func(t *testing.T) {
			if err := s.DeleteService(ctx, "www.gslb.example.", Always); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return len(st.Services) == 0 }},
		{"region deleted", func(t *testing.T) {
			if err := s.DeleteRegion(ctx, "ap-south", Always); err != nil {
				t.Fatal(err)
			}
		}, func(st *regions.State) bool { return st.Regions["ap-south"] == nil && len(st.Regions) == 2 }},
	}
	for _, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			step.change(t)
			rec.waitFor(t, step.name, step.want)
		})
		if !ok {
			break
		}
	}

	rec.checkUnmodified(t)
	rec.mu.Lock()
	for i := 1; i < len(rec.states); i++ {
		if rec.states[i].Revision < rec.states[i-1].Revision {
			t.Errorf("revision went back from %d to %d", rec.states[i-1].Revision, rec.states[i].Revision)
		}
	}
	rec.mu.Unlock()
	if st := w.Status(); !st.Connected || st.Revision != rec.latest().Revision || st.Relists != 0 || st.LastUpdate.IsZero() {
		t.Errorf("status %+v", st)
	}
}

// TestWatcherPropagation: a weight change shows in two watchers of the
// same etcd, each with its own client.
func TestWatcherPropagation(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	seedRegions(t, s, []string{"eu-west", "us-east"}, testService("www.gslb.example.", "eu-west", "us-east"))
	var recs []*recorder
	for range 2 {
		rec := newRecorder()
		runWatcher(t, NewWatcher(etcdtest.Connect(t, etcdtest.SharedEndpoints(t)...), s.Keys().Prefix(), etcdtest.Logger()), rec)
		recs = append(recs, rec)
	}
	for i, w := range []uint32{0, 25, 10} {
		if _, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": w}, Always); err != nil {
			t.Fatal(err)
		}
		for j, rec := range recs {
			rec.waitFor(t, "the new weight", func(st *regions.State) bool {
				svc := st.Services["www.gslb.example."]
				return svc != nil && svc.Regions[0].Weight == w
			})
			t.Logf("change %d seen by watcher %d", i, j)
		}
	}
}

func TestWatcherCompaction(t *testing.T) {
	t.Run("watch starts behind a compaction", func(t *testing.T) {
		ctx := etcdtest.Ctx(t)
		s := newTestStore(t)
		if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		w := NewWatcher(s.c, s.Keys().Prefix(), etcdtest.Logger())
		var compactedAt int64
		w.testHookBeforeWatch = func(rev int64) {
			if compactedAt != 0 {
				return
			}
			// Between the listing and the watch, changes land and the
			// history is compacted past the watch's start: the watch must
			// report the compaction and the watcher relist to find them.
			if _, err := s.PutRegion(ctx, testRegion("late", 2), IfAbsent()); err != nil {
				t.Error(err)
			}
			if _, err := s.PutRegion(ctx, testRegion("eu-west", 4), Always); err != nil {
				t.Error(err)
			}
			var err error
			if compactedAt, err = s.Compact(ctx); err != nil {
				t.Error(err)
			}
		}
		runWatcher(t, w, rec)
		rec.waitFor(t, "the regions written before the compaction", func(st *regions.State) bool {
			return st.Regions["late"] != nil && st.Regions["eu-west"].VIPs[0] == netip.MustParseAddr("192.0.2.4")
		})
		st := w.Status()
		if st.Compactions < 1 || st.LastCompactRevision != compactedAt || st.Relists < 1 {
			t.Fatalf("status %+v, compacted at %d", st, compactedAt)
		}
		if _, err := s.PutRegion(ctx, testRegion("later", 3), IfAbsent()); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "a region written after the relist", func(st *regions.State) bool {
			return st.Regions["later"] != nil && st.Regions["late"] != nil && st.Regions["eu-west"] != nil
		})
		rec.checkUnmodified(t)
	})

	t.Run("compaction under a watch in sync", func(t *testing.T) {
		ctx := etcdtest.Ctx(t)
		s := newTestStore(t)
		rec := newRecorder()
		w := NewWatcher(s.c, s.Keys().Prefix(), etcdtest.Logger())
		runWatcher(t, w, rec)
		for i := range 5 {
			if _, err := s.PutRegion(ctx, testRegion("eu-west", i+1), Always); err != nil {
				t.Fatal(err)
			}
		}
		rec.waitFor(t, "the last write", func(st *regions.State) bool {
			return st.Regions["eu-west"] != nil && st.Regions["eu-west"].VIPs[0] == netip.MustParseAddr("192.0.2.5")
		})
		if _, err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutRegion(ctx, testRegion("us-east", 9), IfAbsent()); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "a write after the compaction", func(st *regions.State) bool { return st.Regions["us-east"] != nil })
		if st := w.Status(); !st.Connected || st.Compactions != 0 {
			t.Fatalf("a watcher in sync was disturbed by a compaction: %+v", st)
		}
	})
}

// TestWatcherEtcdRestart stops the only etcd member under a watcher: the
// watcher keeps its state, says it is disconnected and retries; once etcd
// is back on the same directory and ports it catches up.
func TestWatcherEtcdRestart(t *testing.T) {
	t.Parallel() // its own etcd
	m := etcdtest.NewMember(t, "solo")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	c := etcdtest.Connect(t, m.ClientURL())
	s := NewStore(c, "", etcdtest.Logger())
	ctx := etcdtest.Ctx(t)
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	logs := &captureHandler{}
	w := fastWatcher(c, "", testLoggerTo(logs))
	rec := newRecorder()
	runWatcher(t, w, rec)
	rec.waitFor(t, "the initial state", func(st *regions.State) bool { return st.Regions["eu-west"] != nil })
	etcdtest.WaitUntil(t, "the watcher is connected", func() bool { return w.Status().Connected })

	// Idle, the watch is kept alive by progress notifications: etcd keeps
	// answering and the watcher neither relists nor disconnects, even with
	// another watch on the same client that etcd will not report progress
	// for (it starts at a revision the idle store has not reached).
	resp, err := c.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	octx, ocancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer ocancel()
	c.Watch(octx, "/other/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	since := w.Status().LastContact
	etcdtest.WaitUntil(t, "etcd answers several progress requests", func() bool {
		return w.Status().LastContact.After(since.Add(3 * w.ProbeInterval))
	})
	if st := w.Status(); !st.Connected || st.Relists != 0 || st.LastError != "" {
		t.Fatalf("an idle watch was not kept: %+v", st)
	}

	m.Stop()
	etcdtest.WaitUntil(t, "the watcher reports the outage", func() bool { return !w.Status().Connected })
	first := w.Status()
	if first.LastError == "" || logs.find("etcd watch lost") == "" {
		t.Fatalf("outage not reported: %+v", first)
	}
	etcdtest.WaitUntil(t, "the watcher retries", func() bool { return w.Status().LastErrorTime.After(first.LastErrorTime) })
	n := rec.count()
	if st := rec.latest(); st.Regions["eu-west"] == nil {
		t.Fatalf("state lost during the outage: %s", describe(st))
	}

	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRegion(ctx, testRegion("us-east", 2), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the write after the restart", func(st *regions.State) bool {
		return st.Regions["us-east"] != nil && st.Regions["eu-west"] != nil
	})
	etcdtest.WaitUntil(t, "the watcher is connected again", func() bool { return w.Status().Connected })
	if st := w.Status(); st.Relists < 1 {
		t.Errorf("no relist after the outage: %+v", st)
	}
	rec.mu.Lock()
	for i, st := range rec.states {
		if st.Regions["eu-west"] == nil {
			t.Errorf("state %d lacks a region that never left etcd", i)
		}
	}
	if len(rec.states) <= n {
		t.Errorf("no state after the restart")
	}
	rec.mu.Unlock()
	rec.checkUnmodified(t)
}

// TestWatcherQuorumLoss stops two of three members: the member the
// watcher talks to loses its leader and cancels the watch ("no leader");
// the watcher keeps its state, and catches up once quorum is back.
func TestWatcherQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	t.Parallel() // its own etcd
	ms := etcdtest.StartCluster(t, 3)
	c := etcdtest.Connect(t, ms[0].ClientURL())
	s := NewStore(c, "", etcdtest.Logger())
	ctx := etcdtest.Ctx(t)
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	logs := &captureHandler{}
	w := fastWatcher(c, "", testLoggerTo(logs))
	rec := newRecorder()
	runWatcher(t, w, rec)
	rec.waitFor(t, "the initial state", func(st *regions.State) bool { return st.Regions["eu-west"] != nil })
	etcdtest.WaitUntil(t, "the watcher is connected", func() bool { return w.Status().Connected })

	var wg sync.WaitGroup
	wg.Go(ms[1].Stop)
	wg.Go(ms[2].Stop)
	wg.Wait()
	etcdtest.WaitUntil(t, "the watcher reports the lost quorum", func() bool { return !w.Status().Connected })
	if l := logs.find("etcd watch lost", "no leader"); l == "" {
		t.Fatalf("the watch did not end with \"no leader\"; status %+v", w.Status())
	}
	if st := rec.latest(); st.Regions["eu-west"] == nil {
		t.Fatalf("state lost without quorum: %s", describe(st))
	}

	etcdtest.StartAll(t, ms[1], ms[2])
	if _, err := s.PutRegion(ctx, testRegion("us-east", 2), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the write after quorum returned", func(st *regions.State) bool {
		return st.Regions["us-east"] != nil && st.Regions["eu-west"] != nil
	})
	etcdtest.WaitUntil(t, "the watcher is connected again", func() bool { return w.Status().Connected })
	rec.checkUnmodified(t)
}

// BenchmarkPropagation measures etcd write → new State delivered by a
// watcher (the write's own round trip included), over b.N changes; run it
// with -benchtime 100x for the figure we track.
func BenchmarkPropagation(b *testing.B) {
	ctx := context.Background()
	s := NewStore(etcdtest.Shared(b), etcdtest.Prefix(b), etcdtest.Logger())
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			b.Fatal(err)
		}
	}
	svc := testService("www.gslb.example.", "eu-west", "us-east")
	if _, err := s.PutService(ctx, svc, IfAbsent()); err != nil {
		b.Fatal(err)
	}
	type seen struct {
		weight uint32
		at     time.Time
	}
	ch := make(chan seen, 1024)
	w := NewWatcher(etcdtest.Connect(b, etcdtest.SharedEndpoints(b)...), s.Keys().Prefix(), etcdtest.Logger())
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(wctx, func(st *regions.State) {
			if svc := st.Services["www.gslb.example."]; svc != nil {
				ch <- seen{svc.Regions[0].Weight, time.Now()}
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	for (<-ch).weight != 10 {
	}

	change := func(want uint32) time.Duration {
		next := *svc
		next.Regions = slices.Clone(svc.Regions)
		next.Regions[0].Weight = want
		start := time.Now()
		if _, err := s.PutService(ctx, &next, Always); err != nil {
			b.Fatal(err)
		}
		for {
			if got := <-ch; got.weight == want {
				return got.at.Sub(start)
			}
		}
	}
	// The first changes after a watcher starts are slower (connection and
	// server warm-up); a server watches for days.
	for i := range 3 {
		change(uint32(50 + i))
	}

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, change(uint32(100+i%1000)))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { // nearest rank
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return float64(lat[max(0, i)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}

// TestWatcherSubtree: a watcher limited to the regions sees region changes
// and nothing else, neither in its listing nor in its watch.
func TestWatcherSubtree(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	k := s.Keys()
	seedOne(t, s)
	rec := newRecorder()
	w := NewWatcher(s.c, k.Prefix(), etcdtest.Logger())
	w.Subtree = k.Regions()
	runWatcher(t, w, rec)
	st := rec.waitFor(t, "the listing", func(st *regions.State) bool { return st.Regions["eu-west"] != nil })
	if len(st.Services) != 0 || st.Latency != nil || len(st.Problems) != 0 {
		t.Errorf("listed more than the regions: %s", describe(st))
	}
	before := rec.count()
	if _, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 3}, Always); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRegion(ctx, testRegion("us-east", 2), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	st = rec.waitFor(t, "the new region", func(st *regions.State) bool { return st.Regions["us-east"] != nil })
	if len(st.Services) != 0 {
		t.Errorf("watched a service: %s", describe(st))
	}
	if n := rec.count() - before; n != 1 {
		t.Errorf("%d states delivered for one region change and one service change, want 1", n)
	}
}

func TestClusterMarkBehind(t *testing.T) {
	mark := clusterMark{id: 0xabc, rev: 100}
	cases := []struct {
		name     string
		mark     clusterMark
		hdr      *etcdserverpb.ResponseHeader
		want     string // part of why, "" for none
		wantSure bool
	}{
		{"no header", mark, nil, "", false},
		{"same cluster, same revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xabc, Revision: 100}, "", false},
		{"same cluster, later revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xabc, Revision: 150}, "", false},
		{"same cluster, earlier revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xabc, Revision: 40}, "revision 40, behind revision 100", false},
		{"another cluster, later revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xdef, Revision: 150}, "cluster ID changed from abc to def", true},
		{"another cluster, earlier revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xdef, Revision: 40}, "cluster ID changed", true},
		{"header without a cluster ID", mark, &etcdserverpb.ResponseHeader{Revision: 150}, "", false},
		{"header without a revision", mark, &etcdserverpb.ResponseHeader{ClusterId: 0xabc}, "", false},
		{"nothing marked yet", clusterMark{}, &etcdserverpb.ResponseHeader{ClusterId: 0xdef, Revision: 1}, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			why, sure := c.mark.behind(c.hdr)
			if (c.want == "") != (why == "") || !strings.Contains(why, c.want) || sure != c.wantSure {
				t.Fatalf("behind = %q, %v; want %q, %v", why, sure, c.want, c.wantSure)
			}
		})
	}
}

// TestWatcherEtcdWentBack restores the only etcd member from a backup of
// its data directory under a server's watcher: etcd is back at the
// backup's revision, below the one the watcher had seen, and the etcd
// client resumes the watch after that revision. The watcher must notice,
// relist and serve the backup's state, without a restart, and follow the
// restored etcd from there.
func TestWatcherEtcdWentBack(t *testing.T) {
	t.Parallel() // its own etcd
	m := etcdtest.NewMember(t, "solo")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	c := etcdtest.Connect(t, m.ClientURL())
	s := NewStore(c, "", etcdtest.Logger())
	ctx := etcdtest.Ctx(t)
	const www = "www.gslb.example."
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRegion(ctx, testRegion("us-east", 2), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutService(ctx, testService(www, "eu-west", "us-east"), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	// The backup: the data directory, copied while the member is stopped.
	backup := m.Backup()

	logs := &captureHandler{}
	w := fastWatcher(c, "", testLoggerTo(logs))
	// A stalled watch is given up only after this long: what notices the
	// restore well before is the check of the cluster.
	w.ProbeTimeout = 20 * time.Second
	l := NewLive("", regions.SnapshotOptions{}, etcdtest.Logger(), nil)
	runParts(t, func(ctx context.Context) error { return w.RunLive(ctx, l) })
	weight := func(st *regions.State) uint32 {
		if svc := st.Services[www]; svc != nil {
			return svc.Regions[0].Weight
		}
		return 999
	}
	served := func() *regions.State {
		if snap := l.Current(); snap != nil {
			return snap.State()
		}
		return regions.NewState()
	}

	// Changes after the backup, which the restore loses.
	if _, err := s.PutRegion(ctx, testRegion("ap-northeast", 3), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := s.SetWeights(ctx, www, map[string]uint32{"eu-west": uint32(20 + i)}, Always); err != nil {
			t.Fatal(err)
		}
	}
	etcdtest.WaitUntil(t, "the changes after the backup are served", func() bool {
		st := served()
		return st.Regions["ap-northeast"] != nil && weight(st) == 29
	})
	etcdtest.WaitUntil(t, "the watcher is connected", func() bool { return w.Status().Connected })
	lost := served().Revision

	// Every change since the backup lost: the member restored from it, on
	// the same address.
	m.Restore(backup)
	etcdtest.WaitUntil(t, "the backup's state is served", func() bool {
		st := served()
		return st.Regions["ap-northeast"] == nil && st.Regions["eu-west"] != nil && weight(st) == 10
	})
	st, ws := served(), w.Status()
	if st.Revision >= lost {
		t.Errorf("served revision %d after the restore, want below the lost %d", st.Revision, lost)
	}
	if ws.WentBack != 1 || !strings.Contains(ws.LastError, "behind revision") {
		t.Errorf("status %+v: want one went-back, noticed by an answer behind the revision seen (not a stalled watch)", ws)
	}
	if logs.find("WARN etcd went back", "revision_seen=") == "" {
		t.Errorf("no warning that etcd went back")
	}
	if ls := l.Status(); ls.Source != "etcd" || ls.Revision != st.Revision || ls.Age > 10*time.Second {
		t.Errorf("Live status after the restore: %+v", ls)
	}

	// The restored etcd is followed from there.
	if _, err := s.PutRegion(ctx, testRegion("sa-east", 4), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitUntil(t, "a write after the restore is served", func() bool { return served().Regions["sa-east"] != nil })
	etcdtest.WaitUntil(t, "the watcher is connected again", func() bool { return w.Status().Connected })
	if n := strings.Count(strings.Join(logs.all(), "\n"), "etcd went back"); n != 1 {
		t.Errorf("the warning was logged %d times, want once", n)
	}
}
