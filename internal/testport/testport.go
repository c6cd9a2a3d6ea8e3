package testport

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// lowest is the lowest port picked: clear of the ports services of this
// project and others listen on by default (53, 2379, 5353, 8053...).
const lowest = 20000

// minSpan is the fewest ports below the ephemeral range worth picking
// from; with fewer, ports come from the kernel (port 0).
const minSpan = 2000

// Picker hands out ports, each held (bound) until Release so that none is
// handed out twice.
type Picker struct {
	t    testing.TB
	held []io.Closer
}

// NewPicker returns a Picker; its ports are released when the test ends
// at the latest.
func NewPicker(t testing.TB) *Picker {
	p := &Picker{t: t}
	t.Cleanup(p.Release)
	return p
}

// Pick returns a port free for TCP and UDP on every host (127.0.0.1 when
// none is given), and holds it until Release.
func (p *Picker) Pick(hosts ...string) int {
	p.t.Helper()
	held, port, err := pick(hosts)
	if err != nil {
		p.t.Fatal(err)
	}
	p.held = append(p.held, held...)
	return port
}

// Release lets others bind the ports picked.
func (p *Picker) Release() {
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

// Free returns n distinct ports free for TCP and UDP on every host
// (127.0.0.1 when none is given), released for the caller to bind.
func Free(t testing.TB, n int, hosts ...string) []int {
	t.Helper()
	ports, err := Ports(n, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// Ports is Free for callers without a test (a TestMain, a sync.Once).
func Ports(n int, hosts ...string) ([]int, error) {
	var all []io.Closer
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		held, port, err := pick(hosts)
		if err != nil {
			return nil, err
		}
		all = append(all, held...)
		ports[i] = port
	}
	return ports, nil
}

// pick finds a port free on every host and returns it held.
func pick(hosts []string) ([]io.Closer, int, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	lo, hi := span()
	for range 200 {
		port := 0
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		if port != 0 && !reserve(port) {
			continue // picked before, by this process or another
		}
		if held, port, ok := hold(port, hosts); ok {
			return held, port, nil
		}
	}
	return nil, 0, fmt.Errorf("testport: no port free on %v", hosts)
}

// hold binds port (0: one the kernel picks on the first host) for TCP and
// UDP on every host. ok is false, with nothing held, when one is taken.
func hold(port int, hosts []string) (held []io.Closer, got int, ok bool) {
	release := func() {
		for _, c := range held {
			c.Close()
		}
	}
	for _, h := range hosts {
		l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			release()
			return nil, 0, false
		}
		held = append(held, l)
		if port == 0 {
			port = l.Addr().(*net.TCPAddr).Port
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			release()
			return nil, 0, false
		}
		held = append(held, u)
	}
	return held, port, true
}

// span is the range [lo, hi) ports are picked from: below the kernel's
// ephemeral range, from lowest. lo == hi means none: the kernel picks.
func span() (lo, hi int) {
	if runtime.GOOS != "linux" {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &first); err != nil || first-lowest < minSpan {
		return 0, 0
	}
	return lowest, first
}
