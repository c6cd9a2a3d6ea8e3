package store

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

func newTestStore(t testing.TB) *Store {
	return NewStore(etcdtest.Shared(t), etcdtest.Prefix(t), etcdtest.Logger())
}

func conflictAt(t *testing.T, err error, want int64) {
	t.Helper()
	var ce *ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want a ConflictError", err)
	}
	if ce.Current != want {
		t.Fatalf("conflict current revision %d, want %d", ce.Current, want)
	}
}

// TestStoreRegionCRUD runs its steps in order against one region.
func TestStoreRegionCRUD(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	var revs []int64 // mod revision after each successful write
	cur := func() int64 { return revs[len(revs)-1] }
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"get missing", func(t *testing.T) {
			if _, _, err := s.GetRegion(ctx, "eu-west"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}},
		{"update missing with If-Match", func(t *testing.T) {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfRevision(5))
			conflictAt(t, err, 0)
		}},
		{"create", func(t *testing.T) {
			rev, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent())
			if err != nil || rev <= 0 {
				t.Fatalf("rev %d, err %v", rev, err)
			}
			revs = append(revs, rev)
		}},
		{"get", func(t *testing.T) {
			r, rev, err := s.GetRegion(ctx, "eu-west")
			if err != nil || rev != cur() || !reflect.DeepEqual(r, testRegion("eu-west", 1)) {
				t.Fatalf("got %+v at %d (%v), want revision %d", r, rev, err, cur())
			}
		}},
		{"create again is a conflict", func(t *testing.T) {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 9), IfAbsent())
			conflictAt(t, err, cur())
		}},
		{"update with If-Match", func(t *testing.T) {
			rev, err := s.PutRegion(ctx, testRegion("eu-west", 2), IfRevision(cur()))
			if err != nil || rev <= cur() {
				t.Fatalf("rev %d, err %v", rev, err)
			}
			revs = append(revs, rev)
		}},
		{"update with a stale If-Match", func(t *testing.T) {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 3), IfRevision(revs[0]))
			conflictAt(t, err, cur())
			r, _, _ := s.GetRegion(ctx, "eu-west")
			if r.VIPs[0] != netip.MustParseAddr("192.0.2.2") {
				t.Fatalf("stale write went through: %v", r.VIPs)
			}
		}},
		{"unconditional update", func(t *testing.T) {
			rev, err := s.PutRegion(ctx, testRegion("eu-west", 4), Always)
			if err != nil {
				t.Fatal(err)
			}
			revs = append(revs, rev)
		}},
		{"list", func(t *testing.T) {
			if _, err := s.PutRegion(ctx, testRegion("ap-south", 5), IfAbsent()); err != nil {
				t.Fatal(err)
			}
			list, rev, err := s.ListRegions(ctx)
			if err != nil || len(list) != 2 || list[0].Name != "ap-south" || list[1].Name != "eu-west" || rev <= cur() {
				t.Fatalf("list %v at %d, err %v", list, rev, err)
			}
		}},
		{"delete with a stale If-Match", func(t *testing.T) {
			err := s.DeleteRegion(ctx, "eu-west", IfRevision(revs[0]))
			conflictAt(t, err, cur())
		}},
		{"delete with If-Match", func(t *testing.T) {
			if err := s.DeleteRegion(ctx, "eu-west", IfRevision(cur())); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.GetRegion(ctx, "eu-west"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after delete: %v", err)
			}
		}},
		{"delete missing", func(t *testing.T) {
			if err := s.DeleteRegion(ctx, "eu-west", Always); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return
		}
	}
}

func TestStoreServiceCRUD(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	var rev int64
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"create", func(t *testing.T) {
			var err error
			if rev, err = s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), IfAbsent()); err != nil {
				t.Fatal(err)
			}
		}},
		{"stored under the canonical name", func(t *testing.T) {
			resp, err := s.c.Get(ctx, s.Keys().Prefix()+"services/www.gslb.example.")
			if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != rev {
				t.Fatalf("key: %v %v", resp, err)
			}
		}},
		{"get in any case, without the dot", func(t *testing.T) {
			svc, got, err := s.GetService(ctx, "WWW.Gslb.Example")
			if err != nil || got != rev || !reflect.DeepEqual(svc, testService("www.gslb.example.", "eu-west", "us-east")) {
				t.Fatalf("got %+v at %d, %v", svc, got, err)
			}
		}},
		{"create again is a conflict", func(t *testing.T) {
			_, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west"), IfAbsent())
			conflictAt(t, err, rev)
		}},
		{"update with If-Match", func(t *testing.T) {
			n, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west"), IfRevision(rev))
			if err != nil {
				t.Fatal(err)
			}
			rev = n
		}},
		{"list", func(t *testing.T) {
			if _, err := s.PutService(ctx, testService("api.gslb.example.", "us-east"), IfAbsent()); err != nil {
				t.Fatal(err)
			}
			list, _, err := s.ListServices(ctx)
			if err != nil || len(list) != 2 || list[0].Name != "api.gslb.example." || len(list[1].Regions) != 1 {
				t.Fatalf("list %+v, %v", list, err)
			}
		}},
		{"delete with a stale If-Match", func(t *testing.T) {
			conflictAt(t, s.DeleteService(ctx, "www.gslb.example.", IfRevision(rev-1)), rev)
		}},
		{"delete", func(t *testing.T) {
			if err := s.DeleteService(ctx, "www.gslb.example", IfRevision(rev)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteService(ctx, "www.gslb.example", Always); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			return
		}
	}
}

