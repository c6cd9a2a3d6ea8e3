package testport

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
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

// TestReservedAcrossProcesses: a port handed out is not handed out again,
// by this process or another test process, until this one ends; a port
// another process picked is free for this one once that process has ended.
func TestReservedAcrossProcesses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ports are picked below the ephemeral range on Linux only")
	}
	if lo, hi := span(); hi <= lo {
		t.Skip("no room below the ephemeral range")
	}
	if env := os.Getenv("TESTPORT_TAKEN"); env != "" {
		reservedChild(t, env)
		return
	}
	p := Free(t, 1)[0]
	if reserve(p) {
		t.Fatalf("port %d reserved twice by one process", p)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReservedAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTPORT_TAKEN="+strconv.Itoa(p))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`picked (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child named no port it picked:\n%s", out)
	}
	q, _ := strconv.Atoi(string(m[1]))
	if !reserve(q) {
		t.Fatalf("port %d still reserved after the child that picked it ended", q)
	}
}

// reservedChild is the other process of TestReservedAcrossProcesses: taken
// is reserved by its parent.
func reservedChild(t *testing.T, taken string) {
	p, _ := strconv.Atoi(taken)
	if reserve(p) {
		t.Fatalf("port %d reserved by the parent and by the child", p)
	}
	for _, q := range Free(t, 200) {
		if q == p {
			t.Fatalf("port %d handed out to the child while the parent has it", p)
		}
	}
	fmt.Printf("picked %d\n", Free(t, 1)[0])
}
