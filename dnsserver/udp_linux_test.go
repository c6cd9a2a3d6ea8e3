package dnsserver

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/meridian-gslb/meridian/internal/testport"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// TestTransportUDPWildcardSource checks that a socket bound to an
// unspecified address replies from the address each query was sent to.
// Without the source-address control message the kernel would pick the
// source by route (127.0.0.1 for a loopback client), so the 127.0.0.2
// case fails if the reply's source is not set.
func TestTransportUDPWildcardSource(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		client string
		dsts   []string
	}{
		{name: "ipv4", listen: "0.0.0.0:0", client: "127.0.0.1:0", dsts: []string{"127.0.0.2", "127.0.0.1", "127.0.0.3"}},
		{name: "ipv6", listen: "[::]:0", client: "[::1]:0", dsts: []string{"::1"}},
	}
	for _, w := range udpWaits {
		for _, tc := range tests {
			t.Run(w.name+" "+tc.name, func(t *testing.T) {
				if tc.name == "ipv6" {
					ipv6Loopback(t)
				}
				testWildcardSource(t, tc.listen, tc.client, tc.dsts, w.opt)
			})
		}
	}
}

// testWildcardSource queries a transport listening on listen from client,
// at each of dsts, and checks where each reply came from.
func testWildcardSource(t *testing.T, listen, client string, dsts []string, opt func(*Transport)) {
	r := startTransport(t, TransportConfig{Addrs: []string{listen}, UDPSockets: 2}, &dnsTestHandler{}, opt)
	port := r.udpAddr(t, 0).Port()
	// Unconnected, so the reply's source is reported, not filtered.
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(client)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, d := range dsts {
		dst := netip.AddrPortFrom(netip.MustParseAddr(d), port)
		q := newQuery(fmt.Sprintf("w%d.example.", i))
		if err := wildcardRoundTrip(c, q, dst); err != nil {
			t.Errorf("query to %s: %v", dst, err)
		}
	}
}

func wildcardRoundTrip(c *net.UDPConn, q *dns.Msg, dst netip.AddrPort) error {
	b, err := q.Pack()
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for range 5 {
		if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				return err
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf[:n]); err != nil {
				return err
			}
			if m.Id != q.Id || len(m.Question) == 0 || m.Question[0] != q.Question[0] {
				continue
			}
			if from := netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); from != dst {
				return fmt.Errorf("reply came from %s, query went to %s", from, dst)
			}
			src, err := checkReply(q, m, ProtoUDP)
			if err != nil {
				return err
			}
			if src != c.LocalAddr().String() {
				return fmt.Errorf("transport saw source %s, client is %s", src, c.LocalAddr())
			}
			return nil
		}
	}
	return fmt.Errorf("no reply from %s", dst)
}

// TestUDPSocketOptions checks the options udpControl sets: destination
// addresses (IP_PKTINFO, IPV6_RECVPKTINFO) asked for on wildcard sockets
// only, path MTU discovery off (with DF on IPv4 when replies fit 1280
// bytes), and receive buffers larger than a plain socket's.
func TestUDPSocketOptions(t *testing.T) {
	tests := []struct {
		name     string
		network  string
		addr     string
		wildcard bool
		df       bool
		wantMTU  []int // path MTU discovery modes accepted
	}{
		{"ipv4 one address", "udp4", "127.0.0.1:0", false, false, []int{unix.IP_PMTUDISC_OMIT, unix.IP_PMTUDISC_DONT}},
		{"ipv4 one address, DF", "udp4", "127.0.0.1:0", false, true, []int{unix.IP_PMTUDISC_PROBE}},
		{"ipv4 wildcard", "udp4", "0.0.0.0:0", true, false, []int{unix.IP_PMTUDISC_OMIT, unix.IP_PMTUDISC_DONT}},
		{"ipv4 wildcard, DF", "udp4", "0.0.0.0:0", true, true, []int{unix.IP_PMTUDISC_PROBE}},
		{"ipv6 one address", "udp6", "[::1]:0", false, false, []int{unix.IPV6_PMTUDISC_OMIT, unix.IPV6_PMTUDISC_DONT}},
		{"ipv6 one address, DF asked", "udp6", "[::1]:0", false, true, []int{unix.IPV6_PMTUDISC_OMIT, unix.IPV6_PMTUDISC_DONT}},
		{"ipv6 wildcard", "udp6", "[::]:0", true, false, []int{unix.IPV6_PMTUDISC_OMIT, unix.IPV6_PMTUDISC_DONT}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.network == "udp6" {
				ipv6Loopback(t)
			}
			lc := net.ListenConfig{Control: udpControl(tc.wildcard, false, tc.df)}
			pc, err := lc.ListenPacket(t.Context(), tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			level, pktinfo, mtu := unix.IPPROTO_IP, unix.IP_PKTINFO, unix.IP_MTU_DISCOVER
			if tc.network == "udp6" {
				level, pktinfo, mtu = unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, unix.IPV6_MTU_DISCOVER
			}
			pi := sockoptInt(t, pc, level, pktinfo)
			md := sockoptInt(t, pc, level, mtu)
			rb := sockoptInt(t, pc, unix.SOL_SOCKET, unix.SO_RCVBUF)
			if plain := plainRcvBuf(t, tc.network, tc.addr); rb <= plain {
				t.Errorf("receive buffer = %d bytes, want more than a plain socket's %d", rb, plain)
			}
			if want := tc.wildcard; (pi != 0) != want {
				t.Errorf("destination address option = %d, want on: %v", pi, want)
			}
			if !slices.Contains(tc.wantMTU, md) {
				t.Errorf("path MTU discovery mode = %d, want one of %v", md, tc.wantMTU)
			}
		})
	}
}

