package store

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/meridian-gslb/meridian/api/apitypes"
	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// TestNoDataGuard: writes after which a service would answer NODATA to a
// type it answers now are refused, dry runs included, and change
// nothing; with Force they are made and the change names the services.
func TestNoDataGuard(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	drained := func(name string, octet int) *regions.Region {
		r := testRegion(name, octet)
		r.Drained = true
		return r
	}
	v6only := func(name string, octet int) *regions.Region {
		r := testRegion(name, octet)
		r.VIPs = []netip.Addr{netip.MustParseAddr("2001:db8::1")}
		return r
	}
	cases := []struct {
		name string
		// write is the write under test, with the options given.
		write func(s *Store, opts ...WriteOption) error
		// lost is what the guard reports; nil: the write is allowed.
		lost []apitypes.NoData
	}{
		{"drain one of two regions", func(s *Store, opts ...WriteOption) error {
			_, err := s.SetDrained(ctx, "eu-west", true, Always, opts...)
			return err
		}, nil},
		{"drain the region a service answers from", func(s *Store, opts ...WriteOption) error {
			_, err := s.SetDrained(ctx, "us-east", true, Always, opts...)
			return err
		}, []apitypes.NoData{{Service: "solo.gslb.example.", Types: []string{"A"}, Reason: "every region it lists is drained or has weight 0"}}},
		{"a region put drained", func(s *Store, opts ...WriteOption) error {
			_, err := s.PutRegion(ctx, drained("us-east", 2), Always, opts...)
			return err
		}, []apitypes.NoData{{Service: "solo.gslb.example.", Types: []string{"A"}, Reason: "every region it lists is drained or has weight 0"}}},
		{"the last IPv4 VIP replaced by IPv6", func(s *Store, opts ...WriteOption) error {
			_, err := s.PutRegion(ctx, v6only("us-east", 2), Always, opts...)
			return err
		}, []apitypes.NoData{
			{Service: "solo.gslb.example.", Types: []string{"A"}, Reason: "no region it lists has an IPv4 VIP"},
		}},
		{"every weight 0", func(s *Store, opts ...WriteOption) error {
			_, err := s.ReplaceWeights(ctx, "www.gslb.example", map[string]uint32{}, Always, opts...)
			return err
		}, []apitypes.NoData{{Service: "www.gslb.example.", Types: []string{"A"}, Reason: "every region it lists is drained or has weight 0"}}},
		{"the last weight above 0 set to 0", func(s *Store, opts ...WriteOption) error {
			_, err := s.SetWeights(ctx, "solo.gslb.example", map[string]uint32{"us-east": 0}, Always, opts...)
			return err
		}, []apitypes.NoData{{Service: "solo.gslb.example.", Types: []string{"A"}, Reason: "every region it lists is drained or has weight 0"}}},
		{"one weight 0 of two", func(s *Store, opts ...WriteOption) error {
			_, err := s.SetWeights(ctx, "www.gslb.example", map[string]uint32{"eu-west": 0}, Always, opts...)
			return err
		}, nil},
		{"a new service with every weight 0", func(s *Store, opts ...WriteOption) error {
			svc := testService("new.gslb.example.", "eu-west")
			svc.Regions[0].Weight = 0
			_, err := s.PutService(ctx, svc, Always, opts...)
			return err
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			seedRegions(t, s, []string{"eu-west", "us-east"}, testService("www.gslb.example.", "eu-west", "us-east"), testService("solo.gslb.example.", "us-east"))
			before := keyRevs(t, s.c, s.keys.Prefix())
			for _, dry := range []bool{true, false} {
				var opts []WriteOption
				if dry {
					opts = append(opts, DryRun())
				}
				err := tc.write(s, opts...)
				var nd *NoDataError
				switch {
				case tc.lost == nil && err != nil:
					t.Fatalf("dry run %v: %v", dry, err)
				case tc.lost != nil && (!errors.As(err, &nd) || !errors.Is(err, ErrNoData)):
					t.Fatalf("dry run %v: %v, want a NoDataError", dry, err)
				case tc.lost != nil && !slices.EqualFunc(nd.Services, tc.lost, sameNoData):
					t.Fatalf("dry run %v: refused for %+v, want %+v", dry, nd.Services, tc.lost)
				}
			}
			if tc.lost == nil {
				return
			}
			if after := keyRevs(t, s.c, s.keys.Prefix()); !maps.Equal(before, after) {
				t.Fatalf("a refused write changed etcd:\n%v\n%v", before, after)
			}
			var ch Change
			if err := tc.write(s, Force(), Report(&ch)); err != nil {
				t.Fatalf("forced: %v", err)
			}
			if !ch.Changed || !slices.EqualFunc(ch.NoData, tc.lost, sameNoData) {
				t.Fatalf("forced change %+v, want changed with nodata %+v", ch, tc.lost)
			}
			recs, _, err := s.ListAudit(ctx, "", 1)
			if err != nil || len(recs) != 1 || !slices.EqualFunc(recs[0].NoData, tc.lost, sameNoData) {
				t.Fatalf("audit %+v %v: the forced write's record does not name the services", recs, err)
			}
		})
	}
}

