package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// TestUDPProcs: unless GOMAXPROCS is set, every UDP loop gets a P on top
// of one per CPU, so the loops wait in recvmmsg (dnsserver's auto mode).
func TestUDPProcs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the loops wait in recvmmsg on Linux only")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name        string
		env         string
		sockets     int
		addrs       []string
		wantSockets int
		wantProcs   int
	}{
		{"one per CPU", "", 0, []string{"127.0.0.1:53"}, baseProcs, 2 * baseProcs},
		{"two addresses", "", 1, []string{"127.0.0.1:53", "[::1]:53"}, 1, baseProcs + 2},
		{"set by the environment", "3", 2, []string{"127.0.0.1:53"}, 2, 0},
		{"far more loops than CPUs", "", 8*baseProcs + 1, []string{"127.0.0.1:53"}, 8*baseProcs + 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			runtime.GOMAXPROCS(baseProcs)
			cfg := &Config{DNS: DNSConfig{UDPSockets: tc.sockets}, Listen: ListenConfig{DNS: tc.addrs}}
			if got := udpProcs(cfg, log); got != tc.wantSockets {
				t.Errorf("sockets per address = %d, want %d", got, tc.wantSockets)
			}
			want := tc.wantProcs
			if want == 0 {
				want = baseProcs // left alone
			}
			if got := runtime.GOMAXPROCS(0); got != want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, want)
			}
		})
	}
}