// plainRcvBuf is the receive buffer of a socket without our options.
func plainRcvBuf(t *testing.T, network, addr string) int {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return sockoptInt(t, pc, unix.SOL_SOCKET, unix.SO_RCVBUF)
}

// sockoptInt reads an integer socket option of a *net.UDPConn (any
// syscall.Conn) or of a socket a blocking loop holds.
func sockoptInt(t *testing.T, s any, level, opt int) int {
	t.Helper()
	var v int
	var err error
	switch s := s.(type) {
	case *blockingUDPSocket:
		v, err = unix.GetsockoptInt(s.fd, level, opt)
	case syscall.Conn:
		rc, cerr := s.SyscallConn()
		if cerr != nil {
			t.Fatal(cerr)
		}
		if cerr := rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), level, opt) }); cerr != nil {
			t.Fatal(cerr)
		}
	default:
		t.Fatalf("socket of type %T", s)
	}
	if err != nil {
		t.Fatalf("getsockopt(%d, %d): %v", level, opt, err)
	}
	return v
}

// TestTransportUDPWildcardBothFamilies binds "0.0.0.0:P" and "[::]:P" on
// one port: IPv6 sockets are IPv6-only, so the two coexist and each
// answers its own family.
func TestTransportUDPWildcardBothFamilies(t *testing.T) {
	ipv6Loopback(t)
	var r *runningTransport
	for range 10 {
		port := uint16(testport.Free(t, 1)[0])
		tr, err := NewTransport(TransportConfig{
			Addrs:      []string{fmt.Sprintf("0.0.0.0:%d", port), fmt.Sprintf("[::]:%d", port)},
			UDPSockets: 2,
		}, &dnsTestHandler{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Listen(); err != nil {
			if isAddrInUse(err) {
				continue // taken since it was picked: try another
			}
			t.Fatal(err)
		}
		tr.Close()
		r = startTransport(t, TransportConfig{Addrs: tr.cfg.Addrs, UDPSockets: 2}, &dnsTestHandler{})
		break
	}
	if r == nil {
		t.Fatal("no port free for both families")
	}
	for i := range 2 {
		u := r.udpAddr(t, i)
		dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), u.Port())
		if u.Addr().Is6() {
			dst = netip.AddrPortFrom(netip.IPv6Loopback(), u.Port())
		}
		for _, network := range []string{"udp", "tcp"} {
			if err := exchange(dst, network, newQuery("both.example.")); err != nil {
				t.Errorf("%s to %s: %v", network, dst, err)
			}
		}
	}
}

