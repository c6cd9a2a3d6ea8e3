package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/testlog"
	"github.com/meridian-gslb/meridian/internal/testport"
)

// failsafe bounds every wait in these tests so a broken transport fails
// the test instead of hanging it; no test asserts how fast anything is.
const failsafe = 10 * time.Second

// dnsTestHandler answers every query for one name with an A record whose
// address says the transport (192.0.2.1 UDP, 192.0.2.2 TCP) and a TXT
// record holding the source address the transport reported. Names starting
// with "panic." panic; names starting with "slow." report on entered and
// wait for release.
type dnsTestHandler struct {
	entered chan string
	release chan struct{}
}

func (h *dnsTestHandler) ServePacket(resp, req []byte, src netip.AddrPort, proto Proto) []byte {
	var q dns.Msg
	if err := q.Unpack(req); err != nil || q.Response || len(q.Question) != 1 {
		return nil
	}
	name := q.Question[0].Name
	switch {
	case strings.HasPrefix(name, "panic."):
		panic("test handler panic")
	case strings.HasPrefix(name, "slow."):
		h.entered <- name
		<-h.release
	}
	r := new(dns.Msg)
	r.SetReply(&q)
	r.Authoritative = true
	ip := netip.MustParseAddr("192.0.2.1")
	if proto == ProtoTCP {
		ip = netip.MustParseAddr("192.0.2.2")
	}
	r.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   ip.AsSlice(),
	}}
	r.Extra = []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{src.String()},
	}}
	out, err := r.PackBuffer(resp[:cap(resp)])
	if err != nil {
		return nil
	}
	return out
}

// echoHandler answers by echoing the query with QR set: no parsing and no
// allocation, so the transport's own cost shows in allocation counts and
// benchmarks.
type echoHandler struct{}

func (echoHandler) ServePacket(resp, req []byte, _ netip.AddrPort, _ Proto) []byte {
	if len(req) < 12 || len(req) > cap(resp) {
		return nil
	}
	resp = append(resp, req...)
	resp[2] |= 0x80
	return resp
}

type runningTransport struct {
	*Transport
	cancel context.CancelFunc
	errc   chan error
}

// stop cancels Run and returns its result.
func (r *runningTransport) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.errc:
		r.errc <- err // let the cleanup see it too
		return err
	case <-time.After(failsafe):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// startTransport binds and runs a transport on cfg until the test ends.
func startTransport(t testing.TB, cfg TransportConfig, h PacketHandler, opts ...func(*Transport)) *runningTransport {
	t.Helper()
	return startTransportLogger(t, cfg, h, nil, opts...)
}

func startTransportLogger(t testing.TB, cfg TransportConfig, h PacketHandler, logger *slog.Logger, opts ...func(*Transport)) *runningTransport {
	t.Helper()
	tr, err := NewTransport(cfg, h, logger)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	for _, o := range opts {
		o(tr)
	}
	if err := tr.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningTransport{Transport: tr, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(failsafe):
			t.Errorf("Run did not return after cancel")
		}
	})
	return r
}

func (r *runningTransport) udpAddr(t testing.TB, i int) netip.AddrPort {
	t.Helper()
	udp, _ := r.Addrs()
	if i >= len(udp) {
		t.Fatalf("no UDP address %d in %v", i, udp)
	}
	return udp[i].(*net.UDPAddr).AddrPort()
}

func (r *runningTransport) tcpAddr(t testing.TB, i int) netip.AddrPort {
	t.Helper()
	_, tcp := r.Addrs()
	if i >= len(tcp) {
		t.Fatalf("no TCP address %d in %v", i, tcp)
	}
	return tcp[i].(*net.TCPAddr).AddrPort()
}

// waitStats polls until cond holds for the transport's stats.
func waitStats(t *testing.T, r *runningTransport, what string, cond func(TransportStats) bool) {
	t.Helper()
	for deadline := time.Now().Add(failsafe); ; time.Sleep(5 * time.Millisecond) {
		st := r.Stats()
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened; stats %+v", what, st)
		}
	}
}

func newQuery(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	return m
}

