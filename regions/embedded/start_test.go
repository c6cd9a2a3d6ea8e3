package embedded_test

import (
	"testing"

	"github.com/meridian-gslb/meridian/internal/etcdtest"
	"github.com/meridian-gslb/meridian/regions/embedded"
)

// TestStart reopens a data directory: what was written is still there,
// and Close may be called twice.
func TestStart(t *testing.T) {
	m := etcdtest.NewMember(t, "reopen")
	cfg := m.Config()
	ctx := etcdtest.Ctx(t)
	var rev int64
	for round := range 2 {
		e, err := embedded.Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if eps := e.Endpoints(); len(eps) != 1 || eps[0] != m.ClientURL() {
			t.Fatalf("endpoints %v, want %s", eps, m.ClientURL())
		}
		c := etcdtest.Connect(t, e.Endpoints()...)
		if round == 0 {
			resp, err := c.Put(ctx, "/meridian/regions/eu-west", "{}")
			if err != nil {
				t.Fatal(err)
			}
			rev = resp.Header.Revision
		} else if resp, err := c.Get(ctx, "/meridian/regions/eu-west"); err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != rev {
			t.Fatalf("after reopening: %v (%v), want the key at revision %d", resp, err, rev)
		}
		c.Close()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