// TestStoreValidation sends every kind of invalid write through the store
// API: each is refused with ErrInvalid and nothing in etcd changes.
func TestStoreValidation(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	seedOne(t, s)
	s.SetNameCheck(func(fqdn string) error {
		if !strings.HasSuffix(fqdn, ".gslb.example.") {
			return errors.New("not in any served zone")
		}
		return nil
	})
	t.Cleanup(func() { s.SetNameCheck(nil) })

	region := func(f func(r *regions.Region)) func() error {
		return func() error {
			r := testRegion("eu-west", 1)
			f(r)
			_, err := s.PutRegion(ctx, r, Always)
			return err
		}
	}
	service := func(f func(s *regions.Service)) func() error {
		return func() error {
			svc := testService("www.gslb.example.", "eu-west")
			f(svc)
			_, err := s.PutService(ctx, svc, Always)
			return err
		}
	}
	lease, err := s.c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "eu-west"}, lease.ID); err != nil {
		t.Fatal(err)
	}
	report := func(f func(h *regions.HealthReport)) func() error {
		return func() error {
			h := upReport("eu-west", "p1", "192.0.2.1")
			f(h)
			_, err := s.PutHealthReport(ctx, h, lease.ID)
			return err
		}
	}
	cases := []struct {
		name, want string
		write      func() error
	}{
		{"region vip not an address", "vips[0]: not an IP address", region(func(r *regions.Region) { r.VIPs = []netip.Addr{{}} })},
		{"region vip multicast", "not a unicast address", region(func(r *regions.Region) { r.VIPs = []netip.Addr{netip.MustParseAddr("224.0.0.1")} })},
		{"region without vips", "at least one address", region(func(r *regions.Region) { r.VIPs = nil })},
		{"region name", "name:", region(func(r *regions.Region) { r.Name = "EU West" })},
		{"region latitude", "location.lat", region(func(r *regions.Region) { r.Location.Lat = 91 })},
		{"region country", "location.country", region(func(r *regions.Region) { r.Location.Country = "XX" })},
		{"region check type", "check.type", region(func(r *regions.Region) { r.Check.Type = "icmp" })},
		{"region check port", "check.port", region(func(r *regions.Region) { r.Check.Port = 0 })},
		{"service unknown region", `unknown region "mars-1"`, service(func(s *regions.Service) {
			s.Regions = append(s.Regions, regions.ServiceRegion{Region: "mars-1", Weight: 1})
		})},
		{"service weight too large", "weight", service(func(s *regions.Service) { s.Regions[0].Weight = regions.MaxWeight + 1 })},
		{"service ttl zero", "ttl", service(func(s *regions.Service) { s.TTL = 0 })},
		{"service ttl too long", "ttl", service(func(s *regions.Service) { s.TTL = regions.MaxTTL + 1 })},
		{"service name not canonical", "lower case and fully qualified", service(func(s *regions.Service) { s.Name = "WWW.gslb.example" })},
		{"service name outside every zone", "not in any served zone", service(func(s *regions.Service) { s.Name = "www.other.example." })},
		{"service policy", "policy", service(func(s *regions.Service) { s.Policy = "random" })},
		{"service geo without map", "geo map", service(func(s *regions.Service) { s.Policy = regions.PolicyGeo })},
		{"service fallback without addresses", "all_down.addresses", service(func(s *regions.Service) { s.AllDown.Mode = regions.AllDownFallback })},
		{"weights for an unknown region", "weights.mars-1", func() error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"mars-1": 1}, Always)
			return err
		}},
		{"weight too large", "weight", func() error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": regions.MaxWeight + 1}, Always)
			return err
		}},
		{"no weights", "no weights", func() error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", nil, Always)
			return err
		}},
		{"health report region", "region", report(func(h *regions.HealthReport) { h.Region = "EU" })},
		{"health report prober", "prober", report(func(h *regions.HealthReport) { h.Prober = "a/b" })},
		{"health report rtt", "rtt", report(func(h *regions.HealthReport) { h.VIPs[0].RTT = -1 })},
		{"health report vip listed twice", "listed twice", report(func(h *regions.HealthReport) { h.VIPs = append(h.VIPs, h.VIPs[0]) })},
		{"health report without a lease", "no lease", func() error {
			_, err := s.PutHealthReport(ctx, upReport("eu-west", "p1", "192.0.2.1"), clientv3.NoLease)
			return err
		}},
		{"prober id", "id", func() error {
			return s.RegisterProber(ctx, &regions.ProberInfo{ID: "", Region: "eu-west"}, lease.ID)
		}},
		{"prober region", "region", func() error {
			return s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "Europe"}, lease.ID)
		}},
		{"prober without a lease", "no lease", func() error {
			return s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "eu-west"}, clientv3.NoLease)
		}},
		{"latency table bad line", "line 2", func() error {
			_, err := s.ImportLatency(ctx, strings.NewReader("192.0.2.0/24,eu-west,10\n198.51.100.0/24,eu-west,fast\n"))
			return err
		}},
		{"latency table empty", "no entries", func() error {
			_, err := s.ImportLatency(ctx, strings.NewReader("# nothing\n"))
			return err
		}},
		{"negative revision", "revision -2", func() error {
			_, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfRevision(-2))
			return err
		}},
		{"revision and absent together", "both a revision and an absent key", func() error {
			_, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west"), Cond{Revision: 3, Absent: true})
			return err
		}},
		{"delete if absent", "a delete cannot require an absent key", func() error {
			return s.DeleteRegion(ctx, "eu-west", IfAbsent())
		}},
		{"weights if absent", "service that exists", func() error {
			_, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 1}, IfAbsent())
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := keyRevs(t, s.c, s.Keys().Prefix())
			err := tc.write()
			if !errors.Is(err, regions.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, tc.want)
			}
			if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
				t.Fatalf("etcd changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestStoreDeleteRegionInUse(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"www.gslb.example.", "api.gslb.example."} {
		if _, err := s.PutService(ctx, testService(name, "eu-west", "us-east"), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	err := s.DeleteRegion(ctx, "eu-west", Always)
	var iu *InUseError
	if !errors.Is(err, ErrInUse) || !errors.As(err, &iu) || !slices.Equal(iu.Services, []string{"api.gslb.example.", "www.gslb.example."}) {
		t.Fatalf("err = %v, want ErrInUse naming both services", err)
	}
	if !strings.Contains(err.Error(), "www.gslb.example.") {
		t.Fatalf("error does not name the service: %v", err)
	}
	if _, _, err := s.GetRegion(ctx, "eu-west"); err != nil {
		t.Fatalf("region gone after a refused delete: %v", err)
	}
	for _, name := range []string{"www.gslb.example.", "api.gslb.example."} {
		if _, err := s.PutService(ctx, testService(name, "us-east"), Always); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRegion(ctx, "eu-west", Always); err != nil {
		t.Fatalf("delete of an unused region: %v", err)
	}
}

// TestStoreServiceVsRegionDelete interleaves a service write and a delete
// of the region it names, both ways round, at the point between each
// write's reads and its transaction; then races them freely. A service
// never ends up naming a deleted region.
func TestStoreServiceVsRegionDelete(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	cases := []struct {
		name string
		// first runs and competes from inside second's hook.
		first, second string
		wantPut       error // for the service write
		wantDelete    error
	}{
		{"delete lands while the service write is in flight", "put-service", "delete-region", regions.ErrInvalid, nil},
		{"service write lands while the delete is in flight", "delete-region", "put-service", nil, ErrInUse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			seedRegions(t, s, []string{"eu-west", "us-east"})
			put := func() error {
				_, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), IfAbsent())
				return err
			}
			del := func() error { return s.DeleteRegion(ctx, "eu-west", Always) }
			var putErr, delErr error
			var fired atomic.Bool
			s.testHookBeforeTxn = func(op string) {
				if op != tc.first || !fired.CompareAndSwap(false, true) {
					return
				}
				// The competing write runs to completion here, between the
				// first write's reads and its transaction.
				if tc.second == "delete-region" {
					delErr = del()
				} else {
					putErr = put()
				}
			}
			if tc.first == "put-service" {
				putErr = put()
			} else {
				delErr = del()
			}
			if !errors.Is(putErr, tc.wantPut) || !errors.Is(delErr, tc.wantDelete) {
				t.Fatalf("put: %v (want %v); delete: %v (want %v)", putErr, tc.wantPut, delErr, tc.wantDelete)
			}
			checkNoDanglingService(t, s)
		})
	}

	t.Run("free race", func(t *testing.T) {
		s := newTestStore(t)
		if _, err := s.PutRegion(ctx, testRegion("us-east", 2), IfAbsent()); err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]int{}
		for i := range 20 {
			region := fmt.Sprintf("r%d", i)
			name := fmt.Sprintf("s%d.gslb.example.", i)
			if _, err := s.PutRegion(ctx, testRegion(region, 1), IfAbsent()); err != nil {
				t.Fatal(err)
			}
			var putErr, delErr error
			var wg sync.WaitGroup
			wg.Go(func() { _, putErr = s.PutService(ctx, testService(name, region, "us-east"), IfAbsent()) })
			wg.Go(func() { delErr = s.DeleteRegion(ctx, region, Always) })
			wg.Wait()
			switch {
			case putErr == nil && errors.Is(delErr, ErrInUse):
				outcomes["service first"]++
			case errors.Is(putErr, regions.ErrInvalid) && delErr == nil:
				outcomes["delete first"]++
			default:
				t.Fatalf("round %d: put %v, delete %v", i, putErr, delErr)
			}
		}
		checkNoDanglingService(t, s)
		t.Logf("outcomes: %v", outcomes)
	})
}