// checkReply verifies that r answers q over proto, as dnsTestHandler
// does, and reports the source address the transport saw.
func checkReply(q, r *dns.Msg, proto Proto) (src string, err error) {
	if r == nil {
		return "", errors.New("no reply")
	}
	if r.Id != q.Id {
		return "", fmt.Errorf("reply id %d, query id %d", r.Id, q.Id)
	}
	if !r.Response || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
		return "", fmt.Errorf("reply question %v, want %v", r.Question, q.Question)
	}
	want := "192.0.2.1"
	if proto == ProtoTCP {
		want = "192.0.2.2"
	}
	if len(r.Answer) != 1 {
		return "", fmt.Errorf("reply has %d answers, want 1", len(r.Answer))
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || a.A.String() != want || a.Hdr.Name != q.Question[0].Name {
		return "", fmt.Errorf("answer %v, want %s A %s", r.Answer[0], q.Question[0].Name, want)
	}
	if len(r.Extra) != 1 {
		return "", fmt.Errorf("reply has %d additional records, want 1", len(r.Extra))
	}
	txt, ok := r.Extra[0].(*dns.TXT)
	if !ok || len(txt.Txt) != 1 {
		return "", fmt.Errorf("additional %v, want a TXT with the source", r.Extra[0])
	}
	return txt.Txt[0], nil
}

// exchange sends q over net ("udp" or "tcp") and checks the reply.
func exchange(addr netip.AddrPort, network string, q *dns.Msg) error {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	var r *dns.Msg
	var err error
	// Loopback UDP can drop under load (a full socket buffer), so UDP
	// queries get the retries a real resolver would make.
	for range 5 {
		r, _, err = c.Exchange(q, addr.String())
		if err == nil || network == "tcp" {
			break
		}
	}
	if err != nil {
		return err
	}
	proto := ProtoUDP
	if network == "tcp" {
		proto = ProtoTCP
	}
	_, err = checkReply(q, r, proto)
	return err
}

func ipv6Loopback(t testing.TB) {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
}

func TestTransportConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     TransportConfig
		nilH    bool
		wantErr string
	}{
		{name: "defaults", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}}},
		{name: "all families", cfg: TransportConfig{Addrs: []string{"127.0.0.1:53", "[::1]:53", "0.0.0.0:53", "[::]:53"}}},
		{name: "no addresses", cfg: TransportConfig{}, wantErr: "no listen addresses"},
		{name: "host name", cfg: TransportConfig{Addrs: []string{"localhost:53"}}, wantErr: "IP literal"},
		{name: "no port", cfg: TransportConfig{Addrs: []string{"127.0.0.1"}}, wantErr: "IP literal"},
		{name: "duplicate", cfg: TransportConfig{Addrs: []string{"127.0.0.1:53", "127.0.0.1:53"}}, wantErr: "twice"},
		{name: "mapped duplicate", cfg: TransportConfig{Addrs: []string{"127.0.0.1:53", "[::ffff:127.0.0.1]:53"}}, wantErr: "twice"},
		{name: "negative sockets", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: -1}, wantErr: "UDPSockets"},
		{name: "batch too large", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPBatch: 5000}, wantErr: "UDPBatch"},
		{name: "buffer too small", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPBufSize: 100}, wantErr: "UDPBufSize"},
		{name: "buffer too large", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPBufSize: 70000}, wantErr: "UDPBufSize"},
		{name: "negative conns", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, TCPMaxConns: -5}, wantErr: "TCPMaxConns"},
		{name: "negative idle", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, TCPIdleTimeout: -time.Second}, wantErr: "TCPIdleTimeout"},
		{name: "negative shutdown", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}, ShutdownTimeout: -1}, wantErr: "ShutdownTimeout"},
		{name: "nil handler", cfg: TransportConfig{Addrs: []string{"127.0.0.1:0"}}, nilH: true, wantErr: "nil handler"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h PacketHandler = echoHandler{}
			if tc.nilH {
				h = nil
			}
			tr, err := NewTransport(tc.cfg, h, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewTransport: %v", err)
				}
				c := tr.cfg
				if c.UDPSockets < 1 || c.UDPBatch != defaultUDPBatch || c.UDPBufSize != defaultUDPBufSize ||
					c.TCPIdleTimeout != defaultTCPIdleTimeout || c.TCPReadTimeout != defaultTCPReadTimeout ||
					c.TCPMaxConns != DefaultTCPMaxConns || c.TCPWriteTimeout != defaultTCPWriteTimeout ||
					c.ShutdownTimeout != defaultShutdownTimeout {
					t.Errorf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewTransport error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// canBindPlain reports whether addr can be bound for UDP and TCP without
// SO_REUSEPORT, that is, whether no socket of ours holds it.
func canBindPlain(addr string) error {
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	c.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

func TestTransportListen(t *testing.T) {
	t.Run("port zero shares the UDP port with TCP", func(t *testing.T) {
		tr, err := NewTransport(TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 3}, echoHandler{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if u, c := tr.Addrs(); u != nil || c != nil {
			t.Errorf("Addrs before Listen = %v, %v; want nil", u, c)
		}
		if err := tr.Listen(); err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		udp, tcp := tr.Addrs()
		if len(udp) != 1 || len(tcp) != 1 {
			t.Fatalf("Addrs = %v, %v; want one of each", udp, tcp)
		}
		up, tp := udp[0].(*net.UDPAddr).AddrPort(), tcp[0].(*net.TCPAddr).AddrPort()
		if up.Port() == 0 || up != tp {
			t.Errorf("UDP %v and TCP %v, want the same non-zero port", up, tp)
		}
		if err := tr.Listen(); err == nil {
			t.Error("second Listen succeeded")
		}
	})
	t.Run("failure closes what was opened", func(t *testing.T) {
		first := uint16(testport.Free(t, 1)[0])
		// Hold the TCP side of a second address so its bind fails after
		// the first address and the second's UDP sockets are open.
		busy, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		busyPort := busy.Addr().(*net.TCPAddr).AddrPort().Port()
		firstAddr := fmt.Sprintf("127.0.0.1:%d", first)
		tr, err := NewTransport(TransportConfig{
			Addrs:      []string{firstAddr, fmt.Sprintf("127.0.0.1:%d", busyPort)},
			UDPSockets: 2,
		}, echoHandler{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Listen()
		if err == nil || !isAddrInUse(err) {
			t.Fatalf("Listen error %v, want address in use", err)
		}
		if u, c := tr.Addrs(); u != nil || c != nil {
			t.Errorf("Addrs after failed Listen = %v, %v; want nil", u, c)
		}
		if err := canBindPlain(firstAddr); err != nil {
			t.Errorf("first address still held after failed Listen: %v", err)
		}
		c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", busyPort))
		if err != nil {
			t.Errorf("UDP side of the failed address still held: %v", err)
		} else {
			c.Close()
		}
	})
	t.Run("a port held with SO_REUSEPORT is refused", func(t *testing.T) {
		// Another server of ours, or a dig whose ephemeral port this is:
		// the same user with SO_REUSEPORT, which Linux lets join a port
		// whose sockets all have it. The transport must not share its
		// port, whatever its number of sockets.
		lc := net.ListenConfig{Control: udpControl(false, true, false)}
		held, err := lc.ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		for _, sockets := range []int{1, 2} {
			tr, err := NewTransport(TransportConfig{Addrs: []string{held.LocalAddr().String()}, UDPSockets: sockets}, echoHandler{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Listen(); err == nil || !isAddrInUse(err) {
				tr.Close()
				t.Errorf("%d sockets: Listen on a port held by another socket: %v, want address in use", sockets, err)
			}
		}
	})
	t.Run("Run binds when Listen was not called", func(t *testing.T) {
		tr, err := NewTransport(TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- tr.Run(ctx) }()
		var addr netip.AddrPort
		for deadline := time.Now().Add(failsafe); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if udp, _ := tr.Addrs(); len(udp) == 1 {
				addr = udp[0].(*net.UDPAddr).AddrPort()
				break
			}
		}
		if err := exchange(addr, "udp", newQuery("www.example.")); err != nil {
			t.Error(err)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := tr.Run(context.Background()); err == nil {
			t.Error("second Run succeeded")
		}
	})
}

func TestTransportUDP(t *testing.T) {
	tests := []struct {
		name string
		addr string
		v6   bool
	}{
		{name: "ipv4", addr: "127.0.0.1:0"},
		{name: "ipv6", addr: "[::1]:0", v6: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v6 {
				ipv6Loopback(t)
			}
			r := startTransport(t, TransportConfig{Addrs: []string{tc.addr}, UDPSockets: 3, UDPBatch: 8}, &dnsTestHandler{})
			addr := r.udpAddr(t, 0)
			const clients, perClient = 16, 20
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for c := range clients {
				wg.Go(func() {
					// One socket per client, so replies must go back to the
					// right source port with the right ID.
					conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
					if err != nil {
						errs <- err
						return
					}
					defer conn.Close()
					co := &dns.Conn{Conn: conn}
					for i := range perClient {
						q := newQuery(fmt.Sprintf("c%d-q%d.example.", c, i))
						if err := udpRoundTrip(co, q, conn.LocalAddr().String()); err != nil {
							errs <- fmt.Errorf("client %d query %d: %w", c, i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			// Replies are counted once sent, so the count can trail the
			// client by a moment.
			waitStats(t, r, "replies counted", func(st TransportStats) bool {
				return st.UDPPacketsOut >= clients*perClient && st.UDPPacketsIn >= st.UDPPacketsOut
			})
		})
	}
}

// udpRoundTrip sends q on co and reads until its reply arrives (a retry
// can leave a late reply to an earlier attempt on the socket). The reply
// must name wantSrc as the source the transport saw.
func udpRoundTrip(co *dns.Conn, q *dns.Msg, wantSrc string) error {
	for range 5 {
		if err := co.WriteMsg(q); err != nil {
			return err
		}
		co.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			r, err := co.ReadMsg()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break // lost on loopback under load: send again
				}
				return err
			}
			if r.Id != q.Id || len(r.Question) == 0 || r.Question[0] != q.Question[0] {
				continue // an earlier query's late reply
			}
			src, err := checkReply(q, r, ProtoUDP)
			if err != nil {
				return err
			}
			if src != wantSrc {
				return fmt.Errorf("transport saw source %s, client is %s", src, wantSrc)
			}
			return nil
		}
	}
	return errors.New("no reply after 5 attempts")
}

func TestTransportHandlerPanic(t *testing.T) {
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	r := startTransportLogger(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 1}, &dnsTestHandler{}, logger)

	t.Run("udp", func(t *testing.T) {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.udpAddr(t, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		co := &dns.Conn{Conn: conn}
		before := r.Stats().HandlerPanics
		for range 3 {
			if err := co.WriteMsg(newQuery("panic.example.")); err != nil {
				t.Fatal(err)
			}
		}
		if err := udpRoundTrip(co, newQuery("after.example."), conn.LocalAddr().String()); err != nil {
			t.Fatalf("query after panics: %v", err)
		}
		// The good query was sent after the panicking ones on the same
		// socket, so one loop handled those first.
		if got := r.Stats().HandlerPanics - before; got != 3 {
			t.Errorf("HandlerPanics grew by %d, want 3", got)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		conn, err := net.Dial("tcp", r.tcpAddr(t, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		co := &dns.Conn{Conn: conn}
		if err := co.WriteMsg(newQuery("panic.example.")); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(failsafe))
		if m, err := co.ReadMsg(); err == nil {
			t.Fatalf("got reply %v after a panic, want the connection closed", m)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection left open after a panic: %v", err)
		}
		if err := exchange(r.tcpAddr(t, 0), "tcp", newQuery("after.example.")); err != nil {
			t.Errorf("TCP query after panic: %v", err)
		}
	})
	if !strings.Contains(logs.String(), "panicked") {
		t.Errorf("panic not logged; logs:\n%s", logs)
	}
	// Rate limiting: four panics within the interval log once.
	if n := strings.Count(logs.String(), "panicked"); n != 1 {
		t.Errorf("panic logged %d times, want 1 (rate-limited)", n)
	}
}

func TestTransportGarbage(t *testing.T) {
	for _, w := range udpWaits {
		t.Run(w.name, func(t *testing.T) { testTransportGarbage(t, w.opt) })
	}
}

func testTransportGarbage(t *testing.T, opt func(*Transport)) {
	r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2, UDPBufSize: 512}, &dnsTestHandler{}, opt)
	addr := r.udpAddr(t, 0)
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	buf := make([]byte, 1500)
	oversize := 0
	for i := range n {
		size := rng.IntN(len(buf))
		switch i % 4 {
		case 0:
			size = rng.IntN(13) // empty and shorter than a header
		case 1:
			size = 12 + rng.IntN(40) // header-sized, random flags and counts
		}
		if size > 512 {
			oversize++
		}
		for j := range size {
			buf[j] = byte(rng.Uint32())
		}
		if _, err := conn.Write(buf[:size]); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := exchange(addr, "udp", newQuery("good.example.")); err != nil {
		t.Fatalf("good query after garbage: %v", err)
	}
	// The good query may have gone to the other socket, ahead of the
	// garbage still queued on the first.
	waitStats(t, r, "oversized and unanswerable datagrams counted", func(st TransportStats) bool {
		return st.UDPTruncated > 0 && st.UDPDropped > 0
	})
	if st := r.Stats(); st.UDPTruncated > uint64(oversize) {
		t.Errorf("UDPTruncated = %d, more than the %d oversized datagrams sent", st.UDPTruncated, oversize)
	}
}

// udpWaits are the two ways the batched UDP loops wait, for tests that
// must hold for both (on other systems both are the portable loop).
// They are the "polled" and "blocking" entries of udpLoopKinds.
var udpWaits = udpLoopKinds[1:3]

func TestTransportGracefulShutdown(t *testing.T) {
	tests := []struct {
		name    string
		network string
		opt     func(*Transport)
	}{
		{"udp polled", "udp", udpWaits[0].opt},
		{"udp blocking", "udp", udpWaits[1].opt},
		{"tcp", "tcp", func(*Transport) {}},
	}
	for _, tc := range tests {
		network := tc.network
		t.Run(tc.name, func(t *testing.T) {
			h := &dnsTestHandler{entered: make(chan string, 1), release: make(chan struct{})}
			r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2}, h, tc.opt)
			addr := r.udpAddr(t, 0)
			if network == "tcp" {
				addr = r.tcpAddr(t, 0)
			}
			// An idle TCP connection must be closed by the shutdown too.
			idle, err := net.Dial("tcp", r.tcpAddr(t, 0).String())
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()

			q := newQuery("slow.example.")
			done := make(chan error, 1)
			go func() { done <- exchange(addr, network, q) }()
			select {
			case <-h.entered:
			case <-time.After(failsafe):
				t.Fatal("slow query never reached the handler")
			}
			r.cancel()
			// Release the handler only once shutdown has begun, so the
			// reply must survive it.
			for deadline := time.Now().Add(failsafe); !r.stopping.Load(); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("shutdown never started")
				}
			}
			close(h.release)
			if err := <-done; err != nil {
				t.Errorf("in-flight %s query: %v", network, err)
			}
			if err := r.stop(t); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			idle.SetReadDeadline(time.Now().Add(failsafe))
			if _, err := idle.Read(make([]byte, 1)); err == nil {
				t.Error("idle connection still open after shutdown")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("idle connection still open after shutdown")
			}
			if err := canBindPlain(addr.String()); err != nil {
				t.Errorf("port not released: %v", err)
			}
		})
	}
}

func TestTransportShutdownTimeout(t *testing.T) {
	for _, w := range udpWaits {
		t.Run(w.name, func(t *testing.T) { testTransportShutdownTimeout(t, w.opt) })
	}
}

func testTransportShutdownTimeout(t *testing.T, opt func(*Transport)) {
	h := &dnsTestHandler{entered: make(chan string, 1), release: make(chan struct{})}
	defer close(h.release)
	r := startTransport(t, TransportConfig{
		Addrs:           []string{"127.0.0.1:0"},
		UDPSockets:      1,
		ShutdownTimeout: 100 * time.Millisecond,
	}, h, opt)
	addr := r.udpAddr(t, 0)
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := (&dns.Conn{Conn: conn}).WriteMsg(newQuery("slow.example.")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.entered:
	case <-time.After(failsafe):
		t.Fatal("slow query never reached the handler")
	}
	// The handler stays blocked: Run must still return once the bound
	// has passed, with the sockets closed.
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := canBindPlain(addr.String()); err != nil {
		t.Errorf("port not released after forced shutdown: %v", err)
	}
}

// TestTransportListenerFailure checks that a listener failing under the
// transport ends Run with the error rather than leaving it half-serving.
func TestTransportListenerFailure(t *testing.T) {
	tests := []struct {
		name    string
		opt     func(*Transport)
		breakIt func(*Transport)
	}{
		{"udp socket polled", udpWaits[0].opt, func(tr *Transport) { tr.bound[0].udp[1].Close() }},
		{"udp socket blocking", udpWaits[1].opt, func(tr *Transport) { tr.bound[0].udp[1].Close() }},
		{"tcp listener", func(*Transport) {}, func(tr *Transport) { tr.bound[0].tcp.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTransport(TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2}, &dnsTestHandler{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.opt(tr)
			if err := tr.Listen(); err != nil {
				t.Fatal(err)
			}
			udp, _ := tr.Addrs()
			addr := udp[0].(*net.UDPAddr).AddrPort()
			errc := make(chan error, 1)
			go func() { errc <- tr.Run(context.Background()) }()
			if err := exchange(addr, "udp", newQuery("up.example.")); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(tr)
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Run = %v, want an error wrapping net.ErrClosed", err)
				}
			case <-time.After(failsafe):
				t.Fatal("Run kept going after a listener failed")
			}
			if err := canBindPlain(addr.String()); err != nil {
				t.Errorf("port not released: %v", err)
			}
		})
	}
}
