package dnsserver

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeClock is the limiter's clock in the tests: it moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Duration   { return time.Duration(c.ns.Load()) }
func (c *fakeClock) set(at time.Duration) { c.ns.Store(int64(at)) }

// newTestRRL builds a limiter on clock; rate 10 a second, a burst of 10
// and slip 2 unless cfg says otherwise (Slip -1 asks for 0).
func newTestRRL(t testing.TB, cfg RRLConfig, clock *fakeClock) *RRL {
	t.Helper()
	if cfg.Rate == 0 {
		cfg.Rate = 10
	}
	switch cfg.Slip {
	case 0:
		cfg.Slip = 2
	case -1:
		cfg.Slip = 0
	}
	if clock != nil {
		cfg.Clock = clock.now
	}
	r, err := NewRRL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// outcome is what a client saw of one query under RRL.
type outcome struct{ answered, slipped, dropped int }

func (o outcome) String() string {
	return fmt.Sprintf("%d answered, %d slipped, %d dropped", o.answered, o.slipped, o.dropped)
}

// classify sorts one reply: none, slipped (TC and no records, or
// BADCOOKIE), or an answer.
func (o *outcome) classify(t testing.TB, out []byte) {
	t.Helper()
	if out == nil {
		o.dropped++
		return
	}
	m := new(dns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if m.Rcode == dns.RcodeBadCookie || m.Truncated && len(m.Answer)+len(m.Ns) == 0 {
		o.slipped++
		return
	}
	o.answered++
}

// rrlStep sends n queries from one client at one time of the clock.
type rrlStep struct {
	at    time.Duration
	from  string
	n     int
	query func(i int) *dns.Msg
	proto Proto
	want  outcome
}

func ask(name string, qtype uint16) func(int) *dns.Msg {
	return func(int) *dns.Msg { return question(name, qtype) }
}

// askEach asks for a different name each time: format holds one %d.
func askEach(format string, qtype uint16) func(int) *dns.Msg {
	return func(i int) *dns.Msg { return question(fmt.Sprintf(format, i), qtype) }
}

// TestRRLPatterns: exact counts of answered, slipped and dropped
// answers for patterns of queries at given times, as BIND's and Knot's
// tests have them. Rate 10 a second with a burst of 10 and slip 2 unless
// the case says otherwise.
func TestRRLPatterns(t *testing.T) {
	const (
		client = "192.0.2.1"
		www    = "www.example.org."
	)
	cookieSecret := CookieSecret{1, 2, 3}
	cookieNow := time.Unix(1_700_000_000, 0)
	cc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	withCookie := func(server bool) func(int) *dns.Msg {
		return func(int) *dns.Msg {
			c := append([]byte(nil), cc...)
			if server {
				c = appendServerCookie(c, &cookieSecret, cc, netip.MustParseAddr(client), uint32(cookieNow.Unix()))
			}
			return withEDNS(question(www, dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: fmt.Sprintf("%x", c)})
		}
	}
	europeECS := func(i int) *dns.Msg {
		return withEDNS(question("geo.example.org.", dns.TypeA), 1232, false,
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(193, 0, byte(i), 0)})
	}
	badOpcode := func(int) *dns.Msg {
		m := question(www, dns.TypeA)
		m.Opcode = dns.OpcodeStatus
		return m
	}
	tests := []struct {
		name  string
		cfg   RRLConfig
		steps []rrlStep
	}{
		{"the burst, then every other answer slips", RRLConfig{}, []rrlStep{
			{n: 15, want: outcome{10, 3, 2}},
		}},
		{"the budget comes back at the rate", RRLConfig{}, []rrlStep{
			{n: 15, want: outcome{10, 3, 2}},
			// Half a second earns five answers; the slip count goes on.
			{at: 500 * time.Millisecond, n: 10, want: outcome{5, 2, 3}},
			// Once the whole burst is back, the episode is over and the
			// first answer over the limit slips again.
			{at: 3 * time.Second, n: 12, want: outcome{10, 1, 1}},
		}},
		{"a flood gets the rate and no more", RRLConfig{}, []rrlStep{
			{n: 10, want: outcome{10, 0, 0}},
			{at: 100 * time.Millisecond, n: 4, want: outcome{1, 2, 1}},
			{at: 200 * time.Millisecond, n: 4, want: outcome{1, 1, 2}},
			{at: 300 * time.Millisecond, n: 4, want: outcome{1, 2, 1}},
		}},
		{"slip 0 drops", RRLConfig{Slip: -1}, []rrlStep{{n: 15, want: outcome{10, 0, 5}}}},
		{"slip 1 slips everything", RRLConfig{Slip: 1}, []rrlStep{{n: 15, want: outcome{10, 5, 0}}}},
		{"slip 3", RRLConfig{Slip: 3}, []rrlStep{{n: 16, want: outcome{10, 2, 4}}}},
		{"a window of 3 s is a burst of 30", RRLConfig{Window: 3 * time.Second}, []rrlStep{{n: 35, want: outcome{30, 3, 2}}}},
		{"one /24 is one account", RRLConfig{}, []rrlStep{
			{from: "192.0.2.1", n: 5, want: outcome{5, 0, 0}},
			{from: "192.0.2.200", n: 10, want: outcome{5, 3, 2}},
		}},
		{"another /24 has its own", RRLConfig{}, []rrlStep{
			{from: "192.0.2.1", n: 15, want: outcome{10, 3, 2}},
			{from: "192.0.3.1", n: 15, want: outcome{10, 3, 2}},
		}},
		{"prefix length 32", RRLConfig{PrefixV4: 32}, []rrlStep{
			{from: "192.0.2.1", n: 15, want: outcome{10, 3, 2}},
			{from: "192.0.2.2", n: 15, want: outcome{10, 3, 2}},
		}},
		{"IPv6 /56", RRLConfig{}, []rrlStep{
			{from: "2001:db8:0:100::1", n: 5, want: outcome{5, 0, 0}},
			{from: "2001:db8:0:1ff::1", n: 10, want: outcome{5, 3, 2}},
			{from: "2001:db8:0:200::1", n: 15, want: outcome{10, 3, 2}},
		}},
		{"each type of a name is an account", RRLConfig{}, []rrlStep{
			{n: 15, query: ask(www, dns.TypeA), want: outcome{10, 3, 2}},
			{n: 15, query: ask(www, dns.TypeAAAA), want: outcome{10, 3, 2}},
		}},
		{"NXDOMAIN: one account per zone", RRLConfig{}, []rrlStep{
			{n: 15, query: askEach("nx%d.example.org.", dns.TypeA), want: outcome{10, 3, 2}},
			{n: 3, query: askEach("nx%d.deeper.example.org.", dns.TypeMX), want: outcome{0, 1, 2}},
		}},
		{"NODATA: one account per name", RRLConfig{}, []rrlStep{
			{n: 12, query: ask(www, dns.TypeTXT), want: outcome{10, 1, 1}},
			{n: 12, query: ask(www, dns.TypeMX), want: outcome{0, 6, 6}},
			{n: 12, query: ask("mail.example.org.", dns.TypeTXT), want: outcome{10, 1, 1}},
		}},
		{"wildcard answers count against the wildcard", RRLConfig{}, []rrlStep{
			{n: 15, query: askEach("w%d.wild.example.org.", dns.TypeA), want: outcome{10, 3, 2}},
			// Its NODATA is another account, also shared.
			{n: 12, query: askEach("w%d.wild.example.org.", dns.TypeTXT), want: outcome{10, 1, 1}},
		}},
		{"referrals: one account per delegation", RRLConfig{}, []rrlStep{
			{n: 15, query: askEach("h%d.sub.example.org.", dns.TypeA), want: outcome{10, 3, 2}},
		}},
		{"errors: one account per network, whatever the name", RRLConfig{}, []rrlStep{
			{n: 8, query: askEach("x%d.example.com.", dns.TypeA), want: outcome{8, 0, 0}}, // REFUSED
			{n: 7, query: badOpcode, want: outcome{2, 3, 2}},                              // NOTIMP
		}},
		{"a service's answers are one account per name", RRLConfig{}, []rrlStep{
			{n: 15, query: europeECS, want: outcome{10, 3, 2}},
			{n: 12, query: ask("geo.example.org.", dns.TypeTXT), want: outcome{10, 1, 1}},
		}},
		{"exempt networks are never limited", RRLConfig{Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28"), netip.MustParsePrefix("2001:db8::/32")}}, []rrlStep{
			{from: "192.0.2.1", n: 15, want: outcome{15, 0, 0}},
			{from: "2001:db8:1::1", n: 15, want: outcome{15, 0, 0}},
			{from: "192.0.2.16", n: 15, want: outcome{10, 3, 2}},
		}},
		{"a valid server cookie is never limited", RRLConfig{}, []rrlStep{
			{n: 15, query: withCookie(true), want: outcome{15, 0, 0}},
		}},
		{"a client cookie slips as BADCOOKIE", RRLConfig{}, []rrlStep{
			{n: 15, query: withCookie(false), want: outcome{10, 3, 2}},
		}},
		{"log_only answers everything", RRLConfig{LogOnly: true}, []rrlStep{
			{n: 15, want: outcome{15, 0, 0}},
		}},
		{"TCP is never limited", RRLConfig{}, []rrlStep{
			{n: 15, proto: ProtoTCP, want: outcome{15, 0, 0}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := new(fakeClock)
			r := newTestRRL(t, tc.cfg, clock)
			h := steeringHandler(t, steeringState(), HandlerConfig{RRL: r, CookieSecrets: []CookieSecret{cookieSecret}, Now: func() time.Time { return cookieNow }})
			buf := make([]byte, 0, 4096)
			var total outcome
			for i, s := range tc.steps {
				clock.set(s.at)
				from, query, proto := s.from, s.query, s.proto
				if from == "" {
					from = client
				}
				if query == nil {
					query = ask(www, dns.TypeA)
				}
				if proto == 0 {
					proto = ProtoUDP
				}
				src := netip.AddrPortFrom(netip.MustParseAddr(from), 5353)
				var got outcome
				for j := range s.n {
					got.classify(t, h.ServePacket(buf, pack(t, query(j)), src, proto))
				}
				if got != s.want {
					t.Errorf("step %d: %v, want %v", i, got, s.want)
				}
				total.answered += got.answered
				total.slipped += got.slipped
				total.dropped += got.dropped
			}
			c := &r.counts
			seen := outcome{int(c[rrlAnswered].Load() + c[rrlExemptNet].Load() + c[rrlExemptCookie].Load() + c[rrlWouldSlip].Load() + c[rrlWouldDrop].Load()),
				int(c[rrlSlipped].Load()), int(c[rrlDropped].Load())}
			if proto := tc.steps[0].proto; proto != ProtoTCP && seen != total {
				t.Errorf("the limiter counted %v, the client saw %v", seen, total)
			}
		})
	}
}

// TestRRLCounters: the counters by action, log_only's would_*, and the
// responses metric, which counts what was sent.
func TestRRLCounters(t *testing.T) {
	for _, logOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("log_only=%v", logOnly), func(t *testing.T) {
			r := newTestRRL(t, RRLConfig{LogOnly: logOnly}, new(fakeClock))
			h := testHandler(t, HandlerConfig{RRL: r})
			req := pack(t, question("www.example.org.", dns.TypeA))
			for range 15 {
				h.ServePacket(make([]byte, 0, 512), req, testClient, ProtoUDP)
			}
			want := map[int]uint64{rrlAnswered: 10, rrlSlipped: 3, rrlDropped: 2}
			sent := uint64(13) // answered and slipped: NOERROR with TC
			if logOnly {
				want = map[int]uint64{rrlAnswered: 10, rrlWouldSlip: 3, rrlWouldDrop: 2}
				sent = 15
			}
			for a := range rrlActions {
				if got := r.counts[a].Load(); got != want[a] {
					t.Errorf("%s: %d, want %d", rrlActionNames[a], got, want[a])
				}
			}
			if got := h.metrics.responses[ProtoUDP][dns.RcodeSuccess].Load(); got != sent {
				t.Errorf("responses counted %d, want %d (what was sent)", got, sent)
			}
			inUse, limited := r.accounts()
			if inUse != 1 || limited != 1 {
				t.Errorf("accounts in use %d, limited %d; want 1 and 1", inUse, limited)
			}
		})
	}
}

