package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions"
)

// TestPutServicesBatch: a batch of MaxBatch services goes through etcd's
// default request limits in groups, each service audited; applied again
// it writes nothing; a dry run writes nothing; an invalid service refuses
// the whole batch naming its index.
func TestPutServicesBatch(t *testing.T) {
	ctx := etcdtest.Ctx(t)
	s := newTestStore(t)
	for i, name := range []string{"eu-west", "us-east"} {
		if _, err := s.PutRegion(ctx, testRegion(name, i+1), IfAbsent()); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(weight uint32) []*regions.Service {
		var out []*regions.Service
		for i := range MaxBatch {
			svc := testService(fmt.Sprintf("s%04d.gslb.example.", i), "eu-west", "us-east")
			svc.Regions[0].Weight = weight + uint32(i%3)
			out = append(out, svc)
		}
		return out
	}
	count := func(changes []Change) (n int) {
		for _, ch := range changes {
			if ch.Changed {
				n++
			}
		}
		return n
	}

	dry, err := s.PutServices(ctx, batch(1), DryRun())
	if err != nil || count(dry) != MaxBatch {
		t.Fatalf("dry run: %d changes, %v", count(dry), err)
	}
	if list, _, _ := s.ListServices(ctx); len(list) != 0 {
		t.Fatalf("a dry run wrote %d services", len(list))
	}
	changes, err := s.PutServices(ctx, batch(1), By("ci"))
	if err != nil || count(changes) != MaxBatch {
		t.Fatalf("first apply: %d changes, %v", count(changes), err)
	}
	list, _, err := s.ListServices(ctx)
	if err != nil || len(list) != MaxBatch || changes[7].Revision == 0 || changes[7].Before != nil {
		t.Fatalf("%d services listed (%v), change %+v", len(list), err, changes[7])
	}
	if got, _, _ := s.GetService(ctx, "s0007.gslb.example."); got.Regions[0].Weight != 2 {
		t.Fatalf("stored %+v", got)
	}
	if recs, _, err := s.ListAudit(ctx, "", 10); err != nil || len(recs) != 10 || recs[0].Actor != "ci" || recs[0].Kind != "service" {
		t.Fatalf("audit: %v, %+v", err, recs)
	}

	again, err := s.PutServices(ctx, batch(1))
	if err != nil || count(again) != 0 {
		t.Fatalf("second apply: %d changes, %v", count(again), err)
	}
	next := batch(1)
	next[500].Regions[0].Weight = 99
	if changes, err = s.PutServices(ctx, next); err != nil || count(changes) != 1 || !changes[500].Changed {
		t.Fatalf("one changed: %d changes, %v", count(changes), err)
	}

	bad := batch(5)
	bad[7].Regions[1].Region = "nowhere"
	_, err = s.PutServices(ctx, bad)
	var be *BatchError
	if !errors.As(err, &be) || be.Index != 7 || !errors.Is(err, regions.ErrInvalid) {
		t.Fatalf("invalid service: %v", err)
	}
	if got, _, _ := s.GetService(ctx, "s0000.gslb.example."); got.Regions[0].Weight != 1 {
		t.Fatalf("a refused batch wrote: %+v", got)
	}
	if _, err := s.PutServices(ctx, append(batch(1), testService("x.gslb.example.", "eu-west"))); !errors.Is(err, regions.ErrInvalid) {
		t.Fatalf("more than MaxBatch: %v", err)
	}
}
