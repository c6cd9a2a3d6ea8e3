package store

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// shiftStore is a store with regions eu-west, us-east and ap-ne, the
// service www in eu-west and us-east, and solo in ap-ne alone.
func shiftStore(t *testing.T) *Store {
	t.Helper()
	s := newTestStore(t)
	seedRegions(t, s, []string{"eu-west", "us-east", "ap-ne"},
		testService("www.gslb.example.", "eu-west", "us-east"), testService("solo.gslb.example.", "ap-ne"))
	return s
}

func drainFor(service, region string, d time.Duration) *regions.Shift {
	return &regions.Shift{Service: service, Drain: region, Expires: time.Now().Add(d)}
}

// fieldOf is the first field a validation error in err's chain names.
func fieldOf(err error) string {
	var ve *regions.ValidationError
	if errors.As(err, &ve) && len(ve.Problems) > 0 {
		return ve.Problems[0].Field
	}
	return ""
}

// TestShiftWrites: a shift is created with its id, maker and time, and
// audited; bad input names its field and writes nothing; unknown names
// are ErrNotFound; the NODATA guard applies, and force overrides it.
func TestShiftWrites(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := shiftStore(t)
	prefix := s.Keys().Prefix()

	t.Run("create", func(t *testing.T) {
		sh := drainFor("www.gslb.example.", "eu-west", time.Hour)
		sh.Reason = "maintenance"
		var ch Change
		rev, err := s.CreateShift(ctx, sh, By("alice"), Report(&ch))
		if err != nil {
			t.Fatal(err)
		}
		got, grev, err := s.GetShift(ctx, sh.ID)
		if err != nil || grev != rev || got.CreatedBy != "alice" || got.Reason != "maintenance" || got.Created.IsZero() || !regions.ValidShiftID(got.ID) {
			t.Fatalf("%+v %d %v", got, grev, err)
		}
		if !ch.Changed || ch.Action != "create" || ch.Kind != "shift" || ch.Name != sh.ID || ch.Before != nil {
			t.Fatalf("change %+v", ch)
		}
		rec := auditLog(t, s)[0]
		if rec.Actor != "alice" || rec.Action != "create" || rec.Name != sh.ID || rec.Revision != rev {
			t.Fatalf("audit %+v", rec)
		}
	})
	refused := []struct {
		name    string
		sh      *regions.Shift
		field   string
		missing bool
	}{
		{"expiry in the past", drainFor("www.gslb.example.", "eu-west", -time.Minute), "expires", false},
		{"expiry beyond 72 hours", drainFor("www.gslb.example.", "eu-west", 73*time.Hour), "expires", false},
		{"no expiry", &regions.Shift{Service: "www.gslb.example.", Drain: "eu-west"}, "expires", false},
		{"unknown service", drainFor("nope.gslb.example.", "eu-west", time.Hour), "service", true},
		{"unknown region", drainFor("", "atlantis", time.Hour), "drain", true},
		{"a region the service lacks", drainFor("www.gslb.example.", "ap-ne", time.Hour), "drain", false},
		{"weights of a region the service lacks", &regions.Shift{Service: "www.gslb.example.", Weights: map[string]uint32{"ap-ne": 1}, Expires: time.Now().Add(time.Hour)}, "weights.ap-ne", false},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := keyRevs(t, s.c, prefix)
			_, err := s.CreateShift(ctx, tc.sh, By("alice"))
			if fieldOf(err) != tc.field || errors.Is(err, ErrNotFound) != tc.missing || !errors.Is(err, regions.ErrInvalid) && !tc.missing {
				t.Fatalf("%v: want field %s, missing %v", err, tc.field, tc.missing)
			}
			if !maps.Equal(before, keyRevs(t, s.c, prefix)) {
				t.Fatal("a refused shift wrote")
			}
		})
	}
	t.Run("dry run", func(t *testing.T) {
		before := keyRevs(t, s.c, prefix)
		var ch Change
		w := &regions.Shift{Service: "www.gslb.example.", Weights: map[string]uint32{"us-east": 5}, Expires: time.Now().Add(time.Hour)}
		if _, err := s.CreateShift(ctx, w, By("alice"), DryRun(), Report(&ch)); err != nil {
			t.Fatal(err)
		}
		if !ch.DryRun || !ch.Changed || !maps.Equal(before, keyRevs(t, s.c, prefix)) {
			t.Fatalf("%+v", ch)
		}
	})
	t.Run("NODATA guard", func(t *testing.T) {
		// www has eu-west drained by the first shift: draining us-east
		// for every service leaves it nothing, and solo's only region
		// is ap-ne.
		before := keyRevs(t, s.c, prefix)
		_, err := s.CreateShift(ctx, drainFor("", "us-east", time.Hour), By("alice"))
		var nd *NoDataError
		if !errors.As(err, &nd) || len(nd.Services) != 1 || nd.Services[0].Service != "www.gslb.example." {
			t.Fatalf("%v, want www refused", err)
		}
		if _, err := s.CreateShift(ctx, drainFor("solo.gslb.example.", "ap-ne", time.Hour), By("alice"), DryRun()); !errors.Is(err, ErrNoData) {
			t.Fatalf("a dry run: %v", err)
		}
		if !maps.Equal(before, keyRevs(t, s.c, prefix)) {
			t.Fatal("a refused shift wrote")
		}
		var ch Change
		if _, err := s.CreateShift(ctx, drainFor("solo.gslb.example.", "ap-ne", time.Minute), By("alice"), Force(), Report(&ch)); err != nil {
			t.Fatal(err)
		}
		if len(ch.NoData) != 1 || ch.NoData[0].Service != "solo.gslb.example." {
			t.Fatalf("forced: %+v", ch.NoData)
		}
		// Cancelling gives solo its region back: allowed.
		if _, err := s.CancelShift(ctx, ch.Name, Always, By("bob")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestShiftExtendCancel: extend moves the expiry of an active shift, a
// stale If-Match fails, an ended shift is refused; cancel records who
// ended it once.
func TestShiftExtendCancel(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := shiftStore(t)
	sh := drainFor("www.gslb.example.", "eu-west", time.Hour)
	rev, err := s.CreateShift(ctx, sh, By("alice"))
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	reason := "longer"
	rev2, err := s.ExtendShift(ctx, sh.ID, later, &reason, IfRevision(rev), By("bob"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := s.GetShift(ctx, sh.ID)
	if !got.Expires.Equal(later) || got.Reason != "longer" || got.CreatedBy != "alice" {
		t.Fatalf("after extend: %+v", got)
	}
	_, err = s.ExtendShift(ctx, sh.ID, later, nil, IfRevision(rev), By("bob"))
	conflictAt(t, err, rev2)
	if _, err := s.ExtendShift(ctx, sh.ID, time.Now().Add(80*time.Hour), nil, Always); fieldOf(err) != "expires" {
		t.Fatalf("beyond 72 h: %v", err)
	}
	if _, err := s.ExtendShift(ctx, "0badc0de", later, nil, Always); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown shift: %v", err)
	}

	var ch Change
	if _, err := s.CancelShift(ctx, sh.ID, Always, By("carol"), Report(&ch)); err != nil || !ch.Changed || ch.Action != "cancel" {
		t.Fatalf("%v %+v", err, ch)
	}
	got, _, _ = s.GetShift(ctx, sh.ID)
	if got.Ended == nil || got.Ended.How != regions.ShiftCancelled || got.Ended.By != "carol" {
		t.Fatalf("after cancel: %+v", got.Ended)
	}
	n := len(auditLog(t, s))
	if _, err := s.CancelShift(ctx, sh.ID, Always, By("carol"), Report(&ch)); err != nil || ch.Changed {
		t.Fatalf("second cancel: %v %+v", err, ch)
	}
	if _, err := s.ExtendShift(ctx, sh.ID, later, nil, Always); !errors.Is(err, ErrShiftEnded) {
		t.Fatalf("extend after cancel: %v", err)
	}
	if len(auditLog(t, s)) != n {
		t.Fatal("a write that changed nothing was audited")
	}
	if ended, err := s.EndShift(ctx, sh.ID, regions.ShiftExpired, "", By("server a")); err != nil || ended {
		t.Fatalf("an expiry after a cancel: %v %v", ended, err)
	}
}

// TestEndShiftOnce: servers recording the same expiry at once make one
// write and one audit record; a shift not expired yet is not ended.
func TestEndShiftOnce(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := shiftStore(t)
	sh := drainFor("www.gslb.example.", "eu-west", 500*time.Millisecond)
	if _, err := s.CreateShift(ctx, sh, By("alice")); err != nil {
		t.Fatal(err)
	}
	if ended, err := s.EndShift(ctx, sh.ID, regions.ShiftExpired, "", By("early")); err != nil || ended {
		t.Fatalf("ended before its expiry: %v %v", ended, err)
	}
	time.Sleep(time.Until(sh.Expires))
	// Eight servers, each with a client of its own.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range 8 {
		st := NewStore(etcdtest.Connect(t, etcdtest.SharedEndpoints(t)...), s.Keys().Prefix(), etcdtest.Logger())
		actor := "server " + string(rune('a'+i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ended, err := st.EndShift(ctx, sh.ID, regions.ShiftExpired, "", By(actor))
			if err != nil {
				t.Error(err)
			}
			if ended {
				mu.Lock()
				winners = append(winners, actor)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("recorded by %v, want one", winners)
	}
	var expires []AuditRecord
	for _, r := range auditLog(t, s) {
		if r.Action == "expire" {
			expires = append(expires, r)
		}
	}
	got, _, _ := s.GetShift(ctx, sh.ID)
	if len(expires) != 1 || expires[0].Actor != winners[0] || got.Ended == nil || got.Ended.By != winners[0] || !got.Ended.At.Equal(sh.Expires.UTC()) {
		t.Fatalf("audit %+v, shift %+v", expires, got.Ended)
	}
	// Pruned once it ended before the cut.
	if n, err := s.PruneShifts(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if _, _, err := s.GetShift(ctx, sh.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after prune: %v", err)
	}
}

// runServerParts runs what a test needs of one server: a Live fed by a watcher, its
// clock, and its shift keeper.
func runServerParts(t *testing.T, s *Store, actor string) *Live {
	t.Helper()
	l := NewLive(filepath.Join(t.TempDir(), "state.json"), regions.SnapshotOptions{}, etcdtest.Logger(), nil)
	w := fastWatcher(etcdtest.Connect(t, etcdtest.SharedEndpoints(t)...), s.Keys().Prefix(), etcdtest.Logger())
	k := NewShiftKeeper(NewStore(etcdtest.Connect(t, etcdtest.SharedEndpoints(t)...), s.Keys().Prefix(), etcdtest.Logger()), l, actor, etcdtest.Logger())
	runParts(t, func(ctx context.Context) error { return w.RunLive(ctx, l) }, l.Run, k.Run)
	return l
}

// TestShiftExpiresOnTwoServers: two servers following one etcd apply a
// shift, stop applying it at its expiry by themselves, and one of them
// records the expiry, once.
func TestShiftExpiresOnTwoServers(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := shiftStore(t)
	lives := []*Live{runServerParts(t, s, "server a"), runServerParts(t, s, "server b")}
	share := func(l *Live) float64 {
		snap := l.Current()
		if snap == nil {
			return -1
		}
		v := snap.ServiceByName("www.gslb.example.")
		if v == nil {
			return -1
		}
		sh, _ := snap.ExpectedShares(v, regions.QTypeA)
		return sh.Regions["eu-west"]
	}
	for _, l := range lives {
		etcdtest.WaitUntil(t, "the services served", func() bool { return share(l) == 0.5 })
	}
	sh := drainFor("www.gslb.example.", "eu-west", 1500*time.Millisecond)
	if _, err := s.CreateShift(ctx, sh, By("alice")); err != nil {
		t.Fatal(err)
	}
	for _, l := range lives {
		etcdtest.WaitUntil(t, "the drain applied", func() bool { return share(l) == 0 })
	}
	for i, l := range lives {
		// The answers change back at the expiry, before any write.
		for {
			ch := l.Changed()
			if share(l) == 0.5 {
				break
			}
			select {
			case <-ch:
			case <-time.After(etcdtest.WaitLimit):
				t.Fatalf("server %d still drains eu-west", i)
			}
		}
		if late := time.Since(sh.Expires); late < 0 || late > time.Second {
			t.Errorf("server %d stopped applying the shift %v after its expiry", i, late)
		}
	}
	etcdtest.WaitUntil(t, "the expiry recorded", func() bool {
		got, _, err := s.GetShift(ctx, sh.ID)
		return err == nil && got.Ended != nil
	})
	for _, l := range lives {
		etcdtest.WaitUntil(t, "the recorded end served", func() bool {
			x := l.Current().State().Shifts[sh.ID]
			return x != nil && x.Ended != nil
		})
	}
	var actors []string
	for _, r := range auditLog(t, s) {
		if r.Action == "expire" && r.Name == sh.ID {
			actors = append(actors, r.Actor)
		}
	}
	if len(actors) != 1 || !slices.Contains([]string{"server a", "server b"}, actors[0]) {
		t.Fatalf("expiry audited by %v, want one server", actors)
	}
}

// TestShiftRevertRecorded: a guard that trips in the served snapshot is
// recorded as a revert with its reason.
func TestShiftRevertRecorded(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := shiftStore(t)
	l := runServerParts(t, s, "server a")
	etcdtest.WaitUntil(t, "the services served", func() bool { return l.Current() != nil && l.Current().ServiceByName("www.gslb.example.") != nil })
	sh := drainFor("www.gslb.example.", "eu-west", time.Hour)
	sh.RevertIf = &regions.ShiftGuard{Unhealthy: true}
	sh.Baseline = l.Current().ShiftBaseline(sh)
	if _, err := s.CreateShift(ctx, sh, By("alice")); err != nil {
		t.Fatal(err)
	}
	// us-east, which takes eu-west's traffic, goes down.
	lease, err := s.c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "ap-ne", Started: time.Now()}, lease.ID); err != nil {
		t.Fatal(err)
	}
	rep := upReport("us-east", "p1", "192.0.2.2")
	rep.VIPs[0].Up = false
	if _, err := s.PutHealthReport(ctx, rep, lease.ID); err != nil {
		t.Fatal(err)
	}
	etcdtest.WaitUntil(t, "the revert recorded", func() bool {
		got, _, err := s.GetShift(ctx, sh.ID)
		return err == nil && got.Ended != nil
	})
	got, _, _ := s.GetShift(ctx, sh.ID)
	if got.Ended.How != regions.ShiftReverted || got.Ended.By != "server a" || got.Ended.Detail != "unhealthy: region us-east has 0 of 1 VIPs healthy, 1 when the shift was made" {
		t.Fatalf("%+v", got.Ended)
	}
	if rec := auditLog(t, s)[0]; rec.Action != "revert" || rec.Name != sh.ID {
		t.Fatalf("audit %+v", rec)
	}
}

// TestShiftPersisted: the state file keeps the shifts, so a server
// restarted without etcd applies and expires them.
func TestShiftPersisted(t *testing.T) {
	st := fullState()
	now := time.Now().UTC().Truncate(time.Second)
	st.Shifts["a1"] = &regions.Shift{ID: "a1", Service: "www.gslb.example.", Drain: "eu-west", CreatedBy: "alice", Created: now, Expires: now.Add(time.Hour)}
	st.Shifts["bad"] = &regions.Shift{ID: "other"}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := SaveState(path, st, now); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := saved.State.Shifts["a1"]; got == nil || got.Drain != "eu-west" || !got.Expires.Equal(now.Add(time.Hour)) || saved.State.Shifts["bad"] != nil {
		t.Fatalf("shifts %+v", saved.State.Shifts)
	}
	if !slices.ContainsFunc(saved.State.Problems, func(p string) bool { return p == `shifts/bad: entry does not match its name "bad"` }) {
		t.Fatalf("problems %v", saved.State.Problems)
	}
}
