package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// follow has s follow w (Store.Follow), runs w until the test ends and
// waits until w has delivered the services as of their mark: the guard
// may take them from w's State from then on. It returns the recorder of
// w's States and that State.
func follow(t testing.TB, s *Store, w *Watcher) (*recorder, *regions.State) {
	t.Helper()
	if err := s.Follow(w); err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	runWatcher(t, w, r)
	rev := markRev(t, s)
	return r, r.waitFor(t, "the services", func(st *regions.State) bool { return st.Revision >= rev })
}

// markRev is the services' mark's mod revision (0: absent).
func markRev(t testing.TB, s *Store) int64 {
	t.Helper()
	resp, err := s.c.Get(context.Background(), s.keys.ServicesMark())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].ModRevision
}

// TestServicesMarkFollowsServiceWrites: every kind of service write
// rewrites the mark in its own transaction (the mark's mod revision is
// the write's); region writes and writes that change nothing leave it.
func TestServicesMarkFollowsServiceWrites(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	seedRegions(t, s, []string{"eu-west", "us-east"}, testService("www.gslb.example.", "eu-west", "us-east"))
	writes := []struct {
		name string
		// write makes the write and returns its revision.
		write func() (int64, error)
		moves bool
	}{
		{"put", func() (int64, error) {
			return s.PutService(ctx, testService("api.gslb.example.", "eu-west"), IfAbsent())
		}, true},
		{"set weights", func() (int64, error) {
			return s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 5}, Always)
		}, true},
		{"replace weights", func() (int64, error) {
			return s.ReplaceWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 7, "us-east": 7}, Always)
		}, true},
		{"batch", func() (int64, error) {
			chs, err := s.PutServices(ctx, []*regions.Service{testService("a.gslb.example.", "eu-west"), testService("b.gslb.example.", "us-east")})
			if err != nil {
				return 0, err
			}
			return chs[1].Revision, nil
		}, true},
		{"delete", func() (int64, error) {
			if err := s.DeleteService(ctx, "a.gslb.example.", Always); err != nil {
				return 0, err
			}
			return markRev(t, s), nil
		}, true},
		{"put unchanged", func() (int64, error) {
			return s.PutService(ctx, testService("api.gslb.example.", "eu-west"), Always)
		}, false},
		{"region", func() (int64, error) {
			return s.PutRegion(ctx, testRegion("ap-ne", 9), IfAbsent())
		}, false},
		{"drain", func() (int64, error) {
			return s.SetDrained(ctx, "ap-ne", true, Always)
		}, false},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			before := markRev(t, s)
			rev, err := w.write()
			if err != nil {
				t.Fatal(err)
			}
			after := markRev(t, s)
			switch {
			case w.moves && (after == before || after != rev):
				t.Fatalf("mark at %d, then %d; the write's revision is %d", before, after, rev)
			case !w.moves && after != before:
				t.Fatalf("mark moved from %d to %d", before, after)
			}
		})
	}
}