func checkNoDanglingService(t *testing.T, s *Store) {
	t.Helper()
	ctx := etcdtest.Ctx(t)
	regions, _, err := s.ListRegions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range regions {
		have[r.Name] = true
	}
	services, _, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range services {
		for _, sr := range svc.Regions {
			if !have[sr.Region] {
				t.Errorf("service %s names deleted region %s", svc.Name, sr.Region)
			}
		}
	}
}

func TestStoreSetWeights(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := s.PutService(ctx, testService("www.gslb.example.", "eu-west", "us-east"), IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	weights := func() []uint32 {
		svc, _, err := s.GetService(ctx, "www.gslb.example.")
		if err != nil {
			t.Fatal(err)
		}
		var w []uint32
		for _, sr := range svc.Regions {
			w = append(w, sr.Weight)
		}
		return w
	}

	t.Run("with If-Match", func(t *testing.T) {
		n, err := s.SetWeights(ctx, "www.gslb.example", map[string]uint32{"eu-west": 0}, IfRevision(rev))
		if err != nil || n <= rev {
			t.Fatalf("rev %d, %v", n, err)
		}
		if w := weights(); !slices.Equal(w, []uint32{0, 10}) {
			t.Fatalf("weights %v", w)
		}
		_, err = s.SetWeights(ctx, "www.gslb.example", map[string]uint32{"eu-west": 5}, IfRevision(rev))
		conflictAt(t, err, n)
		rev = n
	})
	t.Run("reapplied over a concurrent edit", func(t *testing.T) {
		var fired atomic.Bool
		s.testHookBeforeTxn = func(op string) {
			if !fired.CompareAndSwap(false, true) {
				return
			}
			// Someone changes the TTL between our read and write.
			svc, r, _ := s.GetService(ctx, "www.gslb.example.")
			svc.TTL = 60
			if _, err := s.PutService(ctx, svc, IfRevision(r)); err != nil {
				t.Error(err)
			}
		}
		defer func() { s.testHookBeforeTxn = nil }()
		if _, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"us-east": 7}, Always); err != nil {
			t.Fatal(err)
		}
		svc, _, _ := s.GetService(ctx, "www.gslb.example.")
		if svc.TTL != 60 || !slices.Equal(weights(), []uint32{0, 7}) {
			t.Fatalf("lost an update: ttl %d, weights %v", svc.TTL, weights())
		}
	})
	t.Run("unknown service", func(t *testing.T) {
		if _, err := s.SetWeights(ctx, "nope.gslb.example.", map[string]uint32{"eu-west": 1}, Always); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

// registered grants a lease of 30 s and registers prober p1 under it.
func registered(t *testing.T, s *Store) *clientv3.LeaseGrantResponse {
	t.Helper()
	ctx := etcdtest.Ctx(t)
	lease, err := s.c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterProber(ctx, &regions.ProberInfo{ID: "p1", Region: "eu-west", Started: time.Unix(1700000000, 0).UTC()}, lease.ID); err != nil {
		t.Fatal(err)
	}
	return lease
}

func TestStoreLeasedEntries(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	lease := registered(t, s)
	if _, err := s.PutHealthReport(ctx, upReport("eu-west", "p1", "192.0.2.1"), lease.ID); err != nil {
		t.Fatal(err)
	}
	other, err := s.c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, prober string
		lease        clientv3.LeaseID
	}{
		{"unregistered prober", "p2", lease.ID},
		{"registered under another lease", "p1", other.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := keyRevs(t, s.c, s.Keys().Prefix())
			if _, err := s.PutHealthReport(ctx, upReport("eu-west", tc.prober, "192.0.2.1"), tc.lease); !errors.Is(err, ErrNotRegistered) {
				t.Fatalf("err = %v, want ErrNotRegistered", err)
			}
			if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
				t.Fatalf("a refused report changed etcd: %v -> %v", before, after)
			}
		})
	}
	keys := []string{s.Keys().Health("eu-west", "p1"), s.Keys().Prober("p1")}
	for _, k := range keys {
		resp, err := s.c.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != lease.ID {
			t.Fatalf("%s: %v %v", k, resp, err)
		}
	}
	if _, err := s.c.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if got := keyRevs(t, s.c, s.Keys().Prefix()); len(got) != 0 {
		t.Fatalf("entries outlive their lease: %v", got)
	}
}