// BenchmarkUDPTransportDnsperf drives the transport (echo handler) with
// Debian's dnsperf in another process, as bench/run.sh does for whole
// servers, and reports the CPU this process spent per answered query:
// the transport's own cost, the budget left to the handler is what
// remains below gdnsd's. Run it with the server pinned to one core:
//
//	taskset -c 0 go test -run '^$' -bench UDPTransportDnsperf -cpu 1 ./dnsserver/
//
// dnsperf is pinned to the last CPU when the machine has more than one.
func BenchmarkUDPTransportDnsperf(b *testing.B) {
	dnsperf := testtool.Need(b, "dnsperf")
	for _, kind := range udpLoopKinds {
		b.Run(kind.name, func(b *testing.B) {
			r := startTransport(b, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, echoHandler{}, kind.opt)
			port := r.udpAddr(b, 0).Port()
			file := filepath.Join(b.TempDir(), "queries")
			if err := os.WriteFile(file, []byte(strings.Repeat("www.example. A\n", b.N)), 0o600); err != nil {
				b.Fatal(err)
			}
			args := []string{dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(int(port)),
				"-d", file, "-n", "1", "-c", "4", "-q", "200", "-t", "2"}
			if taskset, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() > 1 {
				args = append([]string{taskset, "-c", strconv.Itoa(runtime.NumCPU() - 1)}, args...)
			}
			before := r.Stats()
			cpu0 := processCPU(b)
			start := time.Now()
			b.ResetTimer()
			var out bytes.Buffer
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Stdout, cmd.Stderr = &out, &out
			err := testtool.Start(b, cmd).Wait()
			b.StopTimer()
			wall := time.Since(start)
			cpu := processCPU(b) - cpu0
			if err != nil {
				b.Fatalf("dnsperf: %v\n%s", err, out.String())
			}
			answered := r.Stats().UDPPacketsOut - before.UDPPacketsOut
			if answered == 0 {
				b.Fatalf("no query answered; dnsperf said:\n%s", out.String())
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(answered), "server-ns/query")
			b.ReportMetric(float64(answered)/wall.Seconds(), "qps")
			after := r.Stats()
			b.ReportMetric(float64(after.UDPPacketsIn-before.UDPPacketsIn)/float64(after.UDPBatches-before.UDPBatches), "pkts/batch")
		})
	}
}

// processCPU is the CPU time of this whole process (every thread, user and
// system), which the kernel accounts exactly rather than by tick samples.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTransportUDPWait checks where the batched loops wait: in recvmmsg
// when GOMAXPROCS leaves a P beyond the loops of all addresses, in the
// netpoller otherwise.
func TestTransportUDPWait(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	tests := []struct {
		name         string
		gomaxprocs   int
		addrs        []string
		sockets      int
		wantBlocking bool
	}{
		{"a P to spare", 2, []string{"127.0.0.1:0"}, 1, true},
		{"one P per loop", 2, []string{"127.0.0.1:0"}, 2, false},
		{"one P per loop over two addresses", 2, []string{"127.0.0.1:0", "127.0.0.2:0"}, 1, false},
		{"a P to spare over two addresses", 3, []string{"127.0.0.1:0", "127.0.0.2:0"}, 1, true},
		{"one P", 1, []string{"127.0.0.1:0"}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(tc.gomaxprocs)
			tr, err := NewTransport(TransportConfig{Addrs: tc.addrs, UDPSockets: tc.sockets}, &dnsTestHandler{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Listen(); err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if tr.udpBlocking != tc.wantBlocking {
				t.Errorf("blocking loops: %v, want %v", tr.udpBlocking, tc.wantBlocking)
			}
			for _, b := range tr.bound {
				for i, s := range b.udp {
					if _, blocking := s.(*blockingUDPSocket); blocking != tc.wantBlocking {
						t.Errorf("%s socket %d is a %T", b.cfg, i, s)
					}
				}
			}
		})
	}
}

// TestTransportDontFragment: the transport asks for DF on IPv4 replies
// exactly when its largest UDP reply fits 1280 bytes with the headers.
func TestTransportDontFragment(t *testing.T) {
	for _, tc := range []struct {
		maxReply int
		want     int
	}{
		{0, unix.IP_PMTUDISC_PROBE}, // the 1232-byte default
		{dfMaxReply, unix.IP_PMTUDISC_PROBE},
		{dfMaxReply + 1, unix.IP_PMTUDISC_OMIT},
		{4096, unix.IP_PMTUDISC_OMIT},
	} {
		t.Run(fmt.Sprint(tc.maxReply), func(t *testing.T) {
			r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 1, MaxUDPReply: tc.maxReply}, echoHandler{})
			for _, s := range r.bound[0].udp {
				md := sockoptInt(t, s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
				if md != tc.want {
					t.Errorf("path MTU discovery mode = %d, want %d", md, tc.want)
				}
			}
		})
	}
}
