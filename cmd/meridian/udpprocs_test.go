package main

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestPlanUDPProcs: dns.udp_sockets per address (default one per P the
// runtime chose) and, on Linux unless GOMAXPROCS is set in the
// environment, one more P per UDP loop on top of the runtime's choice, so
// that the loops wait in recvmmsg; with far more loops than Ps, or
// elsewhere, GOMAXPROCS is left alone. Planning changes nothing.
func TestPlanUDPProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	one, two := []string{"127.0.0.1:53"}, []string{"127.0.0.1:53", "[::1]:53"}
	for _, tc := range []struct {
		name        string
		base        int // as the runtime chose it (a cgroup CPU limit included)
		sockets     int
		addrs       []string
		env         bool
		goos        string
		wantSockets int
		wantProcs   int // 0: left alone
		reason      string
	}{
		{"one per P", 2, 0, one, false, "linux", 2, 4, "a P per UDP loop"},
		{"the runtime's choice is the base", 5, 0, one, false, "linux", 5, 10, "a P per UDP loop"},
		{"two addresses", 4, 1, two, false, "linux", 1, 6, "a P per UDP loop"},
		{"set by the environment", 3, 2, one, true, "linux", 2, 0, "GOMAXPROCS environment variable"},
		{"set by the environment, default sockets", 3, 0, two, true, "linux", 3, 0, "GOMAXPROCS environment variable"},
		{"eight loops per P", 2, 16, one, false, "linux", 16, 18, "a P per UDP loop"},
		{"far more loops than Ps", 2, 17, one, false, "linux", 17, 0, "more than 8 UDP loops per P"},
		{"not Linux", 4, 0, one, false, "freebsd", 4, 0, "Linux only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{DNS: DNSConfig{UDPSockets: tc.sockets}, Listen: ListenConfig{DNS: tc.addrs}}
			p := planUDPProcs(cfg, tc.base, tc.env, tc.goos)
			if p.sockets != tc.wantSockets || p.procs != tc.wantProcs || p.base != tc.base || p.loops != tc.wantSockets*len(tc.addrs) ||
				!strings.Contains(p.reason, tc.reason) {
				t.Errorf("plan %+v, want %d sockets, GOMAXPROCS %d, %q", p, tc.wantSockets, tc.wantProcs, tc.reason)
			}
			if got := runtime.GOMAXPROCS(0); got != before {
				t.Fatalf("planning changed GOMAXPROCS from %d to %d", before, got)
			}
		})
	}
}

// TestApplyUDPProcs: applying a plan sets GOMAXPROCS only when it raises
// it, and logs one line with the reason either way.
func TestApplyUDPProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	cfg := &Config{DNS: DNSConfig{UDPSockets: 2}, Listen: ListenConfig{DNS: []string{"127.0.0.1:53"}}}
	for _, tc := range []struct {
		name string
		env  bool
		want int // GOMAXPROCS after
		line string
	}{
		{"raised", false, runtimeProcs + 2, "GOMAXPROCS raised for the UDP loops"},
		{"left", true, runtimeProcs, "GOMAXPROCS left as it is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(runtimeProcs)
			var logs bytes.Buffer
			planUDPProcs(cfg, runtimeProcs, tc.env, "linux").apply(slog.New(slog.NewTextHandler(&logs, nil)))
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS %d, want %d", got, tc.want)
			}
			if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), tc.line) || !strings.Contains(logs.String(), "reason=") {
				t.Errorf("logged %d lines, want one %q with its reason:\n%s", n, tc.line, logs.String())
			}
		})
	}
}

// TestRuntimeProcs: the base of the raise is GOMAXPROCS as the runtime
// computes it by default (its CPUs, lowered to a cgroup CPU limit), not
// runtime.NumCPU, which ignores the cgroup limit.
func TestRuntimeProcs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set in the environment: the runtime took it")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.SetDefaultGOMAXPROCS()
	if got := runtime.GOMAXPROCS(0); got != runtimeProcs {
		t.Errorf("runtimeProcs %d, the runtime's default is %d", runtimeProcs, got)
	}
	if runtimeProcs > runtime.NumCPU() {
		t.Errorf("runtimeProcs %d above the %d CPUs", runtimeProcs, runtime.NumCPU())
	}
}