// TestServicesMarkGuardsRegionWrites: a write that must fail if any
// service changed since it read them (a drain's NODATA guard, a region's
// delete, a shift's guard) still fails and reads again when a service is
// written between its reads and its transaction: with the services' mark;
// with the guard taking the services from a watcher's State (Follow); and
// with state written before the mark was kept, where the competing write
// does not touch the mark either.
func TestServicesMarkGuardsRegionWrites(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	usEastOnly := testService("www.gslb.example.", "us-east")
	guarded := []struct {
		name string
		// hook is the op name of the guarded write's transaction.
		hook  string
		write func(s *Store) error
		// competing is the service written in between; want the guarded
		// write's error then (nil: made anyway).
		competing *regions.Service
		want      error
	}{
		{"drain", "put-region", func(s *Store) error {
			_, err := s.SetDrained(ctx, "us-east", true, Always)
			return err
		}, testService("www.gslb.example.", "us-east"), ErrNoData},
		{"region put drained", "put-region", func(s *Store) error {
			r := testRegion("us-east", 2)
			r.Drained = true
			_, err := s.PutRegion(ctx, r, Always)
			return err
		}, usEastOnly, ErrNoData},
		{"drain, an unrelated service written", "put-region", func(s *Store) error {
			_, err := s.SetDrained(ctx, "us-east", true, Always)
			return err
		}, testService("other.gslb.example.", "eu-west"), nil},
		{"region delete", "delete-region", func(s *Store) error {
			return s.DeleteRegion(ctx, "spare", Always)
		}, testService("new.gslb.example.", "spare"), ErrInUse},
		{"shift", "create-shift", func(s *Store) error {
			_, err := s.CreateShift(ctx, &regions.Shift{Drain: "us-east", Expires: time.Now().Add(time.Hour)})
			return err
		}, usEastOnly, ErrNoData},
	}
	for _, mode := range []string{"", ", followed", ", no mark"} {
		legacy := mode == ", no mark"
		for _, g := range guarded {
			t.Run(g.name+mode, func(t *testing.T) {
				s := newTestStore(t)
				seedRegions(t, s, []string{"eu-west", "us-east", "spare"}, testService("www.gslb.example.", "eu-west", "us-east"))
				if mode == ", followed" {
					follow(t, s, fastWatcher(s.c, s.keys.Prefix(), etcdtest.Logger()))
				}
				if legacy {
					if _, err := s.c.Delete(ctx, s.keys.ServicesMark()); err != nil {
						t.Fatal(err)
					}
				}
				// The guard read the services once before: its cache is
				// warm, as on a server that drained before.
				for _, drained := range []bool{true, false} {
					if _, err := s.SetDrained(ctx, "spare", drained, Always); err != nil {
						t.Fatal(err)
					}
				}
				var attempts atomic.Int32
				var inner error
				s.testHookBeforeTxn = func(op string) {
					if op != g.hook || attempts.Add(1) != 1 {
						return
					}
					// The competing write lands between the guarded write's
					// reads and its transaction; in legacy state, as a
					// server that keeps no mark writes it.
					if legacy {
						val, err := json.Marshal(g.competing)
						if err == nil {
							_, err = s.c.Put(ctx, s.keys.Service(g.competing.Name), string(val))
						}
						inner = err
						return
					}
					_, inner = s.PutService(context.WithoutCancel(ctx), g.competing, Always)
				}
				err := g.write(s)
				s.testHookBeforeTxn = nil
				if inner != nil {
					t.Fatalf("competing write: %v", inner)
				}
				if g.want == nil && err != nil || g.want != nil && !errors.Is(err, g.want) {
					t.Fatalf("guarded write: %v, want %v", err, g.want)
				}
				if g.want == nil && attempts.Load() != 2 {
					// Made, but only on a second transaction: the first
					// found a service changed.
					t.Fatalf("%d transactions, want 2", attempts.Load())
				}
				if got := markRev(t, s); legacy != (got == 0) {
					t.Fatalf("mark at revision %d after the writes (legacy %v)", got, legacy)
				}
			})
		}
	}
}