// TestRRLSlipReply: a slipped reply is the header and question with TC
// set and a bare OPT: never larger than the query. A client that sent a
// cookie gets BADCOOKIE and a fresh server cookie instead.
func TestRRLSlipReply(t *testing.T) {
	cookie := &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}
	noQuestion := withEDNS(question("www.example.org.", dns.TypeA), 1232, false)
	noQuestion.Question = nil
	tests := []struct {
		name      string
		m         *dns.Msg
		rcode     int
		badCookie bool
	}{
		{"plain", question("www.example.org.", dns.TypeA), dns.RcodeSuccess, false},
		{"edns with DO", withEDNS(question("www.example.org.", dns.TypeA), 1232, true), dns.RcodeSuccess, false},
		{"ecs", withEDNS(question("www.example.org.", dns.TypeA), 1232, false, europe()), dns.RcodeSuccess, false},
		{"nxdomain", withEDNS(question("nope.example.org.", dns.TypeA), 1232, false), dns.RcodeNameError, false},
		{"badvers", func() *dns.Msg {
			m := withEDNS(question("www.example.org.", dns.TypeA), 1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}(), dns.RcodeBadVers, false},
		{"no question", noQuestion, dns.RcodeFormatError, false},
		{"client cookie", withEDNS(question("www.example.org.", dns.TypeA), 1232, false, cookie), dns.RcodeBadCookie, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRRL(t, RRLConfig{Rate: 1, Slip: 1}, new(fakeClock))
			h := testHandler(t, HandlerConfig{RRL: r})
			req := pack(t, tc.m)
			full := h.ServePacket(make([]byte, 0, 1232), req, testClient, ProtoUDP)
			out := h.ServePacket(make([]byte, 0, 1232), req, testClient, ProtoUDP)
			if r.counts[rrlSlipped].Load() != 1 {
				t.Fatalf("slipped %d, want 1", r.counts[rrlSlipped].Load())
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil {
				t.Fatalf("slipped reply does not parse: %v", err)
			}
			if !m.Response || m.Id != tc.m.Id || m.Rcode != tc.rcode || len(m.Answer)+len(m.Ns) != 0 {
				t.Errorf("slipped reply %v", m)
			}
			if len(m.Question) != len(tc.m.Question) || len(m.Question) == 1 && m.Question[0] != tc.m.Question[0] {
				t.Errorf("question %v, want %v", m.Question, tc.m.Question)
			}
			opt := m.IsEdns0()
			if (opt != nil) != (tc.m.IsEdns0() != nil) {
				t.Fatalf("OPT %v for a query with OPT %v", opt, tc.m.IsEdns0())
			}
			if tc.badCookie {
				if m.Truncated || len(opt.Option) != 1 || len(opt.Option[0].(*dns.EDNS0_COOKIE).Cookie) != 48 {
					t.Errorf("BADCOOKIE reply %v: want no TC and a fresh server cookie", m)
				}
				if len(out) > len(req)+serverCookieLen {
					t.Errorf("%d bytes for a %d-byte query: more than the server cookie added", len(out), len(req))
				}
				return
			}
			if !m.Truncated {
				t.Error("TC not set")
			}
			if opt != nil && (len(opt.Option) != 0 || opt.Do() != tc.m.IsEdns0().Do()) {
				t.Errorf("OPT %v: want no options and DO as asked", opt)
			}
			if len(out) > len(req) {
				t.Errorf("slipped reply of %d bytes to a query of %d", len(out), len(req))
			}
			if full != nil && len(full) < len(out) {
				t.Errorf("the slipped reply (%d bytes) is larger than the answer (%d)", len(out), len(full))
			}
		})
	}
}

