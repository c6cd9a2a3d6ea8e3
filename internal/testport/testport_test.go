package testport

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestFree: the ports are distinct, below the ephemeral range where there
// is room for them, and free for TCP and UDP on every host.
func TestFree(t *testing.T) {
	hosts := []string{"127.0.0.1", "127.0.0.2"}
	ports := Free(t, 20, hosts...)
	lo, hi := span()
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, ports)
		}
		seen[p] = true
		if hi > lo && (p < lo || p >= hi) {
			t.Errorf("port %d outside [%d, %d)", p, lo, hi)
		}
		for _, h := range hosts {
			addr := fmt.Sprintf("%s:%d", h, p)
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("%s not free for TCP: %v", addr, err)
			}
			l.Close()
			u, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Fatalf("%s not free for UDP: %v", addr, err)
			}
			u.Close()
		}
	}
	if runtime.GOOS == "linux" {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ephemeral range %s; picked from [%d, %d)", strings.TrimSpace(string(b)), lo, hi)
	}
}

// TestPickerHolds: a port picked is held until Release, so a second
// Picker gets others, and a bind to it fails until then.
func TestPickerHolds(t *testing.T) {
	a := NewPicker(t)
	p := a.Pick()
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
		l.Close()
		t.Fatalf("port %d bound while held", p)
	}
	b := NewPicker(t)
	for range 50 {
		if q := b.Pick(); q == p {
			t.Fatalf("port %d handed out while held", p)
		}
	}
	a.Release()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d still held after Release: %v", p, err)
	}
	l.Close()
}
