package dnsserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gslb/meridian/internal/histogram"
	"github.com/meridian-gslb/meridian/internal/testtool"
)

// udpLoopKinds are the UDP loops a test or benchmark can pick: the default
// one for the platform (batched on Linux, waiting in recvmmsg or in the
// netpoller by GOMAXPROCS), the batched one waiting in the netpoller or in
// recvmmsg (Linux; elsewhere both are the default), and the portable one.
var udpLoopKinds = []struct {
	name string
	opt  func(*Transport)
}{
	{"default", func(*Transport) {}},
	{"polled", func(t *Transport) { t.udpWait = udpWaitPolled }},
	{"blocking", func(t *Transport) { t.udpWait = udpWaitBlocking }},
	{"std", func(t *Transport) { t.useStdUDP = true }},
}

// echoQuery is a minimal query: ID 0x1234, RD, one question www.example. A IN.
var echoQuery = []byte{
	0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
	0x00, 0x01, 0x00, 0x01,
}

// echoRoundTrip sends echoQuery on c and checks the echoed reply.
func echoRoundTrip(c *net.UDPConn, buf []byte) error {
	if _, err := c.Write(echoQuery); err != nil {
		return err
	}
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if n != len(echoQuery) || buf[0] != 0x12 || buf[1] != 0x34 || buf[2]&0x80 == 0 {
		return fmt.Errorf("bad reply %x", buf[:n])
	}
	return nil
}

func TestTransportUDPZeroAllocs(t *testing.T) {
	tests := []struct {
		name string
		addr string
		opt  func(*Transport)
	}{
		{"polled", "127.0.0.1:0", udpLoopKinds[1].opt},
		{"blocking", "127.0.0.1:0", udpLoopKinds[2].opt},
		{"std", "127.0.0.1:0", udpLoopKinds[3].opt},
		// Replies on a wildcard socket carry a source-address control message.
		{"polled wildcard", "0.0.0.0:0", udpLoopKinds[1].opt},
		{"blocking wildcard", "0.0.0.0:0", udpLoopKinds[2].opt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startTransport(t, TransportConfig{Addrs: []string{tc.addr}, UDPSockets: 1}, echoHandler{}, tc.opt)
			dst := r.udpAddr(t, 0)
			if dst.Addr().IsUnspecified() {
				dst = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dst.Port())
			}
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// A lost datagram would hang a round trip; the deadline turns
			// it into a failure instead.
			c.SetReadDeadline(time.Now().Add(failsafe))
			buf := make([]byte, 512)
			for range 200 { // warm up: goroutines parked, netpoller set up
				if err := echoRoundTrip(c, buf); err != nil {
					t.Fatal(err)
				}
			}
			const packets = 2000
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range packets {
				if err := echoRoundTrip(c, buf); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			// The count covers the whole process (client included); allow
			// a few background runtime allocations, far below one per packet.
			allocs := after.Mallocs - before.Mallocs
			if allocs > packets/100 {
				t.Errorf("%d allocations for %d packets (%.3f per packet), want ~0", allocs, packets, float64(allocs)/packets)
			}
			t.Logf("%d allocations for %d packets", allocs, packets)
		})
	}
}

func TestTransportUDPTruncated(t *testing.T) {
	for _, kind := range udpLoopKinds {
		t.Run(kind.name, func(t *testing.T) {
			r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 1, UDPBufSize: 512}, echoHandler{}, kind.opt)
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.udpAddr(t, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(failsafe))
			// 513 bytes, one more than the buffer: dropped, not answered
			// with a cut-off copy. Exactly 512 fits and is answered.
			long := append(append([]byte{}, echoQuery...), make([]byte, 513-len(echoQuery))...)
			if _, err := c.Write(long); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(long[:512]); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1024)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != 512 {
				t.Errorf("reply of %d bytes, want the 512-byte datagram echoed", n)
			}
			if err := echoRoundTrip(c, buf); err != nil {
				t.Fatal(err)
			}
			waitStats(t, r, "replies counted", func(st TransportStats) bool { return st.UDPPacketsOut == 2 })
			st := r.Stats()
			if st.UDPTruncated != 1 || st.UDPPacketsIn != 3 || st.UDPPacketsOut != 2 {
				t.Errorf("stats truncated %d in %d out %d, want 1, 3, 2", st.UDPTruncated, st.UDPPacketsIn, st.UDPPacketsOut)
			}
			if st.UDPBatches == 0 || st.UDPBatches > st.UDPPacketsIn {
				t.Errorf("UDPBatches = %d, want 1..%d", st.UDPBatches, st.UDPPacketsIn)
			}
		})
	}
}