// rrlTake serves req from the address from over UDP.
func rrlTake(h *Handler, buf []byte, req []byte, from netip.Addr) []byte {
	return h.ServePacket(buf, req, netip.AddrPortFrom(from, 5353), ProtoUDP)
}

// TestRRLFairness: a flood of random sources, a hundred times the
// table's size, does not make the limiter forget the accounts it is
// limiting: the victim of a reflection attack gets exactly the answers it
// would get with no flood, while every random source is answered.
func TestRRLFairness(t *testing.T) {
	const (
		steps      = 1000 // of 10 ms: 10 s
		victimStep = 2    // queries per step: 200 a second, 20 times the rate
		floodStep  = 100  // a new /24 each
		tableSize  = 1024
	)
	victim := netip.MustParseAddr("198.51.100.7")
	req := pack(t, question("www.example.org.", dns.TypeA))
	run := func(flood bool) (victimGot, floodGot outcome, evicted uint64) {
		clock := new(fakeClock)
		r := newTestRRL(t, RRLConfig{TableSize: tableSize}, clock)
		h := testHandler(t, HandlerConfig{RRL: r})
		buf := make([]byte, 0, 512)
		var src uint32 = 0x0a000000 // 10.0.0.0, then a new /24 each query
		for s := range steps {
			clock.set(time.Duration(s) * 10 * time.Millisecond)
			for range victimStep {
				victimGot.classify(t, rrlTake(h, buf, req, victim))
			}
			if !flood {
				continue
			}
			for range floodStep {
				src += 256
				floodGot.classify(t, rrlTake(h, buf, req, netip.AddrFrom4([4]byte{byte(src >> 24), byte(src >> 16), byte(src >> 8), 1})))
			}
		}
		return victimGot, floodGot, r.evicted.Load()
	}
	alone, _, _ := run(false)
	flooded, flood, evicted := run(true)
	if flooded != alone {
		t.Errorf("victim under a random flood: %v; alone: %v", flooded, alone)
	}
	if want := (outcome{answered: steps * floodStep}); flood != want {
		t.Errorf("random sources: %v, want %v", flood, want)
	}
	// 10 s at 10 a second and a burst of 10.
	if alone.answered < 100 || alone.answered > 110 {
		t.Errorf("victim alone: %v, want about 110 answered", alone)
	}
	t.Logf("victim: %v; %d random sources, %d accounts evicted before their burst was back", flooded, steps*floodStep, evicted)
}