func TestStoreCompact(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	rev, err := s.PutRegion(ctx, testRegion("eu-west", 1), IfAbsent())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRegion(ctx, testRegion("eu-west", 2), Always); err != nil {
		t.Fatal(err)
	}
	crev, err := s.Compact(ctx)
	if err != nil || crev <= rev {
		t.Fatalf("compact at %d: %v", crev, err)
	}
	if _, err := s.c.Get(ctx, s.Keys().Region("eu-west"), clientv3.WithRev(rev)); err == nil {
		t.Fatal("history before the compaction is still readable")
	}
}

// TestPutHealthReports: a prober's reports go in one transaction (one
// revision) up to etcd's limits, in several beyond them, each only while
// the prober is registered under the lease; an invalid report or another
// prober's writes nothing.
func TestPutHealthReports(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	lease := registered(t, s)
	batch := func(n int) []*regions.HealthReport {
		var reps []*regions.HealthReport
		for i := range n {
			reps = append(reps, upReport(fmt.Sprintf("r%03d", i), "p1", "192.0.2.1"))
		}
		return reps
	}
	t.Run("one transaction", func(t *testing.T) {
		n, rev, err := s.PutHealthReports(ctx, batch(50), lease.ID)
		if err != nil || n != 50 {
			t.Fatalf("%d written: %v", n, err)
		}
		got := keyRevs(t, s.c, s.Keys().HealthAll())
		if len(got) != 50 {
			t.Fatalf("%d reports in etcd", len(got))
		}
		for k, r := range got {
			if r != rev {
				t.Fatalf("%s at revision %d, the batch at %d", k, r, rev)
			}
		}
	})
	t.Run("past the limits", func(t *testing.T) {
		n, rev, err := s.PutHealthReports(ctx, batch(reportsMaxOps+10), lease.ID)
		if err != nil || n != reportsMaxOps+10 {
			t.Fatalf("%d written: %v", n, err)
		}
		revs := map[int64]int{}
		for _, r := range keyRevs(t, s.c, s.Keys().HealthAll()) {
			revs[r]++
		}
		if len(revs) != 2 || revs[rev] != 10 {
			t.Fatalf("revisions %v: want two transactions, the last (%d) of 10", revs, rev)
		}
	})
	for _, tc := range []struct {
		name string
		reps []*regions.HealthReport
		want error
	}{
		{"another prober's report", append(batch(2), upReport("r009", "p2", "192.0.2.1")), regions.ErrInvalid},
		{"an invalid report", append(batch(2), upReport("R 9", "p1", "192.0.2.1")), regions.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := keyRevs(t, s.c, s.Keys().Prefix())
			if n, _, err := s.PutHealthReports(ctx, tc.reps, lease.ID); !errors.Is(err, tc.want) || n != 0 {
				t.Fatalf("%d written, err = %v, want %v", n, err, tc.want)
			}
			if after := keyRevs(t, s.c, s.Keys().Prefix()); !maps.Equal(before, after) {
				t.Fatal("a refused batch changed etcd")
			}
		})
	}
	t.Run("not registered", func(t *testing.T) {
		other, err := s.c.Grant(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		if n, _, err := s.PutHealthReports(ctx, batch(3), other.ID); !errors.Is(err, ErrNotRegistered) || n != 0 {
			t.Fatalf("%d written, err = %v", n, err)
		}
	})
}
