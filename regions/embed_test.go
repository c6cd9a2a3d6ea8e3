package regions

import (
	"strings"
	"testing"
)

func TestLoopbackURL(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"127.0.0.1:2479", "http://127.0.0.1:2479", ""},
		{"http://127.0.0.2:2479", "http://127.0.0.2:2479", ""},
		{"[::1]:2479", "http://[::1]:2479", ""},
		{"http://127.0.0.1:2479/", "http://127.0.0.1:2479", ""},
		{"0.0.0.0:2479", "", "loopback addresses only"},
		{"192.0.2.1:2479", "", "loopback addresses only"},
		{"localhost:2479", "", "loopback addresses only"},
		{"127.0.0.1", "", "missing port"},
		{"127.0.0.1:", "", "no port"},
		{"https://127.0.0.1:2479", "", "want IP:port"},
		{"http://127.0.0.1:2479/x", "", "want IP:port"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			u, err := loopbackURL(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", u, err, tc.want)
			}
		})
	}
}

func TestEmbedConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		ec, err := embedConfig(EmbeddedConfig{Dir: "/x"})
		if err != nil {
			t.Fatal(err)
		}
		if ec.Name != "meridian" || ec.ListenClientUrls[0].Host != DefaultEmbeddedClientURL ||
			ec.ListenPeerUrls[0].Host != DefaultEmbeddedPeerURL || ec.InitialCluster != "meridian=http://"+DefaultEmbeddedPeerURL ||
			ec.LogLevel != "warn" || ec.AutoCompactionRetention == "0" {
			t.Fatalf("config %+v", ec)
		}
	})
	bad := []struct {
		name string
		cfg  EmbeddedConfig
		want string
	}{
		{"no directory", EmbeddedConfig{}, "no data directory"},
		{"client not on loopback", EmbeddedConfig{Dir: "/x", ClientURL: "192.0.2.1:2479"}, "client URL"},
		{"peer not on loopback", EmbeddedConfig{Dir: "/x", PeerURL: "0.0.0.0:2480"}, "peer URL"},
		{"same address twice", EmbeddedConfig{Dir: "/x", ClientURL: "127.0.0.1:2479", PeerURL: "127.0.0.1:2479"}, "both"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := embedConfig(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStartEmbedded reopens a data directory: what was written is still
// there, and Close may be called twice.
func TestStartEmbedded(t *testing.T) {
	m := newMember(t, "reopen")
	cfg := m.config()
	ctx := testCtx(t)
	var rev int64
	for round := range 2 {
		e, err := StartEmbedded(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if eps := e.Endpoints(); len(eps) != 1 || eps[0] != m.clientURL() {
			t.Fatalf("endpoints %v, want %s", eps, m.clientURL())
		}
		c := connectTest(t, e.Endpoints()...)
		s := NewStore(c, "", nil)
		if round == 0 {
			if rev, err = s.PutRegion(ctx, testRegion("eu-west", 1), 0); err != nil {
				t.Fatal(err)
			}
		} else if _, got, err := s.GetRegion(ctx, "eu-west"); err != nil || got != rev {
			t.Fatalf("after reopening: revision %d (%v), want %d", got, err, rev)
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