// BenchmarkUDPTransport measures loopback query/reply round trips through
// the transport with a trivial handler, several clients at once. Client
// and server share the machine, so ns/op is the round trip's cost, not
// the server's alone.
func BenchmarkUDPTransport(b *testing.B) {
	for _, kind := range udpLoopKinds {
		b.Run(kind.name, func(b *testing.B) {
			r := startTransport(b, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, echoHandler{}, kind.opt)
			addr := net.UDPAddrFromAddrPort(r.udpAddr(b, 0))
			b.ReportAllocs()
			b.SetParallelism(4) // 4 clients per core
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.DialUDP("udp", nil, addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				// One query in flight per client cannot overflow a socket
				// buffer; the deadline only guards against a hang.
				c.SetReadDeadline(time.Now().Add(5 * time.Minute))
				buf := make([]byte, 512)
				for pb.Next() {
					if err := echoRoundTrip(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := r.Stats()
			b.ReportMetric(float64(st.UDPPacketsIn)/float64(st.UDPBatches), "pkts/batch")
		})
	}
}

// BenchmarkUDPTransportOneAtATime measures round trips of one query at a
// time through the transport (echo handler): a server at low load, where
// every query finds its loop waiting, so ns/op includes waking it up. The
// client is this test binary run again as another process (see
// TestUDPEchoClient), so that it shares neither the server's Go scheduler
// nor its threads, as a resolver would not.
func BenchmarkUDPTransportOneAtATime(b *testing.B) {
	for _, kind := range udpLoopKinds {
		b.Run(kind.name, func(b *testing.B) {
			r := startTransport(b, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 1}, echoHandler{}, kind.opt)
			n := b.N
			b.ResetTimer()
			cmd := exec.Command(os.Args[0], "-test.run=^TestUDPEchoClient$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", echoClientEnv, r.udpAddr(b, 0), n))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := testtool.Start(b, cmd).Wait()
			b.StopTimer()
			if err != nil {
				b.Fatalf("client: %v\n%s", err, out.String())
			}
			var ns float64
			if _, err := fmt.Sscanf(out.String(), "elapsed %g", &ns); err != nil {
				b.Fatalf("client said %q: %v", out.String(), err)
			}
			// The client's own figure leaves out its start-up.
			b.ReportMetric(ns/float64(n), "ns/roundtrip")
		})
	}
}

// echoClientEnv carries "ADDR,COUNT" to TestUDPEchoClient.
const echoClientEnv = "DNSSERVER_TEST_ECHO_CLIENT"

// TestUDPEchoClient is the client process of BenchmarkUDPTransportOneAtATime:
// with echoClientEnv set, it makes COUNT round trips to ADDR one after the
// other and prints the time they took. Otherwise it does nothing.
func TestUDPEchoClient(t *testing.T) {
	spec := os.Getenv(echoClientEnv)
	if spec == "" {
		t.Skip("only run by BenchmarkUDPTransportOneAtATime")
	}
	addr, count, ok := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		t.Fatalf("bad %s %q", echoClientEnv, spec)
	}
	dst, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One query in flight cannot overflow a socket buffer; the deadline
	// only guards against a hang.
	c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	buf := make([]byte, 512)
	start := time.Now()
	for range n {
		if err := echoRoundTrip(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("elapsed %d\n", time.Since(start).Nanoseconds())
}

// slowEcho echoes after a pause: the time every reply takes at least.
type slowEcho struct{ pause time.Duration }

func (s slowEcho) ServePacket(resp, req []byte, src netip.AddrPort, proto Proto) []byte {
	time.Sleep(s.pause)
	return echoHandler{}.ServePacket(resp, req, src, proto)
}

// TestTransportAnswerTimes: every reply sent is counted once in the
// answer times of its transport, with at least the time the handler
// took, on every kind of UDP loop and over TCP.
func TestTransportAnswerTimes(t *testing.T) {
	const pause = 3 * time.Millisecond
	for _, kind := range udpLoopKinds {
		t.Run(kind.name, func(t *testing.T) {
			r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 1}, slowEcho{pause}, kind.opt)
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.udpAddr(t, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(failsafe))
			buf := make([]byte, 512)
			const n = 20
			for range n {
				if err := echoRoundTrip(c, buf); err != nil {
					t.Fatal(err)
				}
			}
			tc, err := net.Dial("tcp", r.tcpAddr(t, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(failsafe))
			frame := append([]byte{0, byte(len(echoQuery))}, echoQuery...)
			for range 3 {
				if _, err := tc.Write(frame); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(tc, buf[:len(frame)]); err != nil {
					t.Fatal(err)
				}
			}
			// The reply is out before its time is counted.
			waitAnswerTimes(t, r, n, 3)
			udp, tcp := r.AnswerTimes()
			for name, h := range map[string]histogram.Counts{"udp": udp, "tcp": tcp} {
				if h.Buckets[slices.Index(AnswerTimeBounds, 2.5e-3)] != 0 {
					t.Errorf("%s: %v at most 2.5 ms, but every reply took %s", name, h.Buckets, pause)
				}
				if h.Sum < time.Duration(h.Count)*pause {
					t.Errorf("%s: %d replies took %s together, less than %s each", name, h.Count, h.Sum, pause)
				}
			}
			if st := r.Stats(); udp.Count != st.UDPPacketsOut {
				t.Errorf("%d UDP answer times, %d replies sent", udp.Count, st.UDPPacketsOut)
			}
		})
	}
}

// waitAnswerTimes waits until the transport has counted the answer
// times of udp and tcp replies.
func waitAnswerTimes(t *testing.T, r *runningTransport, udp, tcp uint64) {
	t.Helper()
	for deadline := time.Now().Add(failsafe); ; time.Sleep(time.Millisecond) {
		u, c := r.AnswerTimes()
		if u.Count == udp && c.Count == tcp {
			return
		}
		if time.Now().After(deadline) || u.Count > udp || c.Count > tcp {
			t.Fatalf("answer times counted: %d UDP, %d TCP; want %d, %d", u.Count, c.Count, udp, tcp)
		}
	}
}
