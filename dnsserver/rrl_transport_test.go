package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-gslb/meridian/internal/floodtest"
)

// rrlSettled waits until the limiter has seen n answers.
func rrlSettled(t *testing.T, r *RRL, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(failsafe); ; time.Sleep(5 * time.Millisecond) {
		var seen uint64
		for a := range r.counts {
			seen += r.counts[a].Load()
		}
		if seen == n {
			return
		}
		if seen > n || time.Now().After(deadline) {
			t.Fatalf("the limiter saw %d answers, want %d", seen, n)
		}
	}
}

// TestRRLFlood runs the limiter in a real transport on loopback: a flood
// from four addresses of one /24 (what a spoofing attacker sends in a
// victim's name) gets at most the rate plus the burst in answers, every
// other answer over it slipped, while a client of another /24 gets every
// answer. The amplification (reply bytes per query byte) is reported.
func TestRRLFlood(t *testing.T) {
	const (
		rate      = 100
		floodN    = 3000
		floodRate = 3000 // a second
		legitN    = 20
	)
	r, err := NewRRL(RRLConfig{Rate: rate, Window: time.Second, Slip: 2})
	if err != nil {
		t.Fatal(err)
	}
	h := testHandler(t, HandlerConfig{RRL: r})
	tr := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2}, h)
	server := tr.udpAddr(t, 0)

	f, err := floodtest.Open(server, floodtest.Sources(netip.MustParseAddr("127.0.0.77"), 4))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req := pack(t, withEDNS(question("www.example.org.", dns.TypeA), 1232, false))

	var legitReqs [][]byte
	for i := range legitN {
		q := withEDNS(question("www.example.org.", dns.TypeA), 1232, false)
		q.Id = uint16(i)
		legitReqs = append(legitReqs, pack(t, q))
	}
	start := time.Now()
	var legit sync.WaitGroup
	var legitErr atomic.Value
	legit.Go(func() {
		for i, q := range legitReqs {
			m, err := floodtest.Ask(server, netip.MustParseAddr("127.0.1.1"), q, 2*time.Second)
			if err == nil && (m.Truncated || len(m.Answer) != 1) {
				err = fmt.Errorf("reply %v", m)
			}
			if err != nil {
				legitErr.Store(fmt.Errorf("127.0.1.1, query %d: %w", i, err))
				return
			}
			time.Sleep(25 * time.Millisecond) // 40 a second: within the rate
		}
	})
	if err := f.Send(context.Background(), floodN, floodRate, func(int) []byte { return append([]byte(nil), req...) }); err != nil {
		t.Fatal(err)
	}
	legit.Wait()
	if err, _ := legitErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	rrlSettled(t, r, floodN+legitN)
	elapsed := time.Since(start)
	answered := int(r.counts[rrlAnswered].Load()) - legitN
	slipped := int(r.counts[rrlSlipped].Load())
	if err := f.WaitReplies(answered+slipped, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	res := f.Result()
	t.Logf("flood from 127.0.0.77-80: %v", res)

	limited := floodN - answered
	if most := rate + int(elapsed.Seconds()*rate) + 1; answered > most {
		t.Errorf("the flood got %d answers in %v; at %d a second and a burst of %d, at most %d", answered, elapsed, rate, rate, most)
	}
	if res.Answered != answered || res.Truncated != slipped || slipped != (limited+1)/2 || res.BadCookie != 0 {
		t.Errorf("received %d answers and %d truncated; the limiter answered %d and slipped %d of %d over the limit", res.Answered, res.Truncated, answered, slipped, limited)
	}
	if res.Amplification() >= 1 {
		t.Errorf("amplification %.3f: more bytes out than in", res.Amplification())
	}
}