func sameNoData(a, b apitypes.NoData) bool {
	return a.Service == b.Service && slices.Equal(a.Types, b.Types) && a.Reason == b.Reason
}

// TestNoDataGuardRace: two drains that are each harmless alone but
// together leave a service with no region; the guard's read set makes
// the second see the first, whichever way they interleave.
func TestNoDataGuardRace(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	seedRegions(t, s, []string{"eu-west", "us-east"}, testService("www.gslb.example.", "eu-west", "us-east"))
	var fired atomic.Bool
	var inner error
	s.testHookBeforeTxn = func(op string) {
		if op == "put-region" && fired.CompareAndSwap(false, true) {
			// The other drain runs to completion between this drain's
			// reads and its transaction.
			_, inner = s.SetDrained(context.WithoutCancel(ctx), "eu-west", true, Always)
		}
	}
	defer func() { s.testHookBeforeTxn = nil }()
	_, err := s.SetDrained(ctx, "us-east", true, Always)
	if inner != nil || !errors.Is(err, ErrNoData) {
		t.Fatalf("inner drain: %v; outer drain: %v (want ErrNoData)", inner, err)
	}
	for name, want := range map[string]bool{"eu-west": true, "us-east": false} {
		if r, _, err := s.GetRegion(ctx, name); err != nil || r.Drained != want {
			t.Fatalf("%s drained %v (%v), want %v", name, r.Drained, err, want)
		}
	}
}

// TestNoDataGuardFollowsServiceWrites: the guard of a drain sees the
// services written, changed and deleted since its previous use (it keeps
// the services it decoded and fetches only what changed).
func TestNoDataGuardFollowsServiceWrites(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := NewStore(etcdtest.Shared(t), etcdtest.Prefix(t), etcdtest.Logger())
	seedRegions(t, s, []string{"eu-west", "us-east"},
		testService("both.gslb.example.", "eu-west", "us-east"),
		testService("gone.gslb.example.", "us-east"))
	steps := []struct {
		name string
		// before is a service write made before the drain is tried.
		before func() error
		// refused names the services the drain of us-east is refused
		// for; empty: it is made (and then undone).
		refused []string
	}{
		{"a service only in us-east", func() error { return nil }, []string{"gone.gslb.example."}},
		{"that service deleted", func() error { return s.DeleteService(ctx, "gone.gslb.example.", Always) }, nil},
		{"a new service only in us-east", func() error {
			_, err := s.PutService(ctx, testService("new.gslb.example.", "us-east"), IfAbsent())
			return err
		}, []string{"new.gslb.example."}},
		{"it moved to both regions", func() error {
			_, err := s.PutService(ctx, testService("new.gslb.example.", "eu-west", "us-east"), Always)
			return err
		}, nil},
		{"a service changed to us-east only", func() error {
			_, err := s.PutService(ctx, testService("both.gslb.example.", "us-east"), Always)
			return err
		}, []string{"both.gslb.example."}},
	}
	for _, st := range steps {
		if err := st.before(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		_, err := s.SetDrained(ctx, "us-east", true, Always)
		var nd *NoDataError
		switch {
		case len(st.refused) == 0 && err != nil:
			t.Fatalf("%s: drain refused: %v", st.name, err)
		case len(st.refused) == 0:
			if _, err := s.SetDrained(ctx, "us-east", false, Always); err != nil {
				t.Fatalf("%s: undrain: %v", st.name, err)
			}
		case !errors.As(err, &nd):
			t.Fatalf("%s: got %v, want a NoDataError", st.name, err)
		default:
			var got []string
			for _, n := range nd.Services {
				got = append(got, n.Service)
			}
			if !slices.Equal(got, st.refused) {
				t.Fatalf("%s: refused for %v, want %v", st.name, got, st.refused)
			}
		}
	}
}