// TestRRLConcurrent: goroutines spending one account at one instant
// together get exactly its burst, and exactly every other answer over it
// slips.
func TestRRLConcurrent(t *testing.T) {
	const goroutines, each = 8, 500
	r := newTestRRL(t, RRLConfig{Rate: 100}, new(fakeClock))
	h := testHandler(t, HandlerConfig{RRL: r})
	req := pack(t, question("www.example.org.", dns.TypeA))
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			buf := make([]byte, 0, 512)
			for range each {
				h.ServePacket(buf, req, testClient, ProtoUDP)
			}
		})
	}
	wg.Wait()
	limited := goroutines*each - 100
	if a, s, d := r.counts[rrlAnswered].Load(), r.counts[rrlSlipped].Load(), r.counts[rrlDropped].Load(); a != 100 || s != uint64(limited/2) || d != uint64(limited/2) {
		t.Errorf("answered %d, slipped %d, dropped %d; want 100, %d, %d", a, s, d, limited/2, limited/2)
	}
}

func TestRRLConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   RRLConfig
		field string
	}{
		{"defaults", RRLConfig{Slip: 2}, ""},
		{"negative rate", RRLConfig{Rate: -1}, "rate"},
		{"rate too high", RRLConfig{Rate: MaxRRLRate + 1}, "rate"},
		{"window too short", RRLConfig{Window: 500 * time.Millisecond}, "window"},
		{"window too long", RRLConfig{Window: 2 * time.Minute}, "window"},
		{"negative slip", RRLConfig{Slip: -1}, "slip"},
		{"slip too high", RRLConfig{Slip: 11}, "slip"},
		{"ipv4 prefix", RRLConfig{PrefixV4: 33}, "ipv4_prefix_length"},
		{"ipv6 prefix", RRLConfig{PrefixV6: -1}, "ipv6_prefix_length"},
		{"table too small", RRLConfig{TableSize: 100}, "table_size"},
		{"table too large", RRLConfig{TableSize: MaxRRLTableSize + 1}, "table_size"},
		{"exempt with host bits", RRLConfig{Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}, "exempt[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, nerr := NewRRL(tc.cfg)
			if tc.field == "" {
				if err != nil || nerr != nil {
					t.Fatalf("Validate: %v; NewRRL: %v", err, nerr)
				}
				return
			}
			var fe *RRLFieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || nerr == nil {
				t.Fatalf("Validate: %v (want an error for %s); NewRRL: %v", err, tc.field, nerr)
			}
		})
	}
}

