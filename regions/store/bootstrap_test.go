package store

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

const exampleState = "../../examples/state.yaml"

func TestBootstrap(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	d, err := regions.LoadDesired(exampleState)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"regions/eu-west", "regions/us-east", "regions/ap-northeast",
		"services/www.gslb.example.", "services/api.gslb.example.", "services/near.gslb.example."}

	steps := []struct {
		name   string
		before func(t *testing.T)
		want   []string
	}{
		{"creates everything, regions first", nil, all},
		{"second run creates nothing", nil, nil},
		{"existing entries are left alone", func(t *testing.T) {
			if _, err := s.PutRegion(ctx, testRegion("eu-west", 99), Always); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SetWeights(ctx, "www.gslb.example.", map[string]uint32{"eu-west": 0}, Always); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"a deleted entry comes back", func(t *testing.T) {
			if err := s.DeleteService(ctx, "near.gslb.example.", Always); err != nil {
				t.Fatal(err)
			}
		}, []string{"services/near.gslb.example."}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.before != nil {
				step.before(t)
			}
			before := keyRevs(t, s.c, s.Keys().Prefix())
			created, err := Bootstrap(ctx, s, d)
			if err != nil || !slices.Equal(created, step.want) {
				t.Fatalf("created %q (%v), want %q", created, err, step.want)
			}
			after := keyRevs(t, s.c, s.Keys().Prefix())
			for k, rev := range before {
				// A service created rewrites the services' mark.
				if after[k] != rev && (k != s.Keys().ServicesMark() || len(step.want) == 0) {
					t.Errorf("%s was changed", k)
				}
			}
		})
	}
	r, _, _ := s.GetRegion(ctx, "eu-west")
	svc, _, _ := s.GetService(ctx, "www.gslb.example.")
	if r.VIPs[0].String() != "192.0.2.99" || svc.Regions[0].Weight != 0 {
		t.Fatalf("bootstrap overwrote changes made through the store: %v, %v", r.VIPs, svc.Regions)
	}

	t.Run("refused by the name check", func(t *testing.T) {
		s := newTestStore(t)
		s.SetNameCheck(func(string) error { return errors.New("no zone serves it") })
		created, err := Bootstrap(ctx, s, d)
		if !errors.Is(err, regions.ErrInvalid) || !strings.Contains(err.Error(), "no zone serves it") {
			t.Fatalf("err = %v", err)
		}
		if len(created) != 3 {
			t.Fatalf("created %q, want the regions", created)
		}
	})
}
