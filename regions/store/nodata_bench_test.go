package store

import (
	"encoding/json"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
)

// BenchmarkDrain10k drains and undrains one of three regions with
// 10,000 services stored, a third of them listing it: the cost of the
// NODATA guard of a drain at the size of a large installation. The
// services are written as a server without the services' mark writes
// them ("no mark": the guard compares the services' prefix); then the
// mark is created ("mark"); then a watcher's State is followed too
// ("followed").
func BenchmarkDrain10k(b *testing.B) {
	ctx := etcdtest.Ctx(b)
	c := etcdtest.Shared(b)
	s := NewStore(c, etcdtest.Prefix(b), nil)
	names := []string{"eu-west", "us-east", "ap-south"}
	seedRegions(b, s, names)
	if _, err := c.Delete(ctx, s.keys.ServicesMark()); err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	const batch = 100 // etcd's default limit on the operations of one txn is 128
	for i := 0; i < n; i += batch {
		ops := make([]clientv3.Op, 0, batch)
		for j := i; j < i+batch; j++ {
			svc := testService(fmt.Sprintf("s%05d.gslb.example.", j), names[j%3], names[(j+1)%3])
			val, err := json.Marshal(svc)
			if err != nil {
				b.Fatal(err)
			}
			ops = append(ops, clientv3.OpPut(s.keys.Service(svc.Name), string(val)))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		before func(b *testing.B)
	}{
		{"no mark", func(*testing.B) {}},
		{"mark", func(b *testing.B) {
			if err := s.EnsureServicesMark(ctx); err != nil {
				b.Fatal(err)
			}
		}},
		{"followed", func(b *testing.B) {
			follow(b, s, NewWatcher(c, s.keys.Prefix(), nil))
		}},
	}
	for _, st := range steps {
		st.before(b)
		b.Run(st.name, func(b *testing.B) {
			for i := range b.N {
				if _, err := s.SetDrained(ctx, "eu-west", i%2 == 0, Always); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