func TestRRLExempt(t *testing.T) {
	r := newTestRRL(t, RRLConfig{Exempt: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"), // nested
		netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), // adjacent
		netip.MustParsePrefix("255.255.255.255/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::1/128"),
	}}, nil)
	for addr, want := range map[string]bool{
		"10.0.0.0": true, "10.255.255.255": true, "10.1.2.3": true, "11.0.0.0": false, "9.255.255.255": false,
		"192.0.2.1": true, "192.0.2.2": true, "192.0.2.3": false, "192.0.2.0": false,
		"255.255.255.255": true, "255.255.255.254": false, "0.0.0.0": false,
		"2001:db8::1": true, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": true, "2001:db9::": false,
		"::1": true, "::2": false, "::": false,
	} {
		if got := r.exempt(netip.MustParseAddr(addr)); got != want {
			t.Errorf("exempt(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestRRLAllocs: the limiter allocates nothing on any path.
func TestRRLAllocs(t *testing.T) {
	tests := []struct {
		name string
		cfg  RRLConfig
		from string
	}{
		{"answered", RRLConfig{Rate: MaxRRLRate}, "192.0.2.1"},
		{"slipped and dropped", RRLConfig{Rate: 1}, "192.0.2.1"},
		{"log_only", RRLConfig{Rate: 1, LogOnly: true}, "192.0.2.1"},
		{"exempt", RRLConfig{Rate: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, "192.0.2.1"},
		{"ipv6", RRLConfig{Rate: 1}, "2001:db8::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRRL(t, tc.cfg, nil)
			h := steeringHandler(t, steeringState(), HandlerConfig{RRL: r})
			src := netip.AddrPortFrom(netip.MustParseAddr(tc.from), 5353)
			buf := make([]byte, 0, 4096)
			for _, m := range []*dns.Msg{
				question("www.example.org.", dns.TypeA),
				withEDNS(question("geo.example.org.", dns.TypeA), 1232, false, europe()),
				question("x.wild.example.org.", dns.TypeA),
				question("nope.example.org.", dns.TypeA),
				withEDNS(question("www.example.org.", dns.TypeA), 1232, false, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}),
			} {
				req := pack(t, m)
				h.ServePacket(buf, req, src, ProtoUDP)
				if allocs := testing.AllocsPerRun(200, func() { h.ServePacket(buf, req, src, ProtoUDP) }); allocs != 0 {
					t.Errorf("%s: %v allocations per query", m.Question[0].Name, allocs)
				}
			}
		})
	}
}

// TestRRLLog: one line per network that starts being limited, not
// repeated within rrlLogRepeat, at most rrlLogLinesPerSecond a second.
func TestRRLLog(t *testing.T) {
	var out bytes.Buffer
	r := newTestRRL(t, RRLConfig{Logger: slog.New(slog.NewTextHandler(&out, nil))}, new(fakeClock))
	h := testHandler(t, HandlerConfig{RRL: r})
	buf := make([]byte, 0, 512)
	limit := func(from, name string, qtype uint16) {
		req := pack(t, question(name, qtype))
		for range 12 {
			h.ServePacket(buf, req, netip.AddrPortFrom(netip.MustParseAddr(from), 5353), ProtoUDP)
		}
	}
	limit("192.0.2.1", "www.example.org.", dns.TypeA)
	limit("192.0.2.2", "www.example.org.", dns.TypeAAAA) // same network: not logged again
	limit("2001:db8::1", "nope.example.org.", dns.TypeA)
	logged := map[netip.Prefix]time.Time{}
	start := time.Unix(1_700_000_000, 0)
	r.logStarts(r.drainStarts(), logged, start)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 ||
		!strings.Contains(lines[0], "network=192.0.2.0/24 answers=positive rate=10 name=www.example.org. type=A") ||
		!strings.Contains(lines[1], "network=2001:db8::/56 answers=nxdomain rate=10 name=example.org.") {
		t.Fatalf("log:\n%s", out.String())
	}

	// The same network later, a new episode: logged again only after
	// rrlLogRepeat.
	out.Reset()
	r.logStarts([]rrlStart{{network: netip.MustParsePrefix("192.0.2.0/24"), class: rrlError}}, logged, start.Add(time.Minute))
	if out.Len() != 0 {
		t.Fatalf("logged again within %v:\n%s", rrlLogRepeat, out.String())
	}
	r.logStarts([]rrlStart{{network: netip.MustParsePrefix("192.0.2.0/24"), class: rrlError}}, logged, start.Add(rrlLogRepeat+time.Minute))
	if !strings.Contains(out.String(), "network=192.0.2.0/24 answers=error rate=10\n") {
		t.Fatalf("not logged again after %v:\n%s", rrlLogRepeat, out.String())
	}

	// Many networks at once: ten lines and a count of the rest.
	out.Reset()
	var many []rrlStart
	for i := range 25 {
		many = append(many, rrlStart{network: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24), class: rrlError})
	}
	r.logStarts(many, logged, start.Add(time.Hour))
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != rrlLogLinesPerSecond+1 || !strings.Contains(lines[len(lines)-1], "not_logged=15") {
		t.Fatalf("log:\n%s", out.String())
	}
}