// TestRRLResolverECS measures what a large resolver sees: it sends many
// queries for one name from one address, each with the ECS subnet of
// another client, as a public resolver does for its clients' cache
// misses. The limiter's clock advances 2 ms with each query it accounts,
// so the figures are those of a steady 500 queries a second however fast
// this machine runs: a resolver without cookies gets the rate over UDP,
// half of the rest truncated (it asks again over TCP and gets the
// answer) and half dropped (it waits for its timeout); with cookies, slip
// 1, or its network exempt, it loses nothing.
func TestRRLResolverECS(t *testing.T) {
	const n, perSecond = 1000, 500
	resolver := netip.MustParseAddr("127.0.3.1")
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name    string
		cfg     RRLConfig
		cookies bool
	}{
		{"defaults", RRLConfig{Slip: DefaultRRLSlip}, false},
		{"with cookies", RRLConfig{Slip: DefaultRRLSlip}, true},
		{"slip 1", RRLConfig{Slip: 1}, false},
		{"exempt", RRLConfig{Slip: DefaultRRLSlip, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.3.0/24")}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var accounted atomic.Int64
			tc.cfg.Clock = func() time.Duration { return time.Duration(accounted.Add(1)-1) * time.Second / perSecond }
			r, err := NewRRL(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			h := steeringHandler(t, steeringState(), HandlerConfig{RRL: r})
			tr := startTransport(t, TransportConfig{Addrs: []string{"127.0.0.1:0"}, UDPSockets: 2}, h)
			server := tr.udpAddr(t, 0)
			cookie := fmt.Sprintf("%x", cc)
			if tc.cookies {
				// The first query learns the server cookie.
				m, err := floodtest.Ask(server, resolver, pack(t, withEDNS(question("geo.example.org.", dns.TypeA), 1232, false,
					&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				cookie = m.IsEdns0().Option[0].(*dns.EDNS0_COOKIE).Cookie
				accounted.Store(0)
			}
			query := func(i int) *dns.Msg {
				ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(193, 0, byte(i>>8), byte(i))}
				opts := []dns.EDNS0{ecs}
				if tc.cookies {
					opts = append(opts, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: cookie})
				}
				return withEDNS(question("geo.example.org.", dns.TypeA), 1232, false, opts...)
			}
			f, err := floodtest.Open(server, []netip.Addr{resolver})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var before [rrlActions]uint64
			seen := uint64(n)
			for a := range before {
				before[a] = r.counts[a].Load()
				seen += before[a]
			}
			reqs := make([][]byte, n)
			for i := range reqs {
				reqs[i] = pack(t, query(i))
			}
			if err := f.Send(context.Background(), n, 5000, func(i int) []byte { return reqs[i] }); err != nil {
				t.Fatal(err)
			}
			rrlSettled(t, r, seen)
			udp := int(r.counts[rrlAnswered].Load() + r.counts[rrlExemptCookie].Load() + r.counts[rrlExemptNet].Load() - before[rrlAnswered])
			slipped := int(r.counts[rrlSlipped].Load())
			if err := f.WaitReplies(udp+slipped, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			res := f.Result()

			// The resolver asks again over TCP for every truncated reply.
			tcp := 0
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(tr.tcpAddr(t, 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			co := &dns.Conn{Conn: c}
			for i := range res.Truncated {
				if err := co.WriteMsg(query(i)); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(failsafe))
				m, err := co.ReadMsg()
				if err != nil || m.Truncated || len(m.Answer) != 1 {
					t.Fatalf("TCP query %d: %v %v", i, m, err)
				}
				tcp++
			}
			lost := n - res.Answered - res.Truncated
			t.Logf("%d queries at %d a second, each with another ECS subnet: %d answered over UDP (%.0f%%), %d after TC over TCP (%.0f%%), %d unanswered (%.0f%%)",
				n, perSecond, res.Answered, pct(res.Answered, n), tcp, pct(tcp, n), lost, pct(lost, n))

			if res.Answered != udp || res.Truncated != slipped || res.BadCookie != 0 {
				t.Errorf("received %v; the limiter answered %d and slipped %d", res, udp, slipped)
			}
			switch {
			case tc.cookies || tc.cfg.Exempt != nil:
				if res.Answered != n {
					t.Errorf("%d of %d answered over UDP, want all", res.Answered, n)
				}
			case tc.cfg.Slip == 1:
				if lost != 0 {
					t.Errorf("%d unanswered with slip 1", lost)
				}
			default:
				// 2 s of queries: the burst and two seconds of the rate.
				if most := DefaultRRLRate*3 + 1; res.Answered > most || res.Answered < DefaultRRLRate*2 {
					t.Errorf("%d answered over UDP; want %d to %d", res.Answered, DefaultRRLRate*2, most)
				}
				if limited := n - res.Answered; res.Truncated != (limited+1)/2 {
					t.Errorf("%d truncated of %d over the limit", res.Truncated, limited)
				}
			}
		})
	}
}

func pct(a, b int) float64 { return 100 * float64(a) / float64(b) }
