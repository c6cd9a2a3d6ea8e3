package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// frame packs q with its RFC 7766 length prefix.
func frame(t *testing.T, q *dns.Msg) []byte {
	t.Helper()
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// readFramed reads one length-prefixed message from c.
func readFramed(c net.Conn) (*dns.Msg, error) {
	c.SetReadDeadline(time.Now().Add(failsafe))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// expectClosed fails unless the server closes c (EOF or reset) before the
// failsafe deadline.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failsafe))
	n, err := c.Read(make([]byte, 512))
	if err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open: %v", err)
	}
}

func dialTCP(t *testing.T, r *runningTransport) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.tcpAddr(t, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTransportTCP(t *testing.T) {
	t.Run("miekg client", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{})
		for i := range 5 {
			if err := exchange(r.tcpAddr(t, 0), "tcp", newQuery(fmt.Sprintf("q%d.example.", i))); err != nil {
				t.Fatal(err)
			}
		}
		if got := r.Stats().TCPQueries; got != 5 {
			t.Errorf("TCPQueries = %d, want 5", got)
		}
	})
	t.Run("ipv6", func(t *testing.T) {
		ipv6Loopback(t)
		r := startTransport(t, TransportConfig{Addrs: []string{"[::1]:0"}}, &dnsTestHandler{})
		if err := exchange(r.tcpAddr(t, 0), "tcp", newQuery("v6.example.")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("pipelining", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{})
		c := dialTCP(t, r)
		var qs []*dns.Msg
		var out []byte
		for i := range 10 {
			q := newQuery(fmt.Sprintf("p%d.example.", i))
			qs = append(qs, q)
			out = append(out, frame(t, q)...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		for i, q := range qs {
			m, err := readFramed(c)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			src, err := checkReply(q, m, ProtoTCP)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			if src != c.LocalAddr().String() {
				t.Errorf("transport saw source %s, client is %s", src, c.LocalAddr())
			}
		}
	})
	t.Run("split and large messages", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{})
		c := dialTCP(t, r)
		c.(*net.TCPConn).SetNoDelay(true)
		// A query larger than the connection's small buffer, padded with
		// EDNS0 padding, sent in pieces with a small query behind it.
		big := newQuery("big.example.")
		big.SetEdns0(4096, false)
		opt := big.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, 20000)})
		small := newQuery("small.example.")
		out := append(frame(t, big), frame(t, small)...)
		for _, cut := range [][2]int{{0, 1}, {1, 3}, {3, 5000}, {5000, len(out) - 10}, {len(out) - 10, len(out)}} {
			if _, err := c.Write(out[cut[0]:cut[1]]); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []*dns.Msg{big, small} {
			m, err := readFramed(c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := checkReply(q, m, ProtoTCP); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		r := startTransport(t, TransportConfig{
			Addrs:          []string{"127.0.0.1:0"},
			TCPIdleTimeout: 100 * time.Millisecond,
			TCPReadTimeout: time.Hour, // only the idle timeout can close it
		}, &dnsTestHandler{})
		c := dialTCP(t, r)
		q := newQuery("idle.example.")
		if _, err := c.Write(frame(t, q)); err != nil {
			t.Fatal(err)
		}
		m, err := readFramed(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checkReply(q, m, ProtoTCP); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		waitStats(t, r, "idle close counted", func(s TransportStats) bool { return s.TCPIdleClosed == 1 && s.TCPActive == 0 })
	})
	t.Run("stalled partial message", func(t *testing.T) {
		r := startTransport(t, TransportConfig{
			Addrs:          []string{"127.0.0.1:0"},
			TCPIdleTimeout: time.Hour, // only the read timeout can close it
			TCPReadTimeout: 100 * time.Millisecond,
		}, &dnsTestHandler{})
		c := dialTCP(t, r)
		f := frame(t, newQuery("stall.example."))
		if _, err := c.Write(f[:len(f)/2]); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		waitStats(t, r, "read timeout counted", func(s TransportStats) bool {
			return s.TCPReadTimeout == 1 && s.TCPIdleClosed == 0 && s.TCPQueries == 0
		})
	})
	t.Run("zero length closes", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{})
		c := dialTCP(t, r)
		q := newQuery("before.example.")
		// A good query, then a zero length, then a query that must not
		// be answered.
		out := append(frame(t, q), 0, 0)
		out = append(out, frame(t, newQuery("after.example."))...)
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		m, err := readFramed(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checkReply(q, m, ProtoTCP); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c)
		if got := r.Stats().TCPQueries; got != 1 {
			t.Errorf("TCPQueries = %d, want 1", got)
		}
	})
	t.Run("connection limit", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, TCPMaxConns: 2}, &dnsTestHandler{})
		var open []net.Conn
		for i := range 2 {
			c := dialTCP(t, r)
			// A query answered proves the connection was admitted.
			q := newQuery(fmt.Sprintf("held%d.example.", i))
			if _, err := c.Write(frame(t, q)); err != nil {
				t.Fatal(err)
			}
			if _, err := readFramed(c); err != nil {
				t.Fatal(err)
			}
			open = append(open, c)
		}
		over := dialTCP(t, r)
		over.Write(frame(t, newQuery("over.example.")))
		expectClosed(t, over)
		st := r.Stats()
		if st.TCPRejected != 1 || st.TCPAccepted != 2 || st.TCPActive != 2 {
			t.Errorf("stats rejected %d accepted %d active %d, want 1, 2, 2", st.TCPRejected, st.TCPAccepted, st.TCPActive)
		}
		// Closing one frees a slot.
		open[0].Close()
		waitStats(t, r, "slot freed", func(s TransportStats) bool { return s.TCPActive == 1 })
		if err := exchange(r.tcpAddr(t, 0), "tcp", newQuery("again.example.")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no reply keeps the connection", func(t *testing.T) {
		r := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}}, &dnsTestHandler{})
		c := dialTCP(t, r)
		// A response (QR set) is not answered; the next query still is.
		resp := newQuery("response.example.")
		resp.Response = true
		q := newQuery("next.example.")
		if _, err := c.Write(append(frame(t, resp), frame(t, q)...)); err != nil {
			t.Fatal(err)
		}
		m, err := readFramed(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checkReply(q, m, ProtoTCP); err != nil {
			t.Fatal(err)
		}
	})
}