// TestServicesGuardFollowed: the NODATA guard takes the services from
// the followed State only when the services' mark shows it holds every
// service stored; a State behind etcd, or one that lacks a service, is
// not trusted, and the services are read from etcd.
func TestServicesGuardFollowed(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	seedRegions(t, s, []string{"eu-west", "us-east"}, testService("www.gslb.example.", "eu-west", "us-east"), testService("solo.gslb.example.", "eu-west", "us-east"))
	if err := s.Follow(&Watcher{keys: s.keys, Subtree: s.keys.Regions()}); !errors.Is(err, regions.ErrInvalid) {
		t.Fatalf("following a watcher of the regions only: %v, want ErrInvalid", err)
	}
	r, before := follow(t, s, fastWatcher(s.c, s.keys.Prefix(), etcdtest.Logger()))
	// As many services as before, one changed: only the mark tells.
	if _, err := s.PutService(ctx, testService("solo.gslb.example.", "us-east"), Always); err != nil {
		t.Fatal(err)
	}
	current := r.waitFor(t, "the service changed", func(st *regions.State) bool { return st.Revision >= markRev(t, s) })
	lacking := current.Clone()
	delete(lacking.Services, "solo.gslb.example.")
	drainUSEast := func(s *Store) error {
		_, err := s.SetDrained(ctx, "us-east", true, Always)
		return err
	}
	// Without a watcher of its own, a store follows the State given.
	fixed := NewStore(s.c, s.keys.Prefix(), etcdtest.Logger())
	cases := []struct {
		name     string
		s        *Store
		followed *regions.State
		// fromEtcd: the services must have been read from etcd.
		fromEtcd bool
	}{
		{"current", s, nil, false},
		{"behind etcd", fixed, before, true},
		{"lacking a service", fixed, lacking, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.followed != nil {
				tc.s.svcCache.followed.Store(tc.followed)
			}
			var nd *NoDataError
			if err := drainUSEast(tc.s); !errors.As(err, &nd) || len(nd.Services) != 1 || nd.Services[0].Service != "solo.gslb.example." {
				t.Fatalf("drain: %v, want refused for solo.gslb.example.", err)
			}
			if read := tc.s.svcCache.rev > 0; read != tc.fromEtcd {
				t.Fatalf("services read from etcd: %v, want %v", read, tc.fromEtcd)
			}
		})
	}
}

// TestServicesMarkCreated: state written before the mark was kept gets
// one from the first service write, or from Bootstrap even when it
// creates nothing; the guard then compares it.
func TestServicesMarkCreated(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	d := &regions.Desired{Regions: []*regions.Region{testRegion("eu-west", 1)}, Services: []*regions.Service{testService("www.gslb.example.", "eu-west")}}
	makes := []struct {
		name string
		make func(s *Store) error
	}{
		{"bootstrap", func(s *Store) error {
			created, err := Bootstrap(ctx, s, d)
			if err == nil && len(created) != 0 {
				t.Errorf("bootstrap created %v over existing state", created)
			}
			return err
		}},
		{"service write", func(s *Store) error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 3}, Always)
			return err
		}},
	}
	for _, m := range makes {
		t.Run(m.name, func(t *testing.T) {
			s := newTestStore(t)
			if _, err := Bootstrap(ctx, s, d); err != nil {
				t.Fatal(err)
			}
			if _, err := s.c.Delete(ctx, s.keys.ServicesMark()); err != nil {
				t.Fatal(err)
			}
			_, rev, cmp, err := s.svcCache.at(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if pc := cmp.GetCompare(); string(pc.Key) != s.keys.Services() || string(pc.RangeEnd) != clientv3.GetPrefixRangeEnd(s.keys.Services()) || cmpModRev(cmp) != rev+1 {
				t.Fatalf("without a mark the guard compares %+v, want the services' prefix below %d", cmp, rev+1)
			}
			if err := m.make(s); err != nil {
				t.Fatal(err)
			}
			mr := markRev(t, s)
			if mr == 0 {
				t.Fatal("no mark")
			}
			_, _, cmp, err = s.svcCache.at(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if pc := cmp.GetCompare(); string(pc.Key) != s.keys.ServicesMark() || pc.RangeEnd != nil || cmpModRev(cmp) != mr {
				t.Fatalf("with a mark the guard compares %+v, want the mark at %d", cmp, mr)
			}
		})
	}
}

// cmpModRev is the mod revision a comparison compares with (0: it
// compares something else).
func cmpModRev(c clientv3.Cmp) int64 {
	if u, ok := c.GetCompare().TargetUnion.(*etcdserverpb.Compare_ModRevision); ok {
		return u.ModRevision
	}
	return 0
}
